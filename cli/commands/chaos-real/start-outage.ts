import { request } from 'node:https';
import type { Proxy } from 'toxiproxy-node-client';
import type { ReadinessReport } from '../../../server/deployment/readiness.js';
import type { StoreRetryLimits } from '../../../server/deployment/store-connect.js';
import { sleepMs, waitFor } from './fault-context.js';

/**
 * A store down while the deployment starts (issue 11, faults at t = 0): the store's proxy is
 * disabled before `startDeployment` is called, so its first connection attempts are refused. The
 * deployment must ride it out as `sdc serve` does: its API answers `/readyz` 503 naming the store
 * while it waits, and once the proxy is enabled again it starts and `/readyz` answers 200. What was
 * seen goes into the report's `scenario_facts.start_outage`.
 */

/** How `sdc chaos run` waits for a store at start (`sdc serve` waits longer: storeRetryServe). */
export const startOutageRetry: StoreRetryLimits = Object.freeze({ attemptsMax: 60, backoffMsInitial: 200, backoffMsMax: 1_000 });
/** How long the API may take to listen and name the store down. */
const readyzSeenBoundMs = 30_000;
const readyzTimeoutMs = 5_000;
/** How long /readyz may take to say ready once the start resolved. */
const readyAfterBoundMs = 10_000;

export interface StartOutageFacts {
  readonly store: string;
  /** `/readyz` while the store was down: its status code and body (null if it never named the store). */
  readonly readyz_while_down: { readonly status: number; readonly body: ReadinessReport } | null;
  /** Wall ms the store was kept down after /readyz named it. */
  readonly down_for_ms: number;
  /** Wall ms from the heal until startDeployment resolved. */
  readonly started_after_heal_ms: number | null;
  /** `/readyz` once started. */
  readonly readyz_after: { readonly status: number; readonly body: ReadinessReport } | null;
}

/** GET /readyz with the deployment's CA; its 503 body is the report too. */
export function getReadyz(apiUrl: string, caPem: string): Promise<{ status: number; body: ReadinessReport }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL('/readyz', apiUrl), { method: 'GET', ca: caPem, minVersion: 'TLSv1.3', timeout: readyzTimeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as ReadinessReport });
        } catch (error) {
          reject(error as Error);
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no /readyz answer within ${readyzTimeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Rides the start out: waits until /readyz names `store` down (the API URL comes from
 * onApiListening), keeps it down `downForMs` more, enables the proxy, and waits for the start.
 */
export async function rideOutStartOutage<T>(options: {
  store: string; proxy: Proxy; downForMs: number; caPem: string; apiUrl: () => string | undefined; starting: Promise<T>;
}): Promise<{ started: T; facts: StartOutageFacts }> {
  const { proxy } = options;
  // A start that fails meanwhile is awaited below; do not let it reject unhandled while we poll.
  options.starting.catch(() => undefined);
  const whileDown = await waitFor(async () => {
    const url = options.apiUrl();
    if (url === undefined) return undefined;
    const answer = await getReadyz(url, options.caPem);
    return answer.body.down.includes(options.store) ? answer : undefined;
  }, readyzSeenBoundMs, 200) ?? null;
  await sleepMs(options.downForMs);
  await proxy.update({ enabled: true, listen: proxy.listen, upstream: proxy.upstream });
  const healedAtMs = Date.now();
  const started = await options.starting;
  const startedAfterHealMs = Date.now() - healedAtMs;
  const url = options.apiUrl();
  // /readyz may serve its report from before the start for up to readinessLimits.reportCacheMs (1 s): read until 200, bounded.
  const after = url === undefined ? null : (await waitFor(async () => {
    const answer = await getReadyz(url, options.caPem);
    return answer.status === 200 ? answer : undefined;
  }, readyAfterBoundMs, 250)) ?? await getReadyz(url, options.caPem).catch(() => null);
  return {
    started,
    facts: { store: options.store, readyz_while_down: whileDown, down_for_ms: options.downForMs, started_after_heal_ms: startedAfterHealMs, readyz_after: after },
  };
}
