import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import type { CliIo } from './command.js';
import { commandAuditWindowOptions } from './command-audit-window-option.js';
import { main } from './main.js';

const args = (values: Record<string, string>) => ({ values, positionals: [] }) as never;

describe('--command-audit-window-ms and $SDC_COMMAND_AUDIT_WINDOW_MS (sdc serve, sdc bench roundtrip)', () => {
  it('whole milliseconds or off (null: each commit awaits its drain); the flag wins over the variable; nothing given is nothing set', () => {
    assert.deepEqual(commandAuditWindowOptions(args({}), {}), {});
    assert.deepEqual(commandAuditWindowOptions(args({ 'command-audit-window-ms': '0' }), {}), { commandAuditWindowMs: 0 });
    assert.deepEqual(commandAuditWindowOptions(args({ 'command-audit-window-ms': '5000' }), {}), { commandAuditWindowMs: 5_000 });
    assert.deepEqual(commandAuditWindowOptions(args({ 'command-audit-window-ms': 'off' }), { SDC_COMMAND_AUDIT_WINDOW_MS: '20' }), { commandAuditWindowMs: null });
    assert.deepEqual(commandAuditWindowOptions(args({}), { SDC_COMMAND_AUDIT_WINDOW_MS: '20' }), { commandAuditWindowMs: 20 });
  });

  it('anything else is CLI_USAGE naming where it came from', () => {
    const refused = (values: Record<string, string>, env: Record<string, string>, pattern: RegExp) => assert.throws(
      () => commandAuditWindowOptions(args(values), env), (error: unknown) => SdcError.is(error, 'CLI_USAGE') && pattern.test(error.message), pattern.source);
    for (const bad of ['5001', '-1', '1.5', 'fast', '', 'OFF']) refused({ 'command-audit-window-ms': bad }, {}, /--command-audit-window-ms must be off or whole milliseconds from 0 to 5,000/);
    refused({}, { SDC_COMMAND_AUDIT_WINDOW_MS: '99999' }, /\$SDC_COMMAND_AUDIT_WINDOW_MS must be/);
  });

  it('sdc serve --help and sdc bench roundtrip --help list the flag with its variable', async () => {
    for (const command of [['serve', '--help'], ['bench', 'roundtrip', '--help']]) {
      let stdout = '';
      const io: CliIo = { stdout: (text) => { stdout += text; }, stderr: () => undefined, readStdin: async () => '', env: {} };
      assert.equal(await main(command, io), 0);
      assert.match(stdout, /--command-audit-window-ms N\|off .*\$SDC_COMMAND_AUDIT_WINDOW_MS/, command.join(' '));
    }
  });
});
