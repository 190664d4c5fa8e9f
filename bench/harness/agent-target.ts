import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { loadIdentity, type AgentIdentity } from '../../agent/enrollment.js';
import { agentPaths, pinnedKeyResolver } from '../../agent/state/agent-state.js';
import { SdcError } from '../../core/errors/index.js';
import { deviceKid } from '../../core/protocol/session/gateway-connection.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import type { BenchApi } from '../roundtrip-deployment.js';
import { secureContextOnce, type AgentSessionTally, type AgentVuIdentity } from './agent-session.js';
import { startEnrolledDeployment } from './in-process.js';
import { agentScenarioLimits } from './scenario.js';

/**
 * Where the agent scenario's VUs connect: an in-process deployment with one device enrolled per
 * VU (the default), or a running deployment's enrolled agent directories listed in agents.json
 * (the file bench/k6/agent.js reads: `{ "agents": [ { "device_id", "dir" } ] }`).
 */

const provider = createNodeEd25519Provider();

/** A device's identity as a VU uses it; `gatewayUrl` overrides the one pinned at enrollment. */
export function vuIdentity(identity: AgentIdentity, gatewayUrl?: string): AgentVuIdentity {
  const url = gatewayUrl ?? identity.trust.gateway_urls[0];
  if (url === undefined) throw new SdcError('CLI_USAGE', `${identity.paths.dir} names no gateway: pass --gateway HOST:PORT`);
  return {
    deviceId: identity.deviceId, url,
    signer: { kid: deviceKid(identity.deviceId), seed: identity.seed, provider },
    resolveGatewayKey: pinnedKeyResolver(identity.trust.gateway_keys),
    secureContext: secureContextOnce({ certPem: identity.certPem + identity.chainPem, keyPem: identity.keyPem, caPem: identity.trust.ca_pem }),
  };
}

/** agents.json's devices, each directory loaded as the agent loads it (trust.json, device.key, device.pem, chain.pem). */
export async function agentsFromFile(path: string, gateway: string | undefined): Promise<AgentVuIdentity[]> {
  const text = await readFile(path, 'utf8').catch(() => { throw new SdcError('CLI_USAGE', `--agents-file ${path} cannot be read`); });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new SdcError('CLI_USAGE', `--agents-file ${path} is not JSON`);
  }
  const agents = (parsed as { agents?: unknown } | null)?.agents;
  if (!Array.isArray(agents) || agents.length === 0 || agents.length > agentScenarioLimits.vusMax) {
    throw new SdcError('CLI_USAGE', `--agents-file ${path}: agents is a list of 1 to ${agentScenarioLimits.vusMax} { device_id, dir }`);
  }
  const gatewayUrl = gateway === undefined ? undefined : `wss://${gateway}/v1/agent`;
  const identities: AgentVuIdentity[] = [];
  for (const [i, entry] of agents.entries()) {
    const { device_id: deviceId, dir } = (entry ?? {}) as { device_id?: unknown; dir?: unknown };
    if (typeof deviceId !== 'string' || typeof dir !== 'string') throw new SdcError('CLI_USAGE', `--agents-file ${path}: entry ${i + 1} needs device_id and dir`);
    const identity = await loadIdentity(agentPaths(dir));
    if (identity.deviceId !== deviceId) throw new SdcError('CLI_USAGE', `--agents-file ${path}: ${dir} is enrolled as ${identity.deviceId}, not ${deviceId}`);
    identities.push(vuIdentity(identity, gatewayUrl));
  }
  return identities;
}

/** Commands sent through the API during an in-process run, so the VUs have deliveries to answer. */
export interface CommandFeedTally {
  created: number;
  /** Not sent: no device had a session, or `inFlightMax` requests were waiting already. */
  skipped: number;
  readonly failed_by_code: Record<string, number>;
}

/** Requests to the API in flight at once; beyond it a tick is skipped (the API is part of the deployment under load). */
const commandsInFlightMax = 16;

/**
 * Every `1000 / ratePerS` ms, one EXEC_PING_KERNEL command to the next device with a session
 * (round robin), through the operator API with its own Idempotency-Key. Returns the stop.
 */
export function startCommandFeed(api: BenchApi, runTag: string, ratePerS: number, tally: AgentSessionTally): { stop: () => Promise<void>; tally: CommandFeedTally } {
  const feed: CommandFeedTally = { created: 0, skipped: 0, failed_by_code: {} };
  const inFlight = new Set<Promise<void>>();
  let index = 0;
  const timer = setInterval(() => {
    const ready = [...tally.ready];
    if (ready.length === 0 || inFlight.size >= commandsInFlightMax) {
      feed.skipped += 1;
      return;
    }
    const deviceId = ready[index % ready.length]!;
    const key = `${runTag}-agents-${index}`;
    index += 1;
    const request: Promise<void> = api('POST', '/v1/commands', { device_id: deviceId, opcode: 'EXEC_PING_KERNEL', args: {} }, { 'idempotency-key': key })
      .then(() => { feed.created += 1; }, (error: unknown) => {
        const code = SdcError.is(error) ? String(error.details?.['serverCode'] ?? error.code) : 'UNKNOWN';
        feed.failed_by_code[code] = (feed.failed_by_code[code] ?? 0) + 1;
      })
      .finally(() => inFlight.delete(request));
    inFlight.add(request);
  }, 1000 / ratePerS);
  return {
    tally: feed,
    stop: async () => {
      clearInterval(timer);
      await Promise.all(inFlight);
    },
  };
}

/**
 * Step: an in-process deployment with `devices` devices enrolled through the real HTTPS path,
 * none connected: the VUs are their agents (startEnrolledDeployment).
 */
export async function startInProcessAgentTarget(options: {
  devices: number; logger: Logger; setupTimeoutMs: number; progress: (line: string) => void; redisUrl?: string; mysqlUrl?: string;
}): Promise<{ identities: AgentVuIdentity[]; api: BenchApi; runTag: string; stop: () => Promise<void> }> {
  const { bench, unconnected, stop } = await startEnrolledDeployment({ ...options, running: 0, unconnected: options.devices, runningPrefix: 'agent', unconnectedPrefix: 'vu', dirPrefix: 'sdc-bench-agents-' });
  return { identities: unconnected.map((identity) => vuIdentity(identity, bench.deployment.gatewayUrl)), api: bench.api, runTag: bench.runTag, stop };
}
