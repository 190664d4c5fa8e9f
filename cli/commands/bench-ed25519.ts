import { SdcError } from '../../core/errors/index.js';
import { defaultMessageBytes, runEd25519Bench } from '../../bench/ed25519.js';
import { benchReport } from '../../bench/output.js';
import type { Command } from '../command.js';
import { benchOutputHelp, benchOutputOptions, cliProgress, emitBenchReport } from '../bench-output.js';
import { durationOption, durationOptions, legacyHelp, type DurationOptionSpec } from '../duration-option.js';

const caseDuration: DurationOptionSpec = { name: 'duration', fallbackMs: 2_000, minMs: 1, maxMs: 600_000, legacy: { name: 'seconds', unitMs: 1_000, fractions: true } };
const casesTotal = 6;
/** The provider every other row is compared with: the one the code uses (runtime/node-crypto). */
const ed25519BaselineProvider = 'node:crypto (cached KeyObjects)';

export const ed25519BenchCommand: Command = {
  name: 'ed25519',
  summary: 'Ed25519 sign/s and verify/s: node:crypto cached and uncached KeyObjects, and @noble/ed25519',
  usage: '[--duration 2s] [--message-bytes N] [--json] [--out DIR]',
  optionHelp: [
    ['--duration D', 'Duration of each of the 6 cases, like 2s or 500ms (default 2s, at most 10m)'],
    ['--message-bytes N', `Size of the signed message (default ${defaultMessageBytes})`],
    ...benchOutputHelp(''),
    ...legacyHelp(caseDuration),
  ],
  options: { ...durationOptions(caseDuration), 'message-bytes': { type: 'string' }, ...benchOutputOptions },
  async run(args, io) {
    const durationMsPerCase = durationOption(args, caseDuration, io.stderr);
    const rawBytes = args.values['message-bytes'];
    const messageBytes = rawBytes === undefined ? defaultMessageBytes : Number(rawBytes);
    if (typeof rawBytes === 'string' && (!/^\d+$/.test(rawBytes) || messageBytes > 1_048_576)) {
      throw new SdcError('CLI_USAGE', '--message-bytes must be an integer from 0 to 1048576');
    }
    const progress = cliProgress(io, 'bench ed25519', casesTotal, ' cases');
    const results = runEd25519Bench({ durationMsPerCase, messageBytes, onCaseDone: (done) => progress.update(done) });
    progress.finish();
    // The same-run baseline (issue 14): node:crypto with cached KeyObjects, the path the services
    // and agents take; every row's rate over its operation's rate there (1 for the baseline rows).
    const baselineRate = (operation: string) => results.find((r) => r.provider === ed25519BaselineProvider && r.operation === operation)?.operationsPerSecond;
    const report = benchReport({
      benchmark: 'ed25519',
      parameters: { duration_ms_per_case: durationMsPerCase, message_bytes: messageBytes },
      results: results.map((r) => {
        const baseline = baselineRate(r.operation);
        return {
          provider: r.provider, operation: r.operation, operations: r.operations, elapsed_ms: r.elapsedMs,
          ops_per_s: r.operationsPerSecond, us_per_op: r.operations > 0 ? (r.elapsedMs * 1000) / r.operations : 0,
          ratio_to_node_crypto_cached: baseline !== undefined && baseline > 0 ? r.operationsPerSecond / baseline : null,
        };
      }),
      units: {
        operations: 'operations', elapsed_ms: 'milliseconds', ops_per_s: 'operations per second', us_per_op: 'microseconds per operation',
        ratio_to_node_crypto_cached: 'ratio of ops_per_s to node:crypto with cached KeyObjects, same operation, same run',
      },
    });
    await emitBenchReport(args, io, report);
    return 0;
  },
};
