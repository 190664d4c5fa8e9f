import { SdcError } from '../core/errors/index.js';
import { metricsSeriesDefaults, metricsSeriesLimits } from './metrics-series.js';

/**
 * `--scrape-interval-ms N` of the benches that record a /metrics series (roundtrip, ingest):
 * 0 (only the first and the last scrape) or 100 ms to 1 h; absent: the default. A bad value is
 * CLI_USAGE before anything starts.
 */
export function scrapeIntervalOption(raw: unknown): number {
  if (raw === undefined) return metricsSeriesDefaults.intervalMs;
  const value = typeof raw === 'string' && /^\d{1,7}$/.test(raw) ? Number(raw) : NaN;
  if (!(value === 0 || (value >= metricsSeriesLimits.intervalMsMin && value <= metricsSeriesLimits.intervalMsMax))) {
    throw new SdcError('CLI_USAGE', `--scrape-interval-ms must be 0 or ${metricsSeriesLimits.intervalMsMin} to ${metricsSeriesLimits.intervalMsMax}`);
  }
  return value;
}
