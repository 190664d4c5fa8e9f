import assert from 'node:assert/strict';
import { test } from 'node:test';
import { main } from '../main.js';

async function sdc(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => '', env: {} });
  return { code, stdout, stderr };
}

test('sdc demo takes --timeout 5m (--timeout-s deprecated) and refuses a bad one before starting anything', async () => {
  const help = await sdc(['demo', '--help']);
  assert.match(help.stdout, /--timeout D +Give up after D/);
  assert.match(help.stdout, /--timeout-s N +deprecated, use --timeout/);
  for (const bad of [['--timeout', '1s'], ['--timeout', '300'], ['--timeout-s', '1'], ['--timeout', '5m', '--timeout-s', '300']]) {
    const run = await sdc(['demo', ...bad]);
    assert.equal(run.code, 2, bad.join(' '));
    assert.match(run.stderr, /^sdc: CLI_USAGE: /m);
  }
});
