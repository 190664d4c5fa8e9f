// `sdc agent`'s pairing token off the command line (argv is in `ps` and the shell's history):
// --pairing-token-file, --pairing-token-stdin and $SDC_PAIRING_TOKEN; --pairing-token still works
// but warns on stderr. And --artifact-origin takes https origins only.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readStreamBounded } from '../bounded-read.js';
import { parseCommandArgs, type CliIo } from '../command.js';
import { agentCommand, pairingTokenEnv, readPairingToken } from './agent.js';

const token = 'sdcpt_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';

function ioWith(options: { stdin?: string; env?: Record<string, string> } = {}): CliIo & { errors: string[]; stdinBounds: Array<number | undefined> } {
  const errors: string[] = [];
  const stdinBounds: Array<number | undefined> = [];
  return {
    errors, stdinBounds, stdout: () => undefined, stderr: (text) => { errors.push(text); },
    readStdin: async (read) => { stdinBounds.push(read?.bytesMax); return options.stdin ?? ''; }, env: options.env ?? {},
  };
}
const valuesOf = (argv: string[]) => parseCommandArgs(agentCommand, argv).values as Record<string, unknown>;

describe('sdc agent: the pairing token', () => {
  it('comes from a file, stdin or the environment without a warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sdc-pt-'));
    try {
      const file = join(dir, 'token');
      writeFileSync(file, `${token}\n`, { mode: 0o600 });
      const quiet = ioWith();
      assert.equal(await readPairingToken(valuesOf(['--pairing-token-file', file]), quiet), token);
      assert.equal(await readPairingToken(valuesOf(['--pairing-token-stdin']), ioWith({ stdin: `${token}\r\nrest` })), token);
      assert.equal(await readPairingToken(valuesOf([]), ioWith({ env: { [pairingTokenEnv]: token } })), token);
      assert.equal(await readPairingToken(valuesOf([]), quiet), undefined, 'none given: an enrolled agent');
      assert.deepEqual(quiet.errors, []);
      writeFileSync(file, '\n');
      await assert.rejects(readPairingToken(valuesOf(['--pairing-token-file', file]), quiet), { code: 'CLI_INPUT' });
      await assert.rejects(readPairingToken(valuesOf(['--pairing-token-file', join(dir, 'missing')]), quiet), { code: 'CLI_INPUT' });
      await assert.rejects(readPairingToken(valuesOf(['--pairing-token-stdin']), ioWith({ stdin: '' })), { code: 'CLI_INPUT' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Review h11, finding 9: both were read whole before the size check (a FIFO waited for its end).
  it('is refused (CLI_INPUT) past 4 KiB from a file, a pipe that never ends, or stdin, after reading 4 KiB and a byte', { timeout: 30_000 }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'sdc-pt-'));
    try {
      const big = join(dir, 'big');
      writeFileSync(big, `${token}\n${'x'.repeat(1024 * 1024)}`);
      await assert.rejects(readPairingToken(valuesOf(['--pairing-token-file', big]), ioWith()), (error: Error & { code?: string }) => error.code === 'CLI_INPUT' && /over 4096 bytes/.test(error.message));
      const exact = join(dir, 'exact');
      writeFileSync(exact, `${token}\n`.padEnd(4096, ' '));
      assert.equal(await readPairingToken(valuesOf(['--pairing-token-file', exact]), ioWith()), token, '4096 bytes is not over');

      // A pipe whose writer has written 5000 bytes and keeps it open: the end never comes.
      const fifo = join(dir, 'fifo');
      execFileSync('mkfifo', ['-m', '600', fifo]);
      const writerOpened = open(fifo, 'w');
      const read = readPairingToken(valuesOf(['--pairing-token-file', fifo]), ioWith()).then(() => 'accepted', (error: Error & { code?: string }) => error.code ?? String(error));
      const writer = await writerOpened;
      // Only for a reader that waits for the end (the old one): the test's timeout ends the pipe,
      // so that reader's thread is freed and the run fails rather than hangs.
      t.signal.addEventListener('abort', () => { writer.close().catch(() => undefined); });
      try {
        await writer.write('y'.repeat(5000));
        assert.equal(await read, 'CLI_INPUT');
      } finally {
        await writer.close();
      }
      // A pipe that holds a token and ends is read like a file (`--pairing-token-file <(...)`).
      const tokenWriter = open(fifo, 'w').then(async (handle) => { await handle.write(`${token}\n`); await handle.close(); });
      assert.equal(await readPairingToken(valuesOf(['--pairing-token-file', fifo]), ioWith()), token);
      await tokenWriter;

      const io = ioWith({ stdin: `${token}\n${'z'.repeat(5000)}` });
      await assert.rejects(readPairingToken(valuesOf(['--pairing-token-stdin']), io), (error: Error & { code?: string }) => error.code === 'CLI_INPUT' && /over 4096 bytes/.test(error.message));
      assert.deepEqual(io.stdinBounds, [4096], 'stdin is asked for 4096 bytes at most');
      // The real stdin reader stops pulling once over the bound: 5 chunks of 1 KiB out of 1000.
      let pulled = 0;
      async function* endless(): AsyncGenerator<Buffer> {
        for (let i = 0; i < 1000; i += 1) { pulled += 1; yield Buffer.alloc(1024, 0x61); }
      }
      assert.equal((await readStreamBounded(endless(), 4096)).length, 4097);
      assert.equal(pulled, 5);
      assert.equal((await readStreamBounded(endless())).length, 1000 * 1024, 'without a bound, all of it');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('on the command line still works, with a warning on stderr; two ways at once is a usage error', async () => {
    const io = ioWith();
    assert.equal(await readPairingToken(valuesOf(['--pairing-token', token]), io), token);
    assert.equal(io.errors.length, 1);
    assert.match(io.errors[0]!, /warning: --pairing-token .*--pairing-token-file/);
    await assert.rejects(readPairingToken(valuesOf(['--pairing-token', token, '--pairing-token-stdin']), io), { code: 'CLI_USAGE' });
  });

  it('--artifact-origin takes an https origin only, checked before anything starts', async () => {
    const run = (argv: string[]) => agentCommand.run(parseCommandArgs(agentCommand, ['--dir', '/nonexistent-sdc-agent-dir', ...argv]), ioWith());
    for (const bad of ['http://s3.example:9000', 'https://s3.example/bucket', 'https://user:pw@s3.example', 'not a url']) {
      await assert.rejects(run(['--artifact-origin', bad]), { code: 'CLI_USAGE' }, bad);
    }
    assert.ok(agentCommand.optionHelp!.some(([option]) => option === '--pairing-token-file F'));
  });
});
