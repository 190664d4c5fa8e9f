import { cpus, freemem, totalmem } from 'node:os';
import { readdir, readFile, statfs } from 'node:fs/promises';
import type { Clock } from '../../core/ports/ports.js';
import type { TelemetryMetrics, TelemetrySource } from '../agent-core.js';

export interface HostMetricsOptions {
  clock: Clock;
  /** Disk usage is reported for the filesystem holding this directory (the agent's). */
  dataDir: string;
  /** Where Linux exposes counters; a test may point it elsewhere. Absent files give 0. */
  procDir?: string;
}

interface Counters {
  atMs: number;
  cpuBusyMs: number;
  cpuTotalMs: number;
  rxBytes: number;
  txBytes: number;
}

/**
 * Host metrics. CPU % and network rates are deltas between consecutive samples, so the first
 * sample reports 0 for both. Network counters and the process count come from /proc (Linux);
 * where /proc is absent (macOS, Windows) they are reported as 0 and process_count is omitted.
 * Memory uses MemAvailable where Linux has it (free memory alone counts the page cache as used).
 */
export function createHostMetricsSource(options: HostMetricsOptions): TelemetrySource {
  const procDir = options.procDir ?? '/proc';
  let previous: Counters | undefined;
  return {
    async sample(): Promise<TelemetryMetrics> {
      const [net, memPct, diskPct, processCount] = await Promise.all([
        readNetCounters(procDir), memoryPct(procDir), diskUsagePct(options.dataDir), countProcesses(procDir),
      ]);
      const cpu = cpuTimes();
      const current: Counters = { atMs: options.clock.nowMs(), ...cpu, rxBytes: net?.rx ?? 0, txBytes: net?.tx ?? 0 };
      const before = previous;
      previous = current;
      const elapsedSec = before ? (current.atMs - before.atMs) / 1000 : 0;
      const rate = (now: number, then: number | undefined) => (then !== undefined && elapsedSec > 0 ? Math.max(0, (now - then) / elapsedSec) : 0);
      const cpuTotal = before ? current.cpuTotalMs - before.cpuTotalMs : 0;
      return {
        cpu_pct: pct(before && cpuTotal > 0 ? (100 * (current.cpuBusyMs - before.cpuBusyMs)) / cpuTotal : 0),
        mem_pct: pct(memPct),
        disk_pct: pct(diskPct),
        net_rx_bytes_per_sec: Math.min(1e15, rate(current.rxBytes, before?.rxBytes)),
        net_tx_bytes_per_sec: Math.min(1e15, rate(current.txBytes, before?.txBytes)),
        ...(processCount === undefined ? {} : { process_count: Math.min(processCount, 10_000_000) }),
      };
    },
  };
}

function pct(value: number): number {
  return Number.isFinite(value) ? Math.round(Math.max(0, Math.min(100, value)) * 100) / 100 : 0;
}

function cpuTimes(): { cpuBusyMs: number; cpuTotalMs: number } {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus()) {
    const sum = times.user + times.nice + times.sys + times.idle + times.irq;
    total += sum;
    busy += sum - times.idle;
  }
  return { cpuBusyMs: busy, cpuTotalMs: total };
}

async function memoryPct(procDir: string): Promise<number> {
  const total = totalmem();
  let available = freemem();
  try {
    const match = /^MemAvailable:\s+(\d+) kB$/m.exec(await readFile(`${procDir}/meminfo`, 'utf8'));
    if (match) available = Number(match[1]) * 1024;
  } catch {
    // Not Linux: os.freemem() it is.
  }
  return total > 0 ? (100 * (total - available)) / total : 0;
}

async function diskUsagePct(dir: string): Promise<number> {
  try {
    const fs = await statfs(dir);
    return fs.blocks > 0 ? (100 * (fs.blocks - fs.bfree)) / fs.blocks : 0;
  } catch {
    return 0;
  }
}

/** Sums every interface but loopback from /proc/net/dev; undefined where it does not exist. */
export async function readNetCounters(procDir: string): Promise<{ rx: number; tx: number } | undefined> {
  let text: string;
  try {
    text = await readFile(`${procDir}/net/dev`, 'utf8');
  } catch {
    return undefined;
  }
  return parseNetDev(text);
}

export function parseNetDev(text: string): { rx: number; tx: number } {
  let rx = 0;
  let tx = 0;
  // Two header lines, then "iface: rx_bytes rx_packets ... (8 rx fields) tx_bytes ...".
  for (const line of text.split('\n').slice(2, 2 + 1024)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    if (line.slice(0, colon).trim() === 'lo') continue;
    const fields = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (fields.length < 9 || !Number.isFinite(fields[0]) || !Number.isFinite(fields[8])) continue;
    rx += fields[0]!;
    tx += fields[8]!;
  }
  return { rx, tx };
}

async function countProcesses(procDir: string): Promise<number | undefined> {
  try {
    return (await readdir(procDir)).filter((name) => /^\d+$/.test(name)).length;
  } catch {
    return undefined;
  }
}
