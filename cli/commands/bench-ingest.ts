import { SdcError } from '../../core/errors/index.js';
import type { IngestMode } from '../../bench/ingest.js';
import { ingestBenchDefaults, ingestBenchLimits } from '../../bench/ingest-limits.js';
import { attachSideFiles, benchReport, renderBenchJson, renderBenchTable, writeBenchOut } from '../../bench/output.js';
import { storeVersions } from '../../bench/store-versions.js';
import { parseDurationText } from '../duration-option.js';
import { scrapeIntervalOption } from '../../bench/metrics-series-option.js';
import type { Command } from '../command.js';

function integerOption(raw: unknown, name: string, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = typeof raw === 'string' && /^\d{1,7}$/.test(raw) ? Number(raw) : NaN;
  if (!(value >= 1 && value <= max)) throw new SdcError('CLI_USAGE', `${name} must be an integer from 1 to ${max}`);
  return value;
}

function modes(raw: unknown): IngestMode[] {
  if (raw === undefined) return ['session-mac', 'ed25519'];
  const all: readonly IngestMode[] = ['session-mac', 'ed25519'];
  const picked = String(raw).split(',').map((m) => m.trim());
  for (const mode of picked) if (!all.includes(mode as IngestMode)) throw new SdcError('CLI_USAGE', `--modes takes ${all.join(', ')} (comma-separated), not ${JSON.stringify(mode)}`);
  return picked as IngestMode[];
}

export const ingestBenchCommand: Command = {
  name: 'ingest',
  summary: 'Telemetry samples/s through gateway, bus, consumer and SQL (session MAC and Ed25519 per frame) beside the raw Ed25519 verify rate',
  usage: '[--connections N] [--duration 5s] [--window N] [--modes session-mac,ed25519] [--redis URL --mysql URL] [--scrape-interval-ms 1000] [--json] [--out DIR]',
  optionHelp: [
    ['--connections N', `Device sessions sending telemetry (default ${ingestBenchDefaults.connections}, at most ${ingestBenchLimits.connectionsMax})`],
    ['--duration D', `Wall time measured per mode after a warm-up (default ${ingestBenchDefaults.durationMs / 1000}s)`],
    ['--window N', `Samples sent and not yet stored, at most: the backlog bound of the closed loop (default ${ingestBenchDefaults.windowFrames}; at most 128 per connection, half the gateway's per-session work bound)`],
    ['--modes M', 'session-mac (agents now), ed25519 (agents signing every frame), or both (default)'],
    ['--redis URL', 'Redis for the bus and key/value store (default embedded)'],
    ['--mysql URL', 'MySQL/MariaDB for SQL (default sql.js)'],
    ['--json', 'Print the report as one JSON object'],
    ['--out DIR', 'Also write ingest.json, .csv, .md, .svg and, per mode, metrics-MODE-start.prom and metrics-MODE-end.prom (the services\' /metrics at the start and the end of the measured window) and metrics-MODE-series.jsonl (every scrape interval in between), for sdc report\'s panels; with --repeat N, each repeat\'s as metrics-MODE-repeat-K-start.prom, -end.prom and -series.jsonl'],
    ['--scrape-interval-ms N', 'Scrape /metrics every N ms over each measured window (default 1000; 0: only at its start and end; at most 600 kept, halved with the interval doubled when reached)'],
  ],
  options: {
    connections: { type: 'string' }, duration: { type: 'string' }, window: { type: 'string' }, modes: { type: 'string' },
    redis: { type: 'string' }, mysql: { type: 'string' }, json: { type: 'boolean' }, out: { type: 'string' }, 'scrape-interval-ms': { type: 'string' },
  },
  async run(args, io) {
    const connections = integerOption(args.values.connections, '--connections', ingestBenchDefaults.connections, ingestBenchLimits.connectionsMax);
    const windowFrames = integerOption(args.values.window, '--window', ingestBenchDefaults.windowFrames, ingestBenchLimits.windowFramesMax);
    const durationMs = args.values.duration === undefined ? ingestBenchDefaults.durationMs : parseDurationText('duration', String(args.values.duration));
    if (!(durationMs >= 100 && durationMs <= ingestBenchLimits.durationMsMax)) throw new SdcError('CLI_USAGE', `--duration must be from 100ms to ${ingestBenchLimits.durationMsMax / 1000}s`);
    const scrapeIntervalMs = scrapeIntervalOption(args.values['scrape-interval-ms']);
    const redisUrl = typeof args.values.redis === 'string' ? args.values.redis : undefined;
    const mysqlUrl = typeof args.values.mysql === 'string' ? args.values.mysql : undefined;
    // Imported here, not at the top: the bench runs a whole deployment, which every start of the CLI would load otherwise.
    const [{ runIngestBench }, { renderMetricsSeriesJsonl }] = await Promise.all([import('../../bench/ingest.js'), import('../../bench/metrics-series.js')]);
    const outcome = await runIngestBench({
      connections, durationMs, windowFrames, modes: modes(args.values.modes), scrapeIntervalMs,
      ...(redisUrl === undefined ? {} : { redisUrl }), ...(mysqlUrl === undefined ? {} : { mysqlUrl }),
      onProgress: (line) => io.stderr(`${line}\n`),
    });
    const report = benchReport({
      benchmark: 'ingest',
      parameters: { connections, duration_ms: durationMs, window_frames: windowFrames, redis: redisUrl !== undefined, mysql: mysqlUrl !== undefined },
      results: outcome.rows.map((row) => ({ ...row })),
      units: {
        connections: 'sessions', samples_stored: 'samples', elapsed_ms: 'milliseconds', samples_per_s: 'samples per second', ratio_to_ed25519_verify: 'ratio',
        cpu_us_per_sample: 'CPU microseconds per sample (this process: agents, gateway and control plane)',
        service_cpu_us_per_sample: 'CPU microseconds per sample without the agents (gateway and control plane)', backlog_at_start: 'samples', backlog_at_end: 'samples',
        sql_statements_per_sample: 'SQL statements of the control plane per sample stored', rows_per_telemetry_insert: 'rows per telemetry INSERT statement',
        window_frames: 'samples in flight at most (the asked window, or 128 per connection if less)',
        promises_per_sample: 'promises made per sample stored, agents included (only with SDC_BENCH_COUNT_PROMISES=1)',
      },
      details: { ed25519_verify_per_s: Math.round(outcome.ed25519VerifyPerS) },
    });
    // Its own --out (the bench suite hands it over without --repeat): the suite's files plus the scrapes, and the stores' versions the suite would add.
    const versions = await storeVersions(report.parameters, args.values, io.env);
    if (Object.keys(versions).length > 0) report.environment.store_versions = versions;
    io.stdout(args.values.json === true ? renderBenchJson(report) : `${renderBenchTable(report)}\nnode:crypto Ed25519 verify in the same run: ${Math.round(outcome.ed25519VerifyPerS)}/s\n`);
    const scrapes: Record<string, string> = Object.fromEntries([
      ...outcome.scrapes.flatMap(({ mode, start, end }) => [[`metrics-${mode}-start.prom`, start], [`metrics-${mode}-end.prom`, end]]),
      ...outcome.series.map(({ mode, series }) => [`metrics-${mode}-series.jsonl`, renderMetricsSeriesJsonl(series)]),
    ]);
    // Under `--repeat` the bench suite runs this without --out: the scrapes ride along with the
    // report (attachSideFiles) and the suite writes each repeat's as metrics-MODE-repeat-K-*.
    attachSideFiles(report, scrapes);
    if (typeof args.values.out === 'string') io.stderr(`wrote ${(await writeBenchOut(args.values.out, report, scrapes)).join(', ')}\n`);
    return 0;
  },
};
