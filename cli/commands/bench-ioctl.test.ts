import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../main.js';

test('sdc bench ioctl --json reports mock and native rows for ping and status', async () => {
  let out = '';
  const code = await main(['bench', 'ioctl', '--calls', '20', '--json'], {
    stdout: (t) => { out += t; }, stderr: () => {}, readStdin: async () => '', env: {},
  });
  assert.equal(code, 0);
  const report = JSON.parse(out) as { rows: Array<{ backend: string; opcode: string; calls: number; callsPerSecond: number; p99Us: number }> };
  assert.deepEqual(report.rows.map((r) => `${r.backend}:${r.opcode}`), [
    'mock:EXEC_PING_KERNEL', 'mock:EXEC_GET_STATUS', 'native:EXEC_PING_KERNEL', 'native:EXEC_GET_STATUS',
  ]);
  for (const row of report.rows) {
    assert.equal(row.calls, 20);
    assert.ok(row.callsPerSecond > 0 && row.p99Us > 0, `${row.backend} ${row.opcode} measured nothing`);
  }
});

test('sdc bench ioctl refuses a zero call count with CLI_USAGE', async () => {
  let err = '';
  const code = await main(['bench', 'ioctl', '--calls', '0'], { stdout: () => {}, stderr: (t) => { err += t; }, readStdin: async () => '', env: {} });
  assert.equal(code, 2);
  assert.match(err, /CLI_USAGE/);
});
