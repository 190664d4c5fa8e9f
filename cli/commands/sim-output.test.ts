import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../main.js';

test('sdc sim --out: the latency histogram spells its open bucket +Inf, as every bench does', async () => {
  const out = await mkdtemp(join(tmpdir(), 'sdc-sim-out-'));
  try {
    let stderr = '';
    const code = await main(['sim', '--agents', '2', '--duration', '1s', '--seed', '7', '--out', out], {
      stdout: () => undefined, stderr: (t) => { stderr += t; }, readStdin: async () => '', env: {},
    });
    assert.equal(code, 0, stderr);
    const rows = (await readFile(join(out, 'latency-histogram.csv'), 'utf8')).trimEnd().split('\n');
    assert.equal(rows[0], 'le_ms,count');
    assert.match(rows.at(-1)!, /^\+Inf,\d+$/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
