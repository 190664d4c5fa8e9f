import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureEnrolled, type AgentIdentity } from '../agent/enrollment.js';
import { SdcError } from '../core/errors/index.js';
import { systemClock, systemRandom } from '../runtime/system.js';
import type { BenchApi } from './roundtrip-deployment.js';
import { sleep } from './wall-time.js';

const onlinePollMs = 250;
const devicePagesMax = 100;
const setupAttemptsMax = 5;
const setupRetryStepMs = 50;

export interface EnrollOptions {
  readonly api: BenchApi;
  readonly apiUrl: string;
  readonly caPem: string;
  readonly dataDir: string;
  readonly deviceIds: readonly string[];
  /** Enrollments in flight at once: each is a CSR and an issuance. */
  readonly concurrency: number;
  readonly deadlineMs: number;
  readonly progress: (line: string) => void;
}

/**
 * Step: enroll the agents through the real HTTPS path (a pairing token from the API, then the
 * agent's own enrollment), `concurrency` at a time, until all are or the deadline passed.
 */
export async function enrollAgents(options: EnrollOptions): Promise<{ identities: AgentIdentity[]; setupConflictRetries: number }> {
  const { deviceIds, concurrency } = options;
  const identities: AgentIdentity[] = [];
  let setupConflictRetries = 0;
  for (let i = 0; i < deviceIds.length; i += concurrency) {
    if (systemClock.nowMs() >= options.deadlineMs) break;
    identities.push(...await Promise.all(deviceIds.slice(i, i + concurrency).map((deviceId) =>
      retryOnConflict(() => enrollOne(options, deviceId), () => { setupConflictRetries += 1; }))));
    options.progress(`enrolled ${identities.length}/${deviceIds.length}`);
  }
  return { identities, setupConflictRetries };
}

async function enrollOne(options: EnrollOptions, deviceId: string): Promise<AgentIdentity> {
  const { token: pairingToken } = await options.api<{ token: string }>('POST', `/v1/devices/${deviceId}/pairing-tokens`, {});
  const dir = join(options.dataDir, 'agents', deviceId);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { identity } = await ensureEnrolled({ dir, serverUrl: options.apiUrl, deviceId, pairingToken, caPem: options.caPem, random: systemRandom, clock: systemClock });
  return identity;
}

/**
 * Set-up (not measured) retries a step the server refused with a *_CONFLICT code: concurrent
 * writers on a real database can lose a race the server does not retry itself. Each retry is counted.
 */
async function retryOnConflict<T>(step: () => Promise<T>, onRetry: () => void): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await step();
    } catch (error) {
      const serverCode = SdcError.is(error) ? error.details?.serverCode : undefined;
      if (attempt >= setupAttemptsMax || typeof serverCode !== 'string' || !serverCode.endsWith('_CONFLICT')) throw error;
      onRetry();
      await sleep(setupRetryStepMs * attempt);
    }
  }
}

/** Step: devices the control plane shows online, among ours; polls until all are or the deadline passes. */
export async function waitForOnline(api: BenchApi, ours: ReadonlySet<string>, deadlineMs: number): Promise<number> {
  for (;;) {
    const online = await countOnline(api, ours);
    if (online >= ours.size || systemClock.nowMs() >= deadlineMs) return online;
    await sleep(onlinePollMs);
  }
}

async function countOnline(api: BenchApi, ours: ReadonlySet<string>): Promise<number> {
  let online = 0;
  let cursor: string | undefined;
  for (let page = 0; page < devicePagesMax; page++) {
    const answer = await api<{ items: Array<{ id: string; online: boolean }>; next_cursor?: string | null }>(
      'GET', `/v1/devices?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    online += answer.items.filter((d) => d.online && ours.has(d.id)).length;
    if (!answer.next_cursor) break;
    cursor = answer.next_cursor;
  }
  return online;
}
