/**
 * A bounded series of /metrics scrapes over a bench's measured phase (issue 14): the first scrape
 * when the phase starts, one every `intervalMs` (each timed from the end of the previous one, so
 * two never overlap), and the last when it stops. What `sdc report` draws each dashboard panel
 * over time from (bench/report-scrapes.ts).
 *
 * Bounded: at most `scrapesMax` scrapes are kept. When a scrape would pass the cap, every other
 * kept scrape is dropped (the first stays) and the interval doubles, so a long run is still
 * covered from start to end at an even, coarser spacing; the file's header counts the halvings.
 * A scrape that fails is kept as a noted failure (its time and error), never the bench's failure.
 *
 * File form (`metrics-series.jsonl`): one JSON object a line, a header first, then one line per
 * scrape in time order: `{"kind":"scrape","at_ms":...,"text":"..."}` (the Prometheus text as
 * served) or `{"kind":"scrape_failed","at_ms":...,"error":"..."}`.
 */

export const metricsSeriesDefaults = Object.freeze({ intervalMs: 1_000, scrapesMax: 600 });
/** 0 ms: no scrapes between the first and the last. Below 100 ms a scrape would be a measurable share of a 2-core machine. */
export const metricsSeriesLimits = Object.freeze({ intervalMsMin: 100, intervalMsMax: 3_600_000, scrapesMaxMin: 2, scrapesMaxMax: 10_000 });
/** A failure's message is noted, not a stack: bounded so a long error cannot swell the file. */
const errorCharsMax = 200;

export interface MetricsSeriesEntry {
  /** Wall-clock ms since the epoch when the scrape finished. */
  readonly atMs: number;
  /** The scrape's Prometheus text as served (HELP and TYPE lines kept); absent when it failed. */
  readonly text?: string;
  readonly error?: string;
}

export interface MetricsSeries {
  readonly intervalMsRequested: number;
  /** The interval at the end: doubled once per decimation. */
  readonly intervalMs: number;
  readonly scrapesMax: number;
  readonly decimations: number;
  readonly failures: number;
  readonly entries: readonly MetricsSeriesEntry[];
}

export interface MetricsSeriesOptions {
  readonly scrape: () => Promise<string>;
  readonly nowMs: () => number;
  /** 0: only the first and the last scrape. */
  readonly intervalMs?: number;
  readonly scrapesMax?: number;
}

export interface MetricsSeriesRecorder {
  /** Takes the last scrape, stops the timer and returns the series. */
  stop(): Promise<MetricsSeries>;
}

/** Checks an interval and a cap a caller was given (RangeError: the CLI turns its own input into CLI_USAGE first). */
export function checkSeriesOptions(intervalMs: number, scrapesMax: number): void {
  if (!Number.isSafeInteger(intervalMs) || (intervalMs !== 0 && (intervalMs < metricsSeriesLimits.intervalMsMin || intervalMs > metricsSeriesLimits.intervalMsMax))) {
    throw new RangeError(`scrape interval must be 0 or ${metricsSeriesLimits.intervalMsMin} to ${metricsSeriesLimits.intervalMsMax} ms, not ${intervalMs}`);
  }
  if (!Number.isSafeInteger(scrapesMax) || scrapesMax < metricsSeriesLimits.scrapesMaxMin || scrapesMax > metricsSeriesLimits.scrapesMaxMax) {
    throw new RangeError(`scrapes kept must be ${metricsSeriesLimits.scrapesMaxMin} to ${metricsSeriesLimits.scrapesMaxMax}, not ${scrapesMax}`);
  }
}

/** Keeps the entries under the cap by halving them (the first kept) and doubling the interval. */
class BoundedEntries {
  entries: MetricsSeriesEntry[] = [];
  decimations = 0;
  failures = 0;
  constructor(readonly scrapesMax: number, public intervalMs: number) {}

  add(entry: MetricsSeriesEntry): void {
    if (this.entries.length >= this.scrapesMax) {
      this.entries = this.entries.filter((_, i) => i % 2 === 0);
      this.intervalMs *= 2;
      this.decimations += 1;
    }
    if (entry.error !== undefined) this.failures += 1;
    this.entries.push(entry);
  }
}

async function scrapeOnce(options: MetricsSeriesOptions): Promise<MetricsSeriesEntry> {
  try {
    const text = await options.scrape();
    return { atMs: Math.round(options.nowMs()), text };
  } catch (error) {
    return { atMs: Math.round(options.nowMs()), error: String(error instanceof Error ? error.message : error).slice(0, errorCharsMax) };
  }
}

/** Starts a series: resolves once the first scrape is taken. */
export async function startMetricsSeries(options: MetricsSeriesOptions): Promise<MetricsSeriesRecorder> {
  const intervalMs = options.intervalMs ?? metricsSeriesDefaults.intervalMs;
  const scrapesMax = options.scrapesMax ?? metricsSeriesDefaults.scrapesMax;
  checkSeriesOptions(intervalMs, scrapesMax);
  const kept = new BoundedEntries(scrapesMax, intervalMs);
  kept.add(await scrapeOnce(options));
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> = Promise.resolve();
  const schedule = () => {
    if (stopped || kept.intervalMs === 0) return;
    timer = setTimeout(() => {
      inFlight = scrapeOnce(options).then((entry) => { if (!stopped) kept.add(entry); schedule(); });
    }, kept.intervalMs);
    // The bench's own work keeps the process alive; a forgotten recorder must not.
    timer.unref();
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await inFlight;
      kept.add(await scrapeOnce(options));
      return { intervalMsRequested: intervalMs, intervalMs: kept.intervalMs, scrapesMax, decimations: kept.decimations, failures: kept.failures, entries: kept.entries };
    },
  };
}

/** The series as `metrics-series.jsonl`: a header line, then one line per scrape. */
export function renderMetricsSeriesJsonl(series: MetricsSeries): string {
  const header = {
    kind: 'metrics_series', interval_ms_requested: series.intervalMsRequested, interval_ms: series.intervalMs, scrapes_max: series.scrapesMax,
    decimations: series.decimations, scrapes: series.entries.length, failures: series.failures, clock: 'wall-clock ms since the epoch',
  };
  const lines = series.entries.map((e) => JSON.stringify(e.text !== undefined ? { kind: 'scrape', at_ms: e.atMs, text: e.text } : { kind: 'scrape_failed', at_ms: e.atMs, error: e.error ?? '' }));
  return [JSON.stringify(header), ...lines].join('\n') + '\n';
}

export interface ParsedMetricsSeries {
  readonly header: Readonly<Record<string, unknown>>;
  readonly entries: readonly MetricsSeriesEntry[];
}

/**
 * A `metrics-series.jsonl` read back: undefined when the first line is not a series header;
 * a malformed scrape line is skipped (a file cut short by a killed bench still reads).
 */
export function parseMetricsSeriesJsonl(text: string): ParsedMetricsSeries | undefined {
  const [first = '', ...lines] = text.split('\n');
  const header = jsonObject(first);
  if (header === undefined || header['kind'] !== 'metrics_series') return undefined;
  const entries: MetricsSeriesEntry[] = [];
  for (const line of lines) {
    const value = jsonObject(line);
    const atMs = value?.['at_ms'];
    if (value === undefined || typeof atMs !== 'number' || !Number.isFinite(atMs)) continue;
    if (value['kind'] === 'scrape' && typeof value['text'] === 'string') entries.push({ atMs, text: value['text'] });
    else if (value['kind'] === 'scrape_failed') entries.push({ atMs, error: String(value['error'] ?? '') });
  }
  return { header, entries };
}

function jsonObject(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}
