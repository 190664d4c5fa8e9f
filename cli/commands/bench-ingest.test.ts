import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommandArgs, type CliIo } from '../command.js';
import { ingestBenchCommand } from './bench-ingest.js';

const io: CliIo = { stdout: () => undefined, stderr: () => undefined, readStdin: async () => '', env: {} };
const run = (argv: string[]) => ingestBenchCommand.run(parseCommandArgs(ingestBenchCommand, argv), io);

// Decision 0004, "Batches": --samples-per-frame takes distinct integers from 1 to the protocol's
// 64, refused as a usage error before any deployment is started.
test('bench ingest --samples-per-frame: out of range, repeated or not a number is a usage error', async () => {
  for (const bad of ['0', '65', '8,8', '1,x', '', '1.5']) {
    await assert.rejects(run(['--samples-per-frame', bad]), { code: 'CLI_USAGE' }, bad);
  }
  assert.match(ingestBenchCommand.usage, /--samples-per-frame/);
});
