import { build } from 'hdr-histogram-js';
import { latencyHistogramPrecision, type LatencySummary } from './stats.js';

/**
 * Latency percentiles through HdrHistogram (hdr-histogram-js), the structure load tools (k6,
 * wrk2) report from: constant memory whatever the sample count, and a stated precision instead
 * of a sort of every sample.
 *
 * Samples are milliseconds; they are recorded as integer microseconds, so with 3 significant
 * digits a reported percentile is within 0.1 % (and 1 µs) of the sample at that rank; below
 * 2.048 ms every microsecond has a bucket of its own. The range is fixed (no auto-resize), 1 µs to
 * one hour, so the precision every table states (bench/stats.ts latencyHistogramPrecision, the
 * JSON's `latency_histogram`) is the one used. The pure JS histogram is used (no WebAssembly):
 * results are the same on every machine.
 */
export const hdrLatencyPrecision = Object.freeze({
  significantDigits: latencyHistogramPrecision.significant_digits,
  recordUnitPerMs: 1 / latencyHistogramPrecision.lowest_discernible_ms,
  highestTrackable: Math.round(latencyHistogramPrecision.highest_trackable_ms / latencyHistogramPrecision.lowest_discernible_ms),
});

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
  const histogram = build({
    bitBucketSize: 32, autoResize: false, lowestDiscernibleValue: 1, highestTrackableValue: hdrLatencyPrecision.highestTrackable,
    numberOfSignificantValueDigits: hdrLatencyPrecision.significantDigits, useWebAssembly: false,
  });
  for (const ms of samplesMs) {
    // Negative or non-finite latencies are a measuring bug upstream; clamp rather than throw mid-report.
    // Above the highest trackable value (an hour: longer than any bench's timeout) it records the highest.
    const value = Number.isFinite(ms) && ms > 0 ? Math.min(Math.round(ms * hdrLatencyPrecision.recordUnitPerMs), hdrLatencyPrecision.highestTrackable) : 0;
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

/**
 * The tables' summary (count, p50, p90, p99, max, mean in ms; bench/stats.ts's shape) from
 * HdrHistogram: what roundtrip, reconnect, ioctl and enroll report, as api does.
 */
export function hdrLatencyTableSummary(samplesMs: readonly number[]): LatencySummary {
  const s = hdrLatencySummary(samplesMs);
  return { count: s.count, p50: s.p50_ms, p90: s.p90_ms, p99: s.p99_ms, max: s.max_ms, mean: s.mean_ms };
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
