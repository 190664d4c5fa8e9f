import { cpus } from 'node:os';
import { SdcError } from '../../core/errors/index.js';
import { defaultMessageBytes, renderEd25519BenchTable, runEd25519Bench } from '../../bench/ed25519.js';
import type { Command } from '../command.js';

/** Parses `--seconds`: a positive decimal up to 600 (fractions let tests and quick looks run fast). */
function secondsOption(raw: unknown): number {
  if (raw === undefined) return 2;
  const seconds = typeof raw === 'string' && /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : NaN;
  if (!(seconds > 0 && seconds <= 600)) throw new SdcError('CLI_USAGE', '--seconds must be a number greater than 0 and at most 600');
  return seconds;
}

export const ed25519BenchCommand: Command = {
  name: 'ed25519',
  summary: 'Ed25519 sign/s and verify/s: node:crypto cached and uncached KeyObjects, and @noble/ed25519',
  usage: '[--seconds S] [--message-bytes N] [--json]',
  optionHelp: [
    ['--seconds S', 'Duration of each of the 6 cases (default 2; fractions allowed)'],
    ['--message-bytes N', `Size of the signed message (default ${defaultMessageBytes})`],
    ['--json', 'Print JSON instead of a table'],
  ],
  options: { seconds: { type: 'string' }, 'message-bytes': { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const seconds = secondsOption(args.values.seconds);
    const rawBytes = args.values['message-bytes'];
    const messageBytes = rawBytes === undefined ? defaultMessageBytes : Number(rawBytes);
    if (typeof rawBytes === 'string' && (!/^\d+$/.test(rawBytes) || messageBytes > 1_048_576)) {
      throw new SdcError('CLI_USAGE', '--message-bytes must be an integer from 0 to 1048576');
    }
    const results = runEd25519Bench({ durationMsPerCase: seconds * 1000, messageBytes });
    const environment = {
      node: process.version, openssl: process.versions.openssl, cpu: cpus()[0]?.model ?? 'unknown', cpuCount: cpus().length,
    };
    if (args.values.json === true) {
      io.stdout(JSON.stringify({ benchmark: 'ed25519', secondsPerCase: seconds, messageBytes, environment, results }, null, 2) + '\n');
    } else {
      io.stdout(`ed25519: ${seconds} s per case, ${messageBytes}-byte message; node ${environment.node}, OpenSSL ${environment.openssl}, ${environment.cpu} (${environment.cpuCount} cores)\n\n`);
      io.stdout(renderEd25519BenchTable(results));
    }
    return 0;
  },
};
