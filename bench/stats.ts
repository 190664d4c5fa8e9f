/** Summary statistics for latency samples, shared by the demo, the benchmarks and the simulator. */
export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/**
 * The HdrHistogram every latency percentile table of `sdc bench` comes from (bench/latency-hdr.ts
 * records with it), as stated in each such report's JSON (`latency_histogram`) and in
 * docs/benchmarks.md. Here, not there, so a reader of the precision does not load
 * hdr-histogram-js (about 0.1 s). A reported percentile is HdrHistogram's highest value
 * equivalent to the sample at that rank (within 0.1 %), capped at the recorded maximum.
 */
export const latencyHistogramPrecision = Object.freeze({
  library: 'hdr-histogram-js',
  significant_digits: 3,
  /** Samples are recorded as integer multiples of this (1 µs). */
  lowest_discernible_ms: 0.001,
  /** One hour; a longer sample is recorded as this. */
  highest_trackable_ms: 3_600_000,
  value_at_percentile: 'highest equivalent value, capped at the maximum',
} as const);

export type LatencyHistogramPrecision = typeof latencyHistogramPrecision;

/**
 * Nearest-rank percentile (no interpolation): a reported p99 is a latency that was observed. Not
 * for the benches' latency tables (HdrHistogram, above); used by the demo, the chaos matrix and
 * the k6-style thresholds, which judge the exact samples.
 */
export function percentile(sortedAscending: readonly number[], fraction: number): number {
  if (sortedAscending.length === 0) return 0;
  const rank = Math.max(1, Math.ceil(fraction * sortedAscending.length));
  return sortedAscending[Math.min(rank, sortedAscending.length) - 1]!;
}

export function summarizeLatencies(samples: readonly number[]): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((s, v) => s + v, 0);
  return {
    count: sorted.length,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    max: sorted.at(-1) ?? 0,
    mean: sorted.length === 0 ? 0 : sum / sorted.length,
  };
}
