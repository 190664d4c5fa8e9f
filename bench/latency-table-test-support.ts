import assert from 'node:assert/strict';
import { hdrLatencyTableSummary } from './latency-hdr.js';
import { latencyHistogramPrecision, type LatencySummary } from './stats.js';

/**
 * Tests' check that a bench's latency table comes from HdrHistogram (issue 14): the report states
 * the histogram (`latency_histogram`), and each row's percentiles are HdrHistogram's over that
 * series in `<bench>-samples.csv`. The CSV holds each sample at 3 decimals of a ms, i.e. the whole
 * microseconds the histogram records, so the summary recomputed from it is the bench's own.
 */
export function samplesCsvSummaries(csv: string): Map<string, LatencySummary> {
  const lines = csv.trimEnd().split('\n');
  assert.equal(lines[0], 'series,latency_ms');
  const bySeries = new Map<string, number[]>();
  for (const line of lines.slice(1)) {
    const [series, value] = line.split(',');
    bySeries.set(series!, [...(bySeries.get(series!) ?? []), Number(value)]);
  }
  return new Map([...bySeries].map(([series, values]) => [series, hdrLatencyTableSummary(values)]));
}

export function assertStatesLatencyHistogram(report: { latency_histogram?: unknown }): void {
  assert.deepEqual(report.latency_histogram, { ...latencyHistogramPrecision });
}
