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

/*
 * The bounds below are the harness's, not what a run judges: each is a condition wait that ends as
 * soon as the condition holds, so they are generous and only a hang waits one out. On a busy
 * machine (a nice'd test beside busy loops, three deployments in one process) the API took tens of
 * seconds to listen and name the stores, and a start after the heal took 30 s; the old 30 s and
 * 10 s bounds, a 5 s request timeout and a store wait of about 45 s could run out with nothing wrong.
 */

/**
 * How `sdc chaos run` waits for a store at start: waits capped at 1 s, so the start follows the
 * heal within about a second, and up to 240 attempts (about 3 minutes; `sdc serve` waits about 9:
 * storeRetryServe). The harness always brings the store back, so the start giving up here would
 * only be a harness step that never came.
 */
export const startOutageRetry: StoreRetryLimits = Object.freeze({ attemptsMax: 240, backoffMsInitial: 200, backoffMsMax: 1_000 });
/** How long the API may take to listen and name the store down. */
const readyzSeenBoundMs = 120_000;
/** One /readyz request; a request that times out is sent again within the bound. */
const readyzTimeoutMs = 30_000;
/** How long /readyz may take to say ready once the start resolved. */
const readyAfterBoundMs = 120_000;

export interface StartOutageFacts {
  /** The stores down at start (one, or Redis and MySQL together). */
  readonly stores: readonly string[];
  /** `/readyz` while the stores were down: its status code and body (null if it never named every one). */
  readonly readyz_while_down: { readonly status: number; readonly body: ReadinessReport } | null;
  /** Wall ms the stores were kept down after /readyz named them. */
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
 * Rides the start out: waits until /readyz names every store of `stores` down (the API URL comes
 * from onApiListening), keeps them down `downForMs` more, enables their proxies, and waits for the start.
 */
export async function rideOutStartOutage<T>(options: {
  stores: readonly string[]; proxies: readonly Proxy[]; downForMs: number; caPem: string; apiUrl: () => string | undefined; starting: Promise<T>;
}): Promise<{ started: T; facts: StartOutageFacts }> {
  // A start that fails meanwhile is awaited below; do not let it reject unhandled while we poll.
  options.starting.catch(() => undefined);
  const whileDown = await waitFor(async () => {
    const url = options.apiUrl();
    if (url === undefined) return undefined;
    const answer = await getReadyz(url, options.caPem);
    return options.stores.every((store) => answer.body.down.includes(store)) ? answer : undefined;
  }, readyzSeenBoundMs, 200) ?? null;
  await sleepMs(options.downForMs);
  for (const proxy of options.proxies) await proxy.update({ enabled: true, listen: proxy.listen, upstream: proxy.upstream });
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
    facts: { stores: options.stores, readyz_while_down: whileDown, down_for_ms: options.downForMs, started_after_heal_ms: startedAfterHealMs, readyz_after: after },
  };
}

/**
 * A store lost part-way through the start (issue 11): the stores answered, then one went away
 * while the services were starting. Latency on the store's proxy (each way) stretches the start
 * after the stores first answer (migrations, consumer groups: many round trips) so that the cut
 * lands inside it, not after it.
 */
export const midStartLatencyMs = 150;

export interface MidStartLossFacts {
  readonly store: string;
  /** `/readyz` when the store had answered and the start was still going: the moment of the cut. */
  readonly readyz_before_cut: { readonly status: number; readonly body: ReadinessReport } | null;
  /** Whether the start had already completed when the proxy was disabled (the cut then shows nothing). */
  readonly started_before_cut: boolean;
  /** `/readyz` after the cut, naming the store down while the start waits (null if never). */
  readonly readyz_after_cut: { readonly status: number; readonly body: ReadinessReport } | null;
  readonly down_for_ms: number;
  readonly started_after_heal_ms: number | null;
  readonly readyz_after: { readonly status: number; readonly body: ReadinessReport } | null;
}

/**
 * Rides the cut out: waits until /readyz shows the store up while the start is still going, cuts
 * it (proxy disabled, latency removed), waits until /readyz names it down again, keeps it down
 * `downForMs`, enables the proxy and waits for the start; `healLatency` removes the latency toxic.
 */
export async function rideOutLossMidStart<T>(options: {
  store: 'redis' | 'mysql'; proxy: Proxy; healLatency: () => Promise<void>; downForMs: number; caPem: string; apiUrl: () => string | undefined; starting: Promise<T>;
}): Promise<{ started: T; facts: MidStartLossFacts }> {
  const { proxy, store } = options;
  let startedYet = false;
  options.starting.then(() => { startedYet = true; }, () => undefined);
  const readyz = async (accept: (answer: { status: number; body: ReadinessReport }) => boolean) => {
    const url = options.apiUrl();
    if (url === undefined) return undefined;
    const answer = await getReadyz(url, options.caPem);
    return accept(answer) ? answer : undefined;
  };
  const up = (answer: { body: ReadinessReport }) => answer.body.dependencies.some((d) => d.name === store && d.state === 'up');
  const beforeCut = await waitFor(() => readyz((a) => a.body.status === 'starting' && up(a)), readyzSeenBoundMs, 50) ?? null;
  await proxy.update({ enabled: false, listen: proxy.listen, upstream: proxy.upstream });
  const startedBeforeCut = startedYet;
  await options.healLatency();
  const afterCut = await waitFor(() => readyz((a) => a.status === 503 && a.body.down.includes(store)), readyzSeenBoundMs, 200) ?? null;
  await sleepMs(options.downForMs);
  await proxy.update({ enabled: true, listen: proxy.listen, upstream: proxy.upstream });
  const healedAtMs = Date.now();
  const started = await options.starting;
  const startedAfterHealMs = Date.now() - healedAtMs;
  const after = (await waitFor(() => readyz((a) => a.status === 200), readyAfterBoundMs, 250)) ?? null;
  return {
    started,
    facts: {
      store, readyz_before_cut: beforeCut, started_before_cut: startedBeforeCut, readyz_after_cut: afterCut,
      down_for_ms: options.downForMs, started_after_heal_ms: startedAfterHealMs, readyz_after: after,
    },
  };
}

/** The cut must have landed inside the start, been named by /readyz (503), and the deployment ready (200) after. */
export function midStartLossViolations(facts: MidStartLossFacts): Array<{ checker: string; message: string }> {
  const found: Array<{ checker: string; message: string }> = [];
  if (facts.readyz_before_cut === null || facts.started_before_cut) {
    found.push({ checker: 'fault', message: `the cut did not land inside the start (store seen up while starting: ${facts.readyz_before_cut !== null}, started already: ${facts.started_before_cut})` });
  }
  const during = facts.readyz_after_cut;
  if (during === null || during.status !== 503 || !during.body.down.includes(facts.store)) {
    found.push({ checker: 'readiness', message: `/readyz never answered 503 naming ${facts.store} after it was lost mid-start: ${JSON.stringify(during)}` });
  }
  if (facts.readyz_after?.status !== 200) found.push({ checker: 'readiness', message: `/readyz after the start answered ${JSON.stringify(facts.readyz_after)}` });
  return found;
}
