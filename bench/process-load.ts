import { readdir, readFile } from 'node:fs/promises';
import { monitorEventLoopDelay, performance as perfHooks } from 'node:perf_hooks';

/** How busy this process was over a phase (RoundtripSummary.commands_phase_load). */
export interface ProcessLoad {
  event_loop_utilization: number;
  event_loop_delay_ms: { p50: number; p99: number; max: number };
  cpu_per_wall: number;
  /** CPU time (user + system, all threads) over the phase: divided by the operations it ran, the figure that holds on a busy machine. */
  cpu_ms: number;
}

/** Event-loop utilization, event-loop delay and CPU use from now until `stop`. */
export function loadMonitor(): { stop(): ProcessLoad } {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const elu = perfHooks.eventLoopUtilization();
  const cpu = process.cpuUsage();
  const startedMs = performance.now();
  const ms = (ns: number) => Math.round(ns / 1e5) / 10;
  return {
    stop() {
      delay.disable();
      const wallMs = Math.max(1, performance.now() - startedMs);
      const used = process.cpuUsage(cpu);
      return {
        event_loop_utilization: Math.round(perfHooks.eventLoopUtilization(elu).utilization * 1000) / 1000,
        event_loop_delay_ms: { p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), max: ms(delay.max) },
        cpu_per_wall: Math.round(((used.user + used.system) / 1000 / wallMs) * 100) / 100,
        cpu_ms: Math.round((used.user + used.system) / 1000),
      };
    },
  };
}

/** RLIMIT_NOFILE (soft) from /proc/self/limits (Node has no getrlimit); null where unknown or unlimited. */
export async function openFilesLimit(): Promise<number | null> {
  try {
    const text = await readFile('/proc/self/limits', 'utf8');
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(text);
    if (match === null) return null;
    return match[1] === 'unlimited' ? null : Number(match[1]);
  } catch {
    return null;
  }
}

/** Samples the open descriptor count (/proc/self/fd) when asked; keeps the peak. */
export function openFileSampler(): { sample(): Promise<void>; peak(): number | null } {
  let peak: number | null = null;
  return {
    async sample() {
      const count = await readdir('/proc/self/fd').then((entries) => entries.length, () => null);
      if (count !== null) peak = Math.max(peak ?? 0, count);
    },
    peak() {
      return peak;
    },
  };
}
