import { SdcError } from '../../core/errors/index.js';
import type { IngestMode } from '../../bench/ingest.js';
import { ingestBenchDefaults, ingestBenchLimits } from '../../bench/ingest-limits.js';
import { telemetryBatchLimits } from '../../core/protocol/limits.js';
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

/** `--samples-per-frame 1,8,32`: one session-mac row each (decision 0004, "Batches"); default 1. */
function samplesPerFrame(raw: unknown): number[] {
  if (raw === undefined) return [1];
  const picked = String(raw).split(',').map((k) => k.trim());
  const values = picked.map((k) => (/^\d{1,3}$/.test(k) ? Number(k) : NaN));
  if (values.some((k) => !(k >= 1 && k <= telemetryBatchLimits.samplesPerFrameMax)) || new Set(values).size !== values.length) {
    throw new SdcError('CLI_USAGE', `--samples-per-frame takes distinct integers from 1 to ${telemetryBatchLimits.samplesPerFrameMax}, comma-separated`);
  }
  return values;
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
  usage: '[--connections N] [--duration 5s] [--window N] [--modes session-mac,ed25519] [--samples-per-frame 1,8,32] [--redis URL --mysql URL] [--scrape-interval-ms 1000] [--json] [--out DIR]',
  optionHelp: [
    ['--connections N', `Device sessions sending telemetry (default ${ingestBenchDefaults.connections}, at most ${ingestBenchLimits.connectionsMax})`],
    ['--duration D', `Wall time measured per mode after a warm-up (default ${ingestBenchDefaults.durationMs / 1000}s)`],
    ['--window N', `Samples sent and not yet stored, at most: the backlog bound of the closed loop (default ${ingestBenchDefaults.windowFrames}; at most 128 per connection, half the gateway's per-session work bound)`],
    ['--modes M', 'session-mac (agents now), ed25519 (agents signing every frame), or both (default)'],
    ['--samples-per-frame K', `Samples per frame for session-mac, one row each (comma-separated, default 1: one TELEMETRY per sample; above 1 TELEMETRY_BATCH frames, at most ${telemetryBatchLimits.samplesPerFrameMax}); ed25519 runs at 1 only. Rows give samples/s, frames/s and the ratio to Ed25519 verify per sample`],
    ['--redis URL', 'Redis for the bus and key/value store (default embedded)'],
    ['--mysql URL', 'MySQL/MariaDB for SQL (default sql.js)'],
    ['--json', 'Print the report as one JSON object'],
    ['--out DIR', 'Also write ingest.json, .csv, .md, .svg and, per mode, metrics-MODE-start.prom and metrics-MODE-end.prom (the services\' /metrics at the start and the end of the measured window) and metrics-MODE-series.jsonl (every scrape interval in between), for sdc report\'s panels; with --repeat N, each repeat\'s as metrics-MODE-repeat-K-start.prom, -end.prom and -series.jsonl'],
    ['--scrape-interval-ms N', 'Scrape /metrics every N ms over each measured window (default 1000; 0: only at its start and end; at most 600 kept, halved with the interval doubled when reached)'],
  ],
  options: {
    connections: { type: 'string' }, duration: { type: 'string' }, window: { type: 'string' }, modes: { type: 'string' }, 'samples-per-frame': { type: 'string' },
    redis: { type: 'string' }, mysql: { type: 'string' }, json: { type: 'boolean' }, out: { type: 'string' }, 'scrape-interval-ms': { type: 'string' },
  },
  async run(args, io) {
    const connections = integerOption(args.values.connections, '--connections', ingestBenchDefaults.connections, ingestBenchLimits.connectionsMax);
    const windowFrames = integerOption(args.values.window, '--window', ingestBenchDefaults.windowFrames, ingestBenchLimits.windowFramesMax);
    const durationMs = args.values.duration === undefined ? ingestBenchDefaults.durationMs : parseDurationText('duration', String(args.values.duration));
    if (!(durationMs >= 100 && durationMs <= ingestBenchLimits.durationMsMax)) throw new SdcError('CLI_USAGE', `--duration must be from 100ms to ${ingestBenchLimits.durationMsMax / 1000}s`);
    const scrapeIntervalMs = scrapeIntervalOption(args.values['scrape-interval-ms']);
    const perFrame = samplesPerFrame(args.values['samples-per-frame']);
    const redisUrl = typeof args.values.redis === 'string' ? args.values.redis : undefined;
    const mysqlUrl = typeof args.values.mysql === 'string' ? args.values.mysql : undefined;
    // Imported here, not at the top: the bench runs a whole deployment, which every start of the CLI would load otherwise.
    const [{ runIngestBench }, { renderMetricsSeriesJsonl }] = await Promise.all([import('../../bench/ingest.js'), import('../../bench/metrics-series.js')]);
    const outcome = await runIngestBench({
      connections, durationMs, windowFrames, modes: modes(args.values.modes), scrapeIntervalMs, samplesPerFrame: perFrame,
      ...(redisUrl === undefined ? {} : { redisUrl }), ...(mysqlUrl === undefined ? {} : { mysqlUrl }),
      onProgress: (line) => io.stderr(`${line}\n`),
    });
    const report = benchReport({
      benchmark: 'ingest',
      parameters: { connections, duration_ms: durationMs, window_frames: windowFrames, samples_per_frame: perFrame.join(','), redis: redisUrl !== undefined, mysql: mysqlUrl !== undefined },
      results: outcome.rows.map((row) => ({ ...row })),
      units: {
        connections: 'sessions', samples_per_frame: 'samples per frame (1: TELEMETRY; above 1: TELEMETRY_BATCH)', samples_stored: 'samples', elapsed_ms: 'milliseconds',
        samples_per_s: 'samples per second', frames_per_s: 'frames per second', ratio_to_ed25519_verify: 'ratio of samples/s to Ed25519 verifies/s (per sample, whatever samples_per_frame)',
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
    // A row at K > 1 samples per frame has its own files (metrics-session-mac-k8-...); K = 1 keeps the names it had.
    const label = (mode: string, k: number) => (k === 1 ? mode : `${mode}-k${k}`);
    const scrapes: Record<string, string> = Object.fromEntries([
      ...outcome.scrapes.flatMap(({ mode, samplesPerFrame: k, start, end }) => [[`metrics-${label(mode, k)}-start.prom`, start], [`metrics-${label(mode, k)}-end.prom`, end]]),
      ...outcome.series.map(({ mode, samplesPerFrame: k, series }) => [`metrics-${label(mode, k)}-series.jsonl`, renderMetricsSeriesJsonl(series)]),
    ]);
    // Under `--repeat` the bench suite runs this without --out: the scrapes ride along with the
    // report (attachSideFiles) and the suite writes each repeat's as metrics-MODE-repeat-K-*.
    attachSideFiles(report, scrapes);
    if (typeof args.values.out === 'string') io.stderr(`wrote ${(await writeBenchOut(args.values.out, report, scrapes)).join(', ')}\n`);
    return 0;
  },
};
