import { systemScheduler } from '../runtime/system.js';

/** Waits `ms` of wall time: the round-trip bench measures a real deployment on the system clock. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => { systemScheduler.schedule(ms, resolve); });
}
