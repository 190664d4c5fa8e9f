import type { Logger } from 'pino';
import { createGatewayCore, type GatewayCore, type GatewayCoreOptions } from '../../../server/gateway/gateway-core.js';
import { startGatewayServer, type GatewayServer } from '../../../server/gateway/gateway-server.js';
import { createRevocationCheck } from '../../../server/gateway/revocation-check.js';
import { CrlFileWatch } from '../../../server/deployment/crl-file-watch.js';
import type { Deployment } from '../../../server/deployment/deployment.js';
import type { DeploymentMaterials } from '../../../server/materials/materials.js';
import { createNodeEd25519Provider } from '../../../runtime/ed25519-node.js';
import { systemClock, systemRandom, systemScheduler } from '../../../runtime/system.js';
import { pkiPaths } from '../../../trust/pki-directory.js';
import { kvKeys } from '../../../server/bus-contract/streams.js';

/**
 * A gateway crash for `sdc chaos run --scenario gateway-crash`: the deployment's gateway is
 * aborted (its core stops every timer and loop and writes nothing more) and its server killed
 * (every socket destroyed, no close frames), as a process killed with SIGKILL would leave it. A
 * new gateway with the same id then starts on the same stores, as its supervisor would restart
 * it, wired as startDeployment wires one.
 */

export interface ReplacementGateway {
  readonly core: GatewayCore;
  readonly server: GatewayServer;
  stop(): Promise<void>;
}

export function crashGateway(deployment: Deployment): void {
  deployment.gateway.abort();
  deployment.gatewayServer.kill();
}

export async function startReplacementGateway(options: {
  deployment: Deployment; materials: DeploymentMaterials; gatewayId: string; tuning: Partial<GatewayCoreOptions>; logger: Logger;
}): Promise<ReplacementGateway> {
  const { deployment, materials, logger } = options;
  // The deployment's CRL record: the replacement starts with the highest CRL any gateway took and refuses an older file.
  const crl = new CrlFileWatch({
    path: pkiPaths(materials.dataDir).crlPath, intermediateCaPem: materials.intermediateCaPem, scheduler: systemScheduler, clock: systemClock, logger,
    record: { kv: deployment.stores.kv, key: kvKeys.gatewayCrl },
  });
  await crl.start();
  const core = createGatewayCore({
    isRevoked: createRevocationCheck({ kv: deployment.stores.kv, crlSerials: () => crl.serials() }),
    ...options.tuning,
    gatewayId: options.gatewayId, signer: materials.gatewaySigner, provider: createNodeEd25519Provider(),
    stores: { bus: deployment.stores.bus, kv: deployment.stores.kv },
    clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger,
    commandKeys: new Map([[materials.commandSigner.kid, materials.commandSigner.publicKey]]),
  });
  try {
    await core.start();
    const server = await startGatewayServer({
      core, tls: materials.serverTls, host: deployment.gatewayServer.address.host, port: 0,
      trustAnchors: [materials.intermediateCaPem, materials.rootCaPem], clock: systemClock, logger,
    });
    return {
      core, server,
      async stop() {
        await server.close();
        await core.stop();
        crl.stop();
      },
    };
  } catch (error) {
    core.abort();
    crl.stop();
    throw error;
  }
}
