import { SdcError } from '../errors/index.js';

/**
 * A device's risk score, 0..100, from one telemetry sample and optionally the device's own
 * baseline. The score is explainable and monotone by construction:
 *
 *   contribution(f) = weight(f) * ramp(x_f, low_f, high_f)        (0 below low, weight at high)
 *   score           = min(100, sum of contributions)
 *
 * where x_f is the raw reading (percentages, counts, absolute rates) or, for network rates and
 * process count when a baseline is given, the reading divided by the baseline. `ramp` is
 * non-decreasing, weights are positive and min/+ are non-decreasing, so a higher reading of
 * any factor never lowers the score. Weights add up to more than 100 on purpose: several
 * moderate anomalies together, or one strong security signal with load, reach the alert
 * threshold; load alone (cpu + memory + disk) stays below it.
 *
 * Inputs outside the telemetry contract (NaN, infinities, negative values, percentages above
 * 100) are refused with PROTO_INVALID_ARGUMENT rather than clamped: the TELEMETRY schema already
 * refuses them at the edge, so one reaching here is a bug in the caller, and a silently clamped
 * NaN would hide it (and NaN would compare false against every threshold).
 */

export interface RiskTelemetry {
  readonly cpuPct: number;
  readonly memPct: number;
  readonly diskPct: number;
  readonly netRxBytesPerSec: number;
  readonly netTxBytesPerSec: number;
  readonly processCount?: number;
  /** Failed authentication attempts on the device since the previous sample. */
  readonly failedAuthCount?: number;
}

/** The device's normal levels (for instance a moving average kept by the caller). */
export interface RiskBaseline {
  readonly netRxBytesPerSec?: number;
  readonly netTxBytesPerSec?: number;
  readonly processCount?: number;
}

export type RiskFactorName = 'cpu' | 'memory' | 'disk' | 'net_rx' | 'net_tx' | 'processes' | 'failed_auth';

export interface RiskFactor {
  readonly name: RiskFactorName;
  /** Points this factor adds, 0 < contribution <= its weight. */
  readonly contribution: number;
}

export interface RiskResult {
  readonly score: number;
  /** Factors that contributed, largest first (ties by name). */
  readonly factors: readonly RiskFactor[];
}

/** Raise an alert when `score >= alertThreshold`. */
export const alertThreshold = 80;

interface Ramp {
  readonly weight: number;
  readonly low: number;
  readonly high: number;
}

/** The model, in one table; docs and tests read it from here. */
export const riskModel = Object.freeze({
  // Sustained saturation is what matters; 70 % CPU is an ordinary busy device.
  cpu: { weight: 20, low: 70, high: 100 },
  memory: { weight: 20, low: 75, high: 100 },
  // A full disk stops logging and updates, so it counts from 80 %.
  disk: { weight: 15, low: 80, high: 100 },
  // Absolute rates in bytes/s when there is no baseline; outbound weighs more (exfiltration).
  net_rx: { weight: 10, low: 10 * 2 ** 20, high: 100 * 2 ** 20 },
  net_tx: { weight: 20, low: 2 ** 20, high: 20 * 2 ** 20 },
  processes: { weight: 15, low: 400, high: 1_500 },
  // Every failed login in the interval adds 4 points, up to 40: brute force plus load alerts.
  failed_auth: { weight: 40, low: 0, high: 10 },
  /** With a baseline: multiples of the device's normal rate. 2x begins to count, 10x saturates. */
  netBaselineRatio: { low: 2, high: 10 },
  processBaselineRatio: { low: 1.5, high: 4 },
  /**
   * Floors under a baseline, so a device idle at 100 B/s does not alert on 2 KiB/s, and a
   * baseline of 0 never divides by zero.
   */
  netBaselineFloorBytesPerSec: 64 * 1024,
  processBaselineFloor: 50,
});

export function riskScore(telemetry: RiskTelemetry, baseline?: RiskBaseline): RiskResult {
  const cpuPct = reading(telemetry.cpuPct, 'cpuPct', 100);
  const memPct = reading(telemetry.memPct, 'memPct', 100);
  const diskPct = reading(telemetry.diskPct, 'diskPct', 100);
  const netRx = reading(telemetry.netRxBytesPerSec, 'netRxBytesPerSec');
  const netTx = reading(telemetry.netTxBytesPerSec, 'netTxBytesPerSec');
  const processCount = optionalReading(telemetry.processCount, 'processCount');
  const failedAuthCount = optionalReading(telemetry.failedAuthCount, 'failedAuthCount');
  const rxBaseline = optionalReading(baseline?.netRxBytesPerSec, 'baseline.netRxBytesPerSec');
  const txBaseline = optionalReading(baseline?.netTxBytesPerSec, 'baseline.netTxBytesPerSec');
  const processBaseline = optionalReading(baseline?.processCount, 'baseline.processCount');

  const m = riskModel;
  const netRamp = (weight: number): Ramp => ({ weight, ...m.netBaselineRatio });
  const contributions: Array<[RiskFactorName, number]> = [
    ['cpu', points(cpuPct, m.cpu)],
    ['memory', points(memPct, m.memory)],
    ['disk', points(diskPct, m.disk)],
    ['net_rx', rxBaseline === undefined
      ? points(netRx, m.net_rx)
      : points(netRx / Math.max(rxBaseline, m.netBaselineFloorBytesPerSec), netRamp(m.net_rx.weight))],
    ['net_tx', txBaseline === undefined
      ? points(netTx, m.net_tx)
      : points(netTx / Math.max(txBaseline, m.netBaselineFloorBytesPerSec), netRamp(m.net_tx.weight))],
  ];
  if (processCount !== undefined) {
    contributions.push(['processes', processBaseline === undefined
      ? points(processCount, m.processes)
      : points(processCount / Math.max(processBaseline, m.processBaselineFloor), { weight: m.processes.weight, ...m.processBaselineRatio })]);
  }
  if (failedAuthCount !== undefined) contributions.push(['failed_auth', points(failedAuthCount, m.failed_auth)]);

  let sum = 0;
  for (const [, contribution] of contributions) sum += contribution;
  const factors = contributions
    .filter(([, contribution]) => contribution > 0)
    .sort(([nameA, a], [nameB, b]) => b - a || (nameA < nameB ? -1 : nameA > nameB ? 1 : 0))
    .map(([name, contribution]) => ({ name, contribution }));
  return { score: Math.min(100, hundredths(sum)), factors };
}

/** weight * ramp, rounded to hundredths (rounding is non-decreasing, so monotonicity holds). */
function points(value: number, ramp: Ramp): number {
  if (value <= ramp.low) return 0;
  if (value >= ramp.high) return ramp.weight;
  return hundredths((ramp.weight * (value - ramp.low)) / (ramp.high - ramp.low));
}

function hundredths(value: number): number {
  return Math.round(value * 100) / 100;
}

function reading(value: unknown, field: string, max = Number.MAX_VALUE): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > max) {
    throw new SdcError('PROTO_INVALID_ARGUMENT', `risk score input ${field} must be a finite number in 0..${max === Number.MAX_VALUE ? 'max' : max}, got ${String(value)}`, { field });
  }
  return value;
}

function optionalReading(value: unknown, field: string): number | undefined {
  return value === undefined ? undefined : reading(value, field);
}
