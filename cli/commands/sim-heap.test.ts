import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { main } from '../main.js';
import { currentHeapLimitMiB, fullTierHeapMiB, heapMiBMax, heapRelaunchArgs, heapRelaunchEnv } from './sim-heap.js';

const sdcBin = fileURLToPath(new URL('../../bin/sdc.js', import.meta.url));

test('the heap a full-tier run needs grows with the fleet and with virtual time, capped', () => {
  assert.ok(fullTierHeapMiB(100, 120_000) < 1_024);
  const tenMinutes = fullTierHeapMiB(100_000, 600_000);
  // Above Node's default limit (about 4 GiB here), which a 100,000-agent run exceeds.
  assert.ok(tenMinutes > 4_200, String(tenMinutes));
  assert.ok(fullTierHeapMiB(100_000, 3_600_000) > tenMinutes);
  assert.ok(fullTierHeapMiB(100_000, 600_000) > fullTierHeapMiB(50_000, 600_000));
  assert.equal(fullTierHeapMiB(100_000, 365 * 86_400_000), heapMiBMax);
});

test('the restart keeps node\'s flags and the command line, replaces a smaller heap limit, and never restarts twice', () => {
  const argv = ['/usr/bin/node', '/x/bin/sdc.js', 'sim', '--agents', '100000', '--seed', '1'];
  assert.equal(heapRelaunchArgs({ neededMiB: 5_000, limitMiB: 6_000, execArgv: [], argv, env: {} }), undefined);
  assert.equal(heapRelaunchArgs({ neededMiB: 5_000, limitMiB: 4_000, execArgv: [], argv, env: { [heapRelaunchEnv]: '1' } }), undefined);
  assert.deepEqual(
    heapRelaunchArgs({ neededMiB: 5_000, limitMiB: 4_000, execArgv: ['--cpu-prof', '--max-old-space-size=3000'], argv, env: {} }),
    ['--cpu-prof', '--max-old-space-size=5000', '/x/bin/sdc.js', 'sim', '--agents', '100000', '--seed', '1'],
  );
});

test('sdc sim under a heap limit too small for the fleet restarts itself with enough and gives the same run', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env[heapRelaunchEnv];
  const argv = ['sim', '--agents', '3', '--duration', '2s', '--seed', '5', '--crypto', 'model', '--json'];
  // The run that is not restarted, in this process (its heap limit is above what the run needs):
  // a process of its own cost about 5 s of CPU loading the CLI from source, and the run 1 s.
  assert.ok(process.env[heapRelaunchEnv] === undefined && currentHeapLimitMiB() >= fullTierHeapMiB(3, 2_000), 'this process runs it without a restart');
  const direct = { status: 0, stdout: '', stderr: '' };
  direct.status = await main(argv, { stdout: (t) => { direct.stdout += t; }, stderr: (t) => { direct.stderr += t; }, readStdin: async () => '', env: {} });
  const small = spawnSync(process.execPath, ['--max-old-space-size=96', sdcBin, ...argv], { encoding: 'utf8', env });
  assert.equal(direct.status, 0, direct.stderr);
  assert.equal(small.status, 0, small.stderr);
  assert.match(small.stderr, /restarting with --max-old-space-size=\d+/);
  assert.doesNotMatch(direct.stderr, /restarting/);
  // The seed line once, then the same run.
  assert.equal(small.stderr.match(/seed: 5/g)?.length, 1);
  const hashOf = (out: string) => (JSON.parse(out) as { traceHash: string }).traceHash;
  assert.equal(hashOf(small.stdout), hashOf(direct.stdout));
});
