import { systemScheduler } from '../../runtime/system.js';

/** Waits `ms` of wall time (a `--real` run is on the wall clock). */
export function sleep(ms: number): Promise<void> {
  return new Promise<void>((resolve) => { systemScheduler.schedule(ms, () => resolve()); });
}

/** Runs `work` over `items` with at most `limit` in flight. */
export async function forEachBounded<T>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      await work(items[index]!, index);
    }
  }));
}
