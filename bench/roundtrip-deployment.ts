import type { Agent } from 'node:https';
import type { Logger } from 'pino';
import { SdcError } from '../core/errors/index.js';
import type { CommandState } from '../core/protocol/command-machine.js';
import { httpsJson, keptAliveAgent } from '../runtime/https-json.js';
import { systemClock, systemRandom, systemScheduler } from '../runtime/system.js';
import { startDeployment, type Deployment } from '../server/deployment/deployment.js';
import { initDeployment, type DeploymentMaterials } from '../server/materials/materials.js';
import { roundtripLimits } from './roundtrip-limits.js';

/** The control plane's HTTPS API as the bench's operator. */
export type BenchApi = <T>(method: 'GET' | 'POST', path: string, body?: unknown, headers?: Record<string, string>) => Promise<T>;

/** A command as GET /v1/commands/:id answers, the parts the bench reads. */
export interface CommandRecord {
  id: string;
  state: CommandState;
  history: Array<{ state: CommandState; at_ms: number }>;
}

/** A busy run answers slowly; a request is only abandoned long after any the bench should see. */
const apiRequestTimeoutMs = 120_000;

/**
 * The operator's API connections (issue 17): kept idle for longer than a command waits for its
 * terminal event (seconds under load, tens of seconds at 1,000 agents on a busy machine), where
 * Node's global agent drops them after 5 s, so most POSTs reuse a connection instead of paying a
 * TLS handshake in the services' process; below the API's own 72 s keep-alive (Node also keeps it a
 * second under the server's hint). One connection per agent at the bench's limit, plus the
 * read-back's and the set-up's calls: the bound is never what makes a request wait.
 */
const apiConnectionIdleMs = 60_000;
const apiConnectionsMax = roundtripLimits.agentsMax + 256;

export interface BenchDeployment {
  readonly materials: DeploymentMaterials;
  readonly deployment: Deployment;
  readonly apiUrl: string;
  readonly caPem: string;
  /** Keeps this run's device ids and idempotency keys apart from any other run's. */
  readonly runTag: string;
  /** The first token: harnesses that run shorter than its lifetime use it as is. */
  readonly token: string;
  /** TLS connections the operator's API client has opened so far (each a handshake in the services' process). */
  apiConnectionsOpened(): number;
  /** The token the API calls use now (renewed when one was found expired). */
  currentToken(): string;
  /**
   * A fresh token when `expired` is still the current one (one login for all callers that found
   * it expired at once); the current one otherwise. The live stream reconnects with it.
   */
  renewToken(expired: string): Promise<string>;
  readonly api: BenchApi;
  stop(): Promise<void>;
}

export interface BenchDeploymentOptions {
  readonly dataDir: string;
  readonly logger: Logger;
  readonly redisUrl?: string;
  readonly mysqlUrl?: string;
  readonly keyPrefix?: string;
  /** Operator token lifetime (default the control plane's): a test makes it short to see the bench outlive it. */
  readonly tokenTtlMs?: number;
  /** ControlPlaneOptions.commandAuditWindowMs (default the deployment's; null: each command commit awaits its drain). */
  readonly commandAuditWindowMs?: number | null;
}

/**
 * Step: a deployment (control plane + gateway; embedded stores unless Redis/MySQL are given) in
 * `dataDir`, and a throwaway admin logged in. The caller stops it; if the operator cannot be set
 * up, it is stopped here.
 */
export async function startBenchDeployment(options: BenchDeploymentOptions): Promise<BenchDeployment> {
  const materials = await initDeployment({ dataDir: options.dataDir, clock: systemClock, random: systemRandom });
  const deployment = await startDeployment({
    materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger: options.logger,
    ...(options.redisUrl ? { redisUrl: options.redisUrl, keyPrefix: options.keyPrefix ?? `sdc-bench-${process.pid}-${Date.now()}:` } : {}),
    ...(options.mysqlUrl ? { mysqlUrl: options.mysqlUrl } : {}),
    // A throwaway account: cheap password hashing keeps start-up short.
    scryptParams: { N: 2 ** 14, r: 8, p: 1 },
    controlPlaneTuning: {
      ...(options.tokenTtlMs === undefined ? {} : { jwt: { tokenTtlMs: options.tokenTtlMs } }),
      ...(options.commandAuditWindowMs === undefined ? {} : { commandAuditWindowMs: options.commandAuditWindowMs }),
    },
  });
  const apiAgent = keptAliveAgent({ socketsMax: apiConnectionsMax, idleTimeoutMs: apiConnectionIdleMs });
  let connectionsOpened = 0;
  const createConnection = apiAgent.createConnection.bind(apiAgent);
  apiAgent.createConnection = (connectOptions, callback) => {
    connectionsOpened += 1;
    return createConnection(connectOptions, callback);
  };
  const stop = async (): Promise<void> => {
    apiAgent.destroy();
    await deployment.stop();
  };
  try {
    return { ...await logInOperator(materials, deployment, apiAgent), materials, deployment, apiConnectionsOpened: () => connectionsOpened, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

type OperatorSession = Pick<BenchDeployment, 'apiUrl' | 'caPem' | 'runTag' | 'token' | 'currentToken' | 'renewToken' | 'api'>;

async function logInOperator(materials: DeploymentMaterials, deployment: Deployment, agent: Agent): Promise<OperatorSession> {
  const { controlPlane, apiUrl } = deployment;
  if (controlPlane === undefined || apiUrl === undefined) throw new SdcError('PROTO_INVALID_ARGUMENT', 'the bench needs a control plane');
  const caPem = materials.rootCaPem;
  const runTag = Buffer.from(systemRandom.bytes(3)).toString('hex');
  const adminName = `bench-admin-${runTag}`;
  const password = Buffer.from(systemRandom.bytes(18)).toString('base64url');
  await controlPlane.auth.users.add({ name: adminName, role: 'admin', password, nowMs: systemClock.nowMs() });
  const logIn = async (): Promise<string> =>
    (await httpsJson<{ token: string }>({ method: 'POST', url: new URL('/v1/auth/login', apiUrl), caPem, body: { name: adminName, password }, agent })).body.token;
  const firstToken = await logIn();
  let token = firstToken;
  const request = async <T>(method: 'GET' | 'POST', path: string, body?: unknown, headers?: Record<string, string>): Promise<T> =>
    (await httpsJson<T>({ method, url: new URL(path, apiUrl), caPem, token, ...(body === undefined ? {} : { body }), ...(headers ? { headers } : {}), timeoutMs: apiRequestTimeoutMs, agent })).body;
  // A run at 1,000 agents on a busy machine outlasts the operator token (its read-back failed
  // JWT_EXPIRED after 13 minutes): log in again once and repeat the request.
  // One login for all the requests that found the token expired at once: a login each was refused
  // API_RATE_LIMITED by the account's login limit (the 1,000-agent read-back, 2026-12-03).
  let relogin: Promise<void> | undefined;
  const renewToken = async (expired: string): Promise<string> => {
    if (token === expired) {
      relogin ??= logIn().then((fresh) => { token = fresh; }).finally(() => { relogin = undefined; });
      await relogin;
    }
    return token;
  };
  const api: BenchApi = async <T>(method: 'GET' | 'POST', path: string, body?: unknown, headers?: Record<string, string>): Promise<T> => {
    const used = token;
    try {
      return await request<T>(method, path, body, headers);
    } catch (error) {
      if (!(SdcError.is(error) && error.details?.['serverCode'] === 'JWT_EXPIRED')) throw error;
      await renewToken(used);
      return request<T>(method, path, body, headers);
    }
  };
  return { apiUrl, caPem, runTag, token: firstToken, currentToken: () => token, renewToken, api };
}
