import { EventQueue } from '../sim/model/event-queue.js';
import { drainMicrotasks } from '../sim/drain.js';
import { VirtualTime } from '../core/time/virtual-time.js';

/**
 * `sdc bench sim`'s baseline (issue 14: "sim against the scheduler's empty-event floor"): the CPU
 * of a timer event that does nothing, through each scheduler as the tiers drive it, measured in
 * the same run as the tier's figures. Apart from bench/sim-full.ts so that the model tier can
 * measure its floor without loading the full tier's simulator.
 */
export interface SchedulerFloorRow {
  readonly scheduler: string;
  readonly events: number;
  readonly cpu_us_per_event: number;
}

/** The scheduler the full tier drives now: its rows are divided by this floor. */
export const fullTierFloorScheduler = 'VirtualTime.runUntil + drainMicrotasks (the full tier now)';
/** The model tier's event queue: its rows are divided by this floor. */
export const modelTierFloorScheduler = 'model tier EventQueue push + popUntil';

/** value / floor, or null when the floor measured 0 CPU (too few events for the CPU clock to see: a ratio to nothing is no figure). */
export function ratioToFloor(value: number, floor: SchedulerFloorRow | undefined): number | null {
  return floor !== undefined && floor.cpu_us_per_event > 0 ? value / floor.cpu_us_per_event : null;
}

function cpuMicros(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return used.user + used.system;
}

/** Empty timers through each scheduler as the tiers drive them (or only the one named): the cost of an event that does nothing. */
export async function schedulerFloors(events: number, only?: string): Promise<SchedulerFloorRow[]> {
  const measure = async (scheduler: string, drive: () => Promise<void> | void): Promise<SchedulerFloorRow | undefined> => {
    if (only !== undefined && only !== scheduler) return undefined;
    const start = process.cpuUsage();
    await drive();
    return { scheduler, events, cpu_us_per_event: cpuMicros(start) / events };
  };
  const filled = () => {
    const time = new VirtualTime(0, events + 1);
    for (let i = 0; i < events; i += 1) time.schedule(i % 1_000, () => {});
    return time;
  };
  const immediate = () => new Promise<void>((resolve) => setImmediate(resolve));
  const rows = [
    await measure('VirtualTime.advance (synchronous)', () => { filled().advance(1_000); }),
    await measure(fullTierFloorScheduler, async () => { await filled().runUntil(1_000, drainMicrotasks); }),
    await measure('VirtualTime.runUntil + setImmediate (the full tier before)', async () => { await filled().runUntil(1_000, immediate); }),
    await measure(modelTierFloorScheduler, () => {
      const queue = new EventQueue();
      for (let i = 0; i < events; i += 1) queue.push(i % 1_000, 0, i, 0, 0, 0);
      while (queue.popUntil(1_000)) { /* empty event */ }
    }),
  ];
  return rows.filter((row): row is SchedulerFloorRow => row !== undefined);
}
