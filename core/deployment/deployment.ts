import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { SdcError } from '../errors/index.js';
import { createControlPlane, type ControlPlane } from '../control-plane/index.js';
import type { ControlPlaneOptions } from '../control-plane/control-plane.js';
import { createNodeEd25519Provider } from '../crypto/ed25519-node.js';
import { createGatewayCore, type GatewayCore, type GatewayCoreOptions } from '../gateway/gateway-core.js';
import { startGatewayServer, type GatewayServer } from '../gateway/gateway-server.js';
import type { Clock, RandomSource, Scheduler } from '../protocol/ports.js';
import { createRedisKeyValueStore, openStores, RedisStreamBus, type Stores } from '../stores/index.js';
import type { DeploymentMaterials } from './materials.js';

export interface StartDeploymentOptions {
  materials: DeploymentMaterials;
  clock: Clock;
  random: RandomSource;
  scheduler: Scheduler;
  logger?: Logger;
  /** Real Redis for bus and key/value; embedded when absent. */
  redisUrl?: string;
  /** Real MySQL/MariaDB; sql.js in `<dataDir>/db` when absent. */
  mysqlUrl?: string;
  /** Prefix for Redis keys, so several deployments (or test runs) can share one server. */
  keyPrefix?: string;
  host?: string;
  apiPort?: number;
  gatewayPort?: number;
  gatewayId?: string;
  /** Gateway URLs handed to devices at enrollment (default: this gateway's bound address). */
  advertisedGatewayUrls?: readonly string[];
  /** Run the control plane (default true); false runs a gateway only, for extra gateway processes. */
  controlPlane?: boolean;
  /** Extra gateway tuning (heartbeat, ACK timeout, attempts...). */
  gateway?: Partial<Omit<GatewayCoreOptions, 'gatewayId' | 'signer' | 'provider' | 'stores' | 'clock' | 'random' | 'scheduler' | 'commandKeys'>>;
  /** Control-plane sweep periods (expiry, redelivery); defaults suit production. */
  controlPlaneTuning?: Pick<ControlPlaneOptions, 'expirySweepIntervalMs' | 'redeliverySweepIntervalMs' | 'redispatchIntervalMs'>;
  /** Cheaper password hashing, for tests and the demo's throwaway users only. */
  scryptParams?: { N: number; r: number; p: number };
}

/** A running control plane and gateway sharing one set of stores: what `sdc serve` and `sdc demo` run. */
export interface Deployment {
  /** A gateway-only deployment has no SQL database (`sql` undefined). */
  readonly stores: GatewayStores | Stores;
  readonly controlPlane: ControlPlane | undefined;
  readonly gateway: GatewayCore;
  readonly gatewayServer: GatewayServer;
  readonly apiUrl: string | undefined;
  readonly gatewayUrl: string;
  stop(): Promise<void>;
}

export interface GatewayStores extends Omit<Stores, 'sql'> {
  readonly sql: undefined;
}

/**
 * A gateway needs only the bus and the key/value store, and they must be the shared Redis: an
 * embedded store lives inside one process, so another process could not reach its devices.
 */
function gatewayOnlyStores(options: StartDeploymentOptions): GatewayStores {
  if (options.redisUrl === undefined) throw new SdcError('PROTO_INVALID_ARGUMENT', 'a gateway-only deployment needs a shared Redis');
  const keyPrefix = options.keyPrefix ?? 'sdc:';
  const bus = new RedisStreamBus({ url: options.redisUrl, keyPrefix: `${keyPrefix}bus:` });
  const kv = createRedisKeyValueStore({ url: options.redisUrl, keyPrefix: `${keyPrefix}kv:` });
  return {
    sql: undefined, bus, kv, embedded: { sql: false, redis: false },
    async close() {
      await Promise.allSettled([bus.close(), kv.close()]);
    },
  };
}

/**
 * Opens the stores, starts a gateway (first, so its URL can be handed to devices at enrollment)
 * and the control plane, both over TLS with the deployment's server certificate.
 */
export async function startDeployment(options: StartDeploymentOptions): Promise<Deployment> {
  const { materials, clock, random, scheduler } = options;
  const logger = options.logger ?? pino({ level: 'silent' });
  const host = options.host ?? '127.0.0.1';
  const stores = options.controlPlane === false ? gatewayOnlyStores(options) : await openStores({
    // The same file `sdc user add` and `sdc audit verify` open (core/control-plane/database.ts).
    dataDir: join(materials.dataDir, 'db'), sqlFileName: 'sdc.sqlite', clock, scheduler,
    ...(options.redisUrl ? { redisUrl: options.redisUrl } : {}),
    ...(options.mysqlUrl ? { mysqlUrl: options.mysqlUrl } : {}),
    ...(options.keyPrefix ? { keyPrefix: options.keyPrefix } : {}),
  });
  const stopped: Array<() => Promise<void>> = [() => stores.close()];
  const stopAll = async () => {
    for (const stop of stopped.reverse()) await stop().catch((error: unknown) => logger.warn({ err: error }, 'stop failed'));
  };
  try {
    // Admission (revoked serial, never-enrolled device) is the gateway's default: kv keys the
    // control plane publishes, the same for this in-process gateway and a gateway-only process.
    const gateway = createGatewayCore({
      ...options.gateway,
      gatewayId: options.gatewayId ?? 'gw-1',
      signer: materials.gatewaySigner,
      provider: createNodeEd25519Provider(),
      stores: { bus: stores.bus, kv: stores.kv },
      clock, random, scheduler, logger: logger.child({ role: 'gateway' }),
      commandKeys: new Map([[materials.commandSigner.kid, materials.commandSigner.publicKey]]),
    });
    await gateway.start();
    stopped.push(() => gateway.stop());
    const gatewayServer = await startGatewayServer({
      core: gateway, tls: materials.serverTls, host, port: options.gatewayPort ?? 0,
      trustAnchors: [materials.intermediateCaPem, materials.rootCaPem], clock, logger: logger.child({ role: 'gateway-server' }),
    });
    stopped.push(() => gatewayServer.close());
    const gatewayUrl = gatewayServer.address.url;
    let controlPlane: ControlPlane | undefined;
    let apiUrl: string | undefined;
    if (options.controlPlane !== false && stores.sql !== undefined) {
      controlPlane = await createControlPlane({
        materials, stores: { sql: stores.sql, bus: stores.bus, kv: stores.kv }, clock, random, scheduler, logger: logger.child({ role: 'control-plane' }),
        gatewayUrls: options.advertisedGatewayUrls ?? [gatewayUrl], ...options.controlPlaneTuning, ...(options.scryptParams ? { scryptParams: options.scryptParams } : {}),
      });
      stopped.push(() => controlPlane!.stop());
      await controlPlane.start();
      apiUrl = (await controlPlane.listen({ host, port: options.apiPort ?? 0, tls: true })).url;
    }
    return { stores, controlPlane, gateway, gatewayServer, apiUrl, gatewayUrl, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
