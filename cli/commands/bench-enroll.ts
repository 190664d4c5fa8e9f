import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attachLatencySamples, benchReport } from '../../bench/output.js';
import { latencyHistogramPrecision } from '../../bench/stats.js';
import { storeVersions } from '../../bench/store-versions.js';
import { integerOption, type Command } from '../command.js';
import { benchOutputHelp, benchOutputOptions, emitBenchReport } from '../bench-output.js';

const devicesDefault = 1_000;
const concurrencyDefault = 16;
const concurrencyMax = 256;
/** The same bound as bench/enroll.ts's (kept here so the CLI's help loads no deployment code). */
const devicesMax = 20_000;

export const enrollBenchCommand: Command = {
  name: 'enroll',
  summary: 'Enrollments per second through POST /v1/enroll (a new TLS connection each), beside a bare HTTPS server in the same run',
  usage: '[--devices N] [--concurrency N] [--redis URL --mysql URL] [--json] [--out DIR]',
  optionHelp: [
    ['--devices N', `Devices to enroll, each with its own key, CSR and pairing token (default ${devicesDefault}, at most ${devicesMax})`],
    ['--concurrency N', `Enrollments in flight at once (default ${concurrencyDefault}, at most ${concurrencyMax})`],
    ['--redis URL', 'Redis for the bus and key/value store (default embedded)'],
    ['--mysql URL', 'MySQL/MariaDB for SQL (default sql.js)'],
    ...benchOutputHelp(''),
  ],
  options: { devices: { type: 'string' }, concurrency: { type: 'string' }, redis: { type: 'string' }, mysql: { type: 'string' }, ...benchOutputOptions },
  async run(args, io) {
    const devices = integerOption(args, 'devices', devicesDefault, 1, devicesMax);
    const concurrency = integerOption(args, 'concurrency', concurrencyDefault, 1, concurrencyMax);
    const redisUrl = typeof args.values.redis === 'string' ? args.values.redis : undefined;
    const mysqlUrl = typeof args.values.mysql === 'string' ? args.values.mysql : undefined;
    // Imported here: the bench runs a whole deployment, which every start of the CLI would load otherwise.
    const { runEnrollBench } = await import('../../bench/enroll.js');
    const dataDir = await mkdtemp(join(tmpdir(), 'sdc-bench-enroll-'));
    try {
      const outcome = await runEnrollBench({
        devices, concurrency, dataDir, ...(redisUrl === undefined ? {} : { redisUrl }), ...(mysqlUrl === undefined ? {} : { mysqlUrl }),
        progress: (line) => io.stderr(`${line}\n`),
      });
      const enroll = outcome.rows.find((row) => row.path === 'enroll')!;
      const report = benchReport({
        benchmark: 'enroll',
        parameters: { devices, concurrency, redis: redisUrl !== undefined, mysql: mysqlUrl !== undefined },
        results: outcome.rows.map((row) => ({ ...row })),
        units: {
          requests: 'requests', failures: 'requests', per_s: 'requests answered per wall second',
          server_cpu_ms_per_request: 'CPU milliseconds per request of the serving process (control plane, or the bare server)',
          client_cpu_ms_per_request: 'CPU milliseconds per request of the client process', p50_ms: 'milliseconds', p99_ms: 'milliseconds',
        },
        latencyHistogram: latencyHistogramPrecision,
        details: {
          stores: outcome.stores,
          pairing_tokens_ms: Math.round(outcome.pairingTokensMs),
          ratio_to_bare_https: Number(outcome.ratioToBare.toFixed(3)),
          goal_per_s: outcome.goalPerSecond,
          goal_met: enroll.failures === 0 && enroll.per_s >= outcome.goalPerSecond,
          first_failure: outcome.firstFailure,
        },
      });
      // Each request's latency, for enroll-percentiles.csv (the report's latency CDF); not in the JSON.
      attachLatencySamples(report, outcome.latenciesMs);
      // It writes its own --out, so the suite does not add the stores' versions: added here, as ingest does.
      const versions = await storeVersions(report.parameters, args.values, io.env);
      if (Object.keys(versions).length > 0) report.environment.store_versions = versions;
      await emitBenchReport(args, io, report);
      return enroll.failures === 0 ? 0 : 1;
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  },
};
