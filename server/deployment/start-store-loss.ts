import type { Logger } from 'pino';
import { SdcError } from '../../core/errors/index.js';
import type { RandomSource, Scheduler } from '../../core/ports/ports.js';
import type { StoreTarget } from '../stores/store-url.js';
import type { Readiness } from './readiness.js';
import { retryDelayMs, untilReachable, type StoreRetryLimits } from './store-connect.js';

/**
 * A store lost part-way through start-up (issue 11): the stores answered, then one went away while
 * the gateway and the control plane were starting (migrations, consumer groups, first reads). A
 * process that waits for its stores at t = 0 (`sdc serve`: storeRetryServe) rides this out the
 * same way: what the failed attempt started is stopped, readiness names the store down (/readyz
 * 503), the start waits for it with the same bounded backoff, then runs again. With storeRetryNone
 * (tests, `sdc demo`) the first failure is thrown as before.
 */

/**
 * Starts in all: a store that goes away five times while the services start is not coming back
 * steadily, and each wait in between is itself bounded by the store's retry limits.
 */
export const startAttemptsMax = 5;
/** A probe that does not answer in this long counts as down (a black-holed link answers nothing). */
const probeTimeoutMs = 5_000;

type Stop = () => Promise<void>;

export interface StartRidingOutOptions<T> {
  readonly limits: StoreRetryLimits;
  /** Live probes of the opened real stores, by name (`mysql`, `redis`), with their targets for the logs. */
  readonly probes: ReadonlyMap<string, { readonly target: StoreTarget; readonly probe: () => Promise<unknown> }>;
  readonly readiness: Readiness;
  readonly scheduler: Scheduler;
  readonly random: RandomSource;
  readonly logger: Logger;
  /** One start; what it started is registered with `onStop`, so that a failed attempt is undone. */
  readonly attempt: (onStop: (stop: Stop) => void) => Promise<T>;
}

/** True when `error`, or an error it was caused by (a migration that failed mid-way), is STORE_UNAVAILABLE. */
export function isStoreLoss(error: unknown): boolean {
  for (let cause = error, depth = 0; cause !== undefined && cause !== null && depth < 8; depth++) {
    if (SdcError.is(cause, 'STORE_UNAVAILABLE')) return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}

function withTimeout(scheduler: Scheduler, probe: () => Promise<unknown>): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = scheduler.schedule(probeTimeoutMs, () => reject(new SdcError('STORE_UNAVAILABLE', `no answer in ${probeTimeoutMs} ms`)));
    probe().then((value) => { scheduler.cancel(timer); resolve(value); }, (error: unknown) => { scheduler.cancel(timer); reject(error); });
  });
}

async function undo(stops: readonly Stop[], logger: Logger): Promise<void> {
  for (const stop of [...stops].reverse()) await stop().catch((error: unknown) => logger.warn({ err: error }, 'stopping a failed start attempt failed'));
}

/** The stores that do not answer their probe now. */
async function downStores<T>(options: StartRidingOutOptions<T>): Promise<string[]> {
  const names = [...options.probes.keys()];
  const results = await Promise.allSettled(names.map((name) => withTimeout(options.scheduler, options.probes.get(name)!.probe)));
  return names.filter((_, i) => results[i]!.status === 'rejected');
}

/** Waits for each store that is down (readiness names it meanwhile), or backs off once if none is. */
async function waitForStores<T>(options: StartRidingOutOptions<T>, down: readonly string[], startAttempt: number): Promise<void> {
  if (down.length === 0) {
    await new Promise<void>((resolve) => options.scheduler.schedule(retryDelayMs(options.limits, startAttempt, options.random), () => resolve()));
    return;
  }
  for (const name of down) {
    const { target, probe } = options.probes.get(name)!;
    options.readiness.markDown(name, 'STORE_UNAVAILABLE');
    await untilReachable({
      target, limits: options.limits, scheduler: options.scheduler, random: options.random, logger: options.logger, readiness: options.readiness,
      connect: () => withTimeout(options.scheduler, probe),
    });
  }
}

/**
 * Runs `attempt` until it succeeds; returns its value and what it started (to stop with the
 * deployment). A failure is retried only while start attempts remain and a store is down now or
 * the failure was a store's; anything else is thrown at once, after undoing the attempt.
 */
export async function startRidingOutStoreLoss<T>(options: StartRidingOutOptions<T>): Promise<{ value: T; stops: Stop[] }> {
  const attemptsMax = options.limits.attemptsMax > 1 ? startAttemptsMax : 1;
  for (let startAttempt = 1; ; startAttempt++) {
    const stops: Stop[] = [];
    try {
      const value = await options.attempt((stop) => { stops.push(stop); });
      if (startAttempt > 1) options.logger.info({ startAttempt }, 'started after a store came back');
      return { value, stops };
    } catch (error) {
      await undo(stops, options.logger);
      if (startAttempt >= attemptsMax) throw error;
      const down = await downStores(options);
      if (down.length === 0 && !isStoreLoss(error)) throw error;
      options.logger.warn({ err: error, startAttempt, startAttemptsMax: attemptsMax, down }, `a store was lost while starting${down.length > 0 ? ` (${down.join(', ')})` : ''}; waiting for it, then starting again`);
      await waitForStores(options, down, startAttempt);
    }
  }
}
