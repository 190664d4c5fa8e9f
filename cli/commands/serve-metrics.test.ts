// sdc serve's /metrics options (issue 12, 11.1): the scrape token comes from a file or the
// environment, never a flag value, and a short one is refused in one line before anything starts.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { CliIo } from '../command.js';
import { main } from '../main.js';

async function sdc(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const io: CliIo = { stdout: () => undefined, stderr: (t) => { err.push(t); }, readStdin: async () => '', env: { SDC_LOG_LEVEL: 'silent', ...env }, untilStopped: async () => 'test' };
  return { code: await main(argv, io), err: err.join('') };
}

describe('sdc serve --metrics-token-file / $SDC_METRICS_TOKEN', () => {
  it('refuses a short token from the file or the environment with API_METRICS_TOKEN_INVALID naming its source, before anything starts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdc-serve-metrics-'));
    try {
      const file = join(dir, 'scrape-token');
      await writeFile(file, 'short\n', { mode: 0o600 });
      // No data directory exists at dir/data: a refusal of the token shows the token was checked first.
      const fromFile = await sdc(['serve', '--dir', join(dir, 'data'), '--metrics-token-file', file]);
      assert.notEqual(fromFile.code, 0);
      assert.match(fromFile.err, /API_METRICS_TOKEN_INVALID: the scrape token from .*scrape-token must be at least 16 characters/);
      const fromEnv = await sdc(['serve', '--dir', join(dir, 'data')], { SDC_METRICS_TOKEN: 'short' });
      assert.match(fromEnv.err, /API_METRICS_TOKEN_INVALID: the scrape token from \$SDC_METRICS_TOKEN/);
      const missing = await sdc(['serve', '--dir', join(dir, 'data'), '--metrics-token-file', join(dir, 'nope')]);
      assert.match(missing.err, /CLI_INPUT: --metrics-token-file .*nope cannot be read/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
