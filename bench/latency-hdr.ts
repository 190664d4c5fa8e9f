import { build } from 'hdr-histogram-js';

/**
 * Latency percentiles through HdrHistogram (hdr-histogram-js), the structure load tools (k6,
 * wrk2) report from: constant memory whatever the sample count, and a stated precision instead
 * of a sort of every sample.
 *
 * Samples are milliseconds; they are recorded as integer microseconds, so with 3 significant
 * digits a reported percentile is within 0.1 % (and 1 µs) of the sample at that rank. The pure
 * JS histogram is used (no WebAssembly): results are the same on every machine.
 */
export const hdrLatencyPrecision = Object.freeze({ significantDigits: 3, recordUnitPerMs: 1_000 });

export interface HdrLatencySummary {
  count: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  p999_ms: number;
  max_ms: number;
  mean_ms: number;
}

/** Percentile rows for a CSV or a CDF plot: (percentile, latency) at HdrHistogram's own steps. */
export interface HdrPercentileRow { percentile: number; latency_ms: number }

function recorded(samplesMs: readonly number[]) {
  const histogram = build({ bitBucketSize: 32, autoResize: true, lowestDiscernibleValue: 1, numberOfSignificantValueDigits: hdrLatencyPrecision.significantDigits, useWebAssembly: false });
  for (const ms of samplesMs) {
    // Negative or non-finite latencies are a measuring bug upstream; clamp rather than throw mid-report.
    const value = Number.isFinite(ms) && ms > 0 ? Math.round(ms * hdrLatencyPrecision.recordUnitPerMs) : 0;
    histogram.recordValue(value);
  }
  return histogram;
}

const toMs = (value: number) => value / hdrLatencyPrecision.recordUnitPerMs;

/**
 * HdrHistogram answers a percentile with the highest value equivalent to the recorded one (up to
 * 0.1 % above it); capped at the recorded maximum so no percentile reads above the max.
 */
function at(histogram: ReturnType<typeof recorded>, percentile: number): number {
  return toMs(Math.min(histogram.getValueAtPercentile(percentile), histogram.maxValue));
}

export function hdrLatencySummary(samplesMs: readonly number[]): HdrLatencySummary {
  if (samplesMs.length === 0) return { count: 0, p50_ms: 0, p90_ms: 0, p99_ms: 0, p999_ms: 0, max_ms: 0, mean_ms: 0 };
  const histogram = recorded(samplesMs);
  try {
    return {
      count: samplesMs.length,
      p50_ms: at(histogram, 50),
      p90_ms: at(histogram, 90),
      p99_ms: at(histogram, 99),
      p999_ms: at(histogram, 99.9),
      max_ms: toMs(histogram.maxValue),
      mean_ms: toMs(histogram.mean),
    };
  } finally {
    histogram.destroy();
  }
}

/** The CDF at fixed percentiles (0 to 100): the rows of a percentile CSV and of a latency CDF plot. */
export const cdfPercentiles: readonly number[] = [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100];

export function hdrPercentileRows(samplesMs: readonly number[], percentiles: readonly number[] = cdfPercentiles): HdrPercentileRow[] {
  if (samplesMs.length === 0) return [];
  const histogram = recorded(samplesMs);
  try {
    return percentiles.map((percentile) => ({ percentile, latency_ms: at(histogram, percentile) }));
  } finally {
    histogram.destroy();
  }
}
