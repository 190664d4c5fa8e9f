import type { VirtualTime } from '../../../core/time/virtual-time.js';

/**
 * Runs a download to its end on virtual time, for the downloader's tests: each round lets the
 * promise work already started run (one setImmediate), then fires the timers due in the next
 * virtual millisecond. Bounded, so a download that never settles ends the loop and the test's
 * await of `work` shows it rather than the loop spinning forever.
 */
export async function onVirtualTime<T>(time: VirtualTime, work: Promise<T>): Promise<T> {
  let settled = false;
  void work.finally(() => { settled = true; }).catch(() => undefined);
  for (let rounds = 0; !settled && rounds < 100_000; rounds += 1) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (!settled) await time.runUntil(time.nowMs() + 1, async () => undefined);
  }
  return work;
}
