import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import { passwordFileEnv, readPasswordOption, type CliIo, type ParsedCommandArgs } from './command.js';

/**
 * An operator password from --password-stdin or $SDC_PASSWORD_FILE is read with a bound (4096
 * bytes and one more), never whole: a huge input, a device or a pipe that never ends is refused
 * after that much (as the pairing token's reads, review h11 finding 9, which named these reads too).
 */

const bytesMax = 4096;

function stdinArgs(): ParsedCommandArgs {
  return { values: { 'password-stdin': true }, positionals: [] } as unknown as ParsedCommandArgs;
}

/** An io whose stdin holds `text` and which answers at most `bytesMax + 1` bytes of it when asked for a bound, as the real reader does. */
function io(text: string, env: Record<string, string> = {}): CliIo & { bounds: Array<number | undefined> } {
  const bounds: Array<number | undefined> = [];
  return {
    bounds, env, stdout: () => undefined, stderr: () => undefined,
    readStdin: async (options) => {
      bounds.push(options?.bytesMax);
      return options?.bytesMax === undefined ? text : text.slice(0, options.bytesMax + 1);
    },
  };
}

test('--password-stdin asks stdin for at most 4096 bytes and refuses a first line longer than that', async () => {
  const huge = io('x'.repeat(1024 * 1024));
  await assert.rejects(readPasswordOption(stdinArgs(), huge), (e) => SdcError.is(e, 'CLI_INPUT') && /over 4096 bytes/.test(e.message));
  assert.deepEqual(huge.bounds, [bytesMax]);
  const exact = io('p'.repeat(bytesMax));
  assert.equal(await readPasswordOption(stdinArgs(), exact), 'p'.repeat(bytesMax));
});

test('--password-stdin takes the first line when it fits, whatever follows it', async () => {
  assert.equal(await readPasswordOption(stdinArgs(), io(`correct horse\r\n${'y'.repeat(10_000)}`)), 'correct horse');
  await assert.rejects(readPasswordOption(stdinArgs(), io('\nsecond line')), (e) => SdcError.is(e, 'CLI_INPUT') && e.message === 'no password on stdin');
});

test('$SDC_PASSWORD_FILE: a file over 4096 bytes is refused, a short one gives its first line, a missing one is named', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-password-option-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const big = join(dir, 'big');
  await writeFile(big, `pw\n${'z'.repeat(1024 * 1024)}`);
  await assert.rejects(readPasswordOption({ values: {}, positionals: [] } as unknown as ParsedCommandArgs, io('', { [passwordFileEnv]: big })),
    (e) => SdcError.is(e, 'CLI_INPUT') && e.message === `${passwordFileEnv} ${big} is over ${bytesMax} bytes`);
  const small = join(dir, 'small');
  await writeFile(small, 'battery staple\nignored\n');
  assert.equal(await readPasswordOption({ values: {}, positionals: [] } as unknown as ParsedCommandArgs, io('', { [passwordFileEnv]: small })), 'battery staple');
  const missing = join(dir, 'missing');
  await assert.rejects(readPasswordOption({ values: {}, positionals: [] } as unknown as ParsedCommandArgs, io('', { [passwordFileEnv]: missing })),
    (e) => SdcError.is(e, 'CLI_INPUT') && e.message === `cannot read ${passwordFileEnv} ${missing}: ENOENT`);
});
