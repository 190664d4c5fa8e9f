import { SdcError } from '../../core/errors/index.js';
import { busBenchDefaults, runBusBench } from '../../bench/bus.js';
import { benchReport, renderBenchJson, renderBenchTable } from '../../bench/output.js';
import type { Command } from '../command.js';

/** A short default: the machine is shared; 10 s per case at most. */
const durationMsDefault = 1_000;
const durationMsMax = 10_000;

function durationMs(raw: unknown): number {
  if (raw === undefined) return durationMsDefault;
  const value = typeof raw === 'string' && /^\d{1,6}$/.test(raw) ? Number(raw) : NaN;
  if (!(value >= 1 && value <= durationMsMax)) throw new SdcError('CLI_USAGE', `--duration-ms must be an integer from 1 to ${durationMsMax}`);
  return value;
}

function batchEntries(raw: unknown): number {
  if (raw === undefined) return busBenchDefaults.batchEntries;
  const value = typeof raw === 'string' && /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!(value >= 1 && value <= 1_000)) throw new SdcError('CLI_USAGE', '--batch must be an integer from 1 to 1000');
  return value;
}

export const busBenchCommand: Command = {
  name: 'bus',
  summary: 'Stream appends/s through the bus port (one by one, 64 in flight, batched) beside redis-benchmark XADD on the same server, and the in-memory adapter beside a plain array push',
  usage: '[--redis URL] [--duration-ms MS] [--batch N] [--json]',
  optionHelp: [
    ['--redis URL', 'Redis to measure (redis://host:port/db); without it only the in-memory adapter runs'],
    ['--duration-ms MS', `Wall time of each adapter case (default ${durationMsDefault}, at most ${durationMsMax})`],
    ['--batch N', `Entries per appendBatch (default ${busBenchDefaults.batchEntries})`],
    ['--json', 'Print the report as one JSON object'],
  ],
  options: { redis: { type: 'string' }, 'duration-ms': { type: 'string' }, batch: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const redisUrl = typeof args.values.redis === 'string' ? args.values.redis : undefined;
    const perCaseMs = durationMs(args.values['duration-ms']);
    const batch = batchEntries(args.values.batch);
    const outcome = await runBusBench({ durationMsPerCase: perCaseMs, batchEntries: batch, ...(redisUrl === undefined ? {} : { redisUrl }) });
    const report = benchReport({
      benchmark: 'bus',
      parameters: { duration_ms_per_case: perCaseMs, batch_entries: batch, in_flight: busBenchDefaults.inFlight, payload_bytes: busBenchDefaults.payloadBytes, redis: redisUrl !== undefined },
      results: outcome.rows.map((row) => ({ ...row })),
      units: { appends: 'entries', elapsed_ms: 'milliseconds', appends_per_s: 'entries per second', ratio_to_redis_benchmark: 'ratio', ratio_to_array_push: 'ratio' },
      details: { baseline_note: outcome.baselineNote ?? null },
    });
    io.stdout(args.values.json === true ? renderBenchJson(report) : renderBenchTable(report) + (outcome.baselineNote === undefined ? '' : `\n${outcome.baselineNote}\n`));
    return 0;
  },
};
