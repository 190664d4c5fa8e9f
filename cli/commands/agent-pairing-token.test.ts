// `sdc agent`'s pairing token off the command line (argv is in `ps` and the shell's history):
// --pairing-token-file, --pairing-token-stdin and $SDC_PAIRING_TOKEN; --pairing-token still works
// but warns on stderr. And --artifact-origin takes https origins only.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCommandArgs, type CliIo } from '../command.js';
import { agentCommand, pairingTokenEnv, readPairingToken } from './agent.js';

const token = 'sdcpt_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';

function ioWith(options: { stdin?: string; env?: Record<string, string> } = {}): CliIo & { errors: string[] } {
  const errors: string[] = [];
  return { errors, stdout: () => undefined, stderr: (text) => { errors.push(text); }, readStdin: async () => options.stdin ?? '', env: options.env ?? {} };
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
