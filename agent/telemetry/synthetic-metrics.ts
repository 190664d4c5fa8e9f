import type { RandomSource } from '../../core/ports/ports.js';
import type { TelemetryMetrics, TelemetrySource } from '../agent-core.js';

export interface SyntheticMetricsOptions {
  random: RandomSource;
  /** Base load in percent [0, 100]; samples wander around it. */
  baseLoadPct?: number;
  /** Largest step of a random walk per sample, in percent points. */
  stepPctMax?: number;
}

/**
 * Telemetry for the simulator: bounded random walks drawn from the RandomSource only (integer
 * draws, so a seed replays exactly). Values stay inside the TELEMETRY schema's ranges.
 */
export function createSyntheticMetricsSource(options: SyntheticMetricsOptions): TelemetrySource {
  const { random } = options;
  const base = clampPct(options.baseLoadPct ?? 30);
  const step = Math.max(0, Math.min(50, Math.floor(options.stepPctMax ?? 5)));
  let cpu = base;
  let mem = base;
  let disk = base;
  const walk = (value: number): number => clampPct(value + random.intBelow(2 * step + 1) - step);
  return {
    async sample(): Promise<TelemetryMetrics> {
      cpu = walk(cpu);
      mem = walk(mem);
      // Disks fill slowly: one point at most, in either direction.
      disk = clampPct(disk + random.intBelow(3) - 1);
      return {
        cpu_pct: cpu, mem_pct: mem, disk_pct: disk,
        net_rx_bytes_per_sec: random.intBelow(1_000_000), net_tx_bytes_per_sec: random.intBelow(250_000),
        process_count: 50 + random.intBelow(200),
      };
    },
  };
}

function clampPct(value: number): number {
  return Math.max(0, Math.min(100, value));
}
