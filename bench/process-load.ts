import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { monitorEventLoopDelay, performance as perfHooks } from 'node:perf_hooks';

/** How busy this process was over a phase (RoundtripSummary.commands_phase_load). */
export interface ProcessLoad {
  event_loop_utilization: number;
  event_loop_delay_ms: { p50: number; p99: number; max: number };
  cpu_per_wall: number;
  /** CPU time (user + system, all threads) over the phase: divided by the operations it ran, the figure that holds on a busy machine. */
  cpu_ms: number;
  /**
   * CPU time of the main thread alone (the event loop's; not the JIT's or GC helpers') per wall time,
   * from /proc/self/task/<pid>/stat (10 ms ticks); absent where /proc is not there (and from runs
   * before 6 December 2026). On a machine other processes keep busy the event loop's utilization
   * counts the time the thread was runnable but preempted mid-callback as busy; this counts only the
   * time it ran, so it is what the utilization would be with the machine to itself (issue 17).
   */
  main_thread_cpu_per_wall?: number;
}

/** Clock ticks per second in /proc's stat files (USER_HZ: 100 on Linux whatever the kernel's HZ). */
const procTicksPerS = 100;

/** The main thread's user + system CPU in ms from /proc, or undefined where it cannot be read. */
export function mainThreadCpuMs(pid: number = process.pid, read: (path: string) => string = (path) => readFileSync(path, 'utf8')): number | undefined {
  let text: string;
  try {
    text = read(`/proc/self/task/${pid}/stat`);
  } catch {
    return undefined;
  }
  // Fields after the command name, which is in parentheses and may itself hold spaces or ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), 12 and 13 counted from the state (field 3).
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return ((utime + stime) * 1_000) / procTicksPerS;
}

/** Event-loop utilization, event-loop delay and CPU use from now until `stop`. */
export function loadMonitor(): { stop(): ProcessLoad } {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const elu = perfHooks.eventLoopUtilization();
  const cpu = process.cpuUsage();
  const mainCpuMs = mainThreadCpuMs();
  const startedMs = performance.now();
  const ms = (ns: number) => Math.round(ns / 1e5) / 10;
  return {
    stop() {
      delay.disable();
      const wallMs = Math.max(1, performance.now() - startedMs);
      const used = process.cpuUsage(cpu);
      const mainCpuEndMs = mainCpuMs === undefined ? undefined : mainThreadCpuMs();
      return {
        event_loop_utilization: Math.round(perfHooks.eventLoopUtilization(elu).utilization * 1000) / 1000,
        event_loop_delay_ms: { p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), max: ms(delay.max) },
        cpu_per_wall: Math.round(((used.user + used.system) / 1000 / wallMs) * 100) / 100,
        cpu_ms: Math.round((used.user + used.system) / 1000),
        ...(mainCpuMs === undefined || mainCpuEndMs === undefined ? {} : { main_thread_cpu_per_wall: Math.round(((mainCpuEndMs - mainCpuMs) / wallMs) * 1000) / 1000 }),
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
