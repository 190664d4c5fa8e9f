import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { CliIo } from '../command.js';
import { main } from '../main.js';

const sdcBin = fileURLToPath(new URL('../../bin/sdc.js', import.meta.url));

async function sdc(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => '', env };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

describe('sdc sim seeds', () => {
  it('without --seed draws a seed, prints it first, runs, and leaves nothing in the temporary folder', async () => {
    // A process of its own with TMPDIR pointing at an empty folder: whatever the run leaves
    // behind (the simulated fleet's CA keys were left in sdc-sim-pki-*) shows up there.
    const tmp = await mkdtemp(join(tmpdir(), 'sdc-sim-test-tmp-'));
    try {
      const run = spawnSync(process.execPath, [sdcBin, 'sim', '--agents', '2', '--duration', '1s'], {
        env: { ...process.env, TMPDIR: tmp }, encoding: 'utf8', timeout: 240_000,
      });
      assert.equal(run.status, 0, run.stderr);
      assert.doesNotMatch(run.stderr, /RangeError|internal error/);
      const seed = /^seed: (\d+)\n/.exec(run.stdout);
      assert.ok(seed, run.stdout);
      assert.ok(Number(seed[1]) <= 2 ** 48 - 1);
      // tsx keeps its compile cache there (tsx-<uid>); everything else would be ours.
      assert.deepEqual((await readdir(tmp)).filter((name) => !/^tsx-\d+$/.test(name)), []);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('--real without --seed draws a seed too (and then refuses the unreadable --ca in one line)', async () => {
    const run = await sdc(['sim', '--real', 'https://127.0.0.1:9', '--admin', 'boss', '--ca', '/nonexistent/root-ca.pem']);
    assert.match(run.stdout, /^seed: \d+\n$/);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /^sdc: CLI_INPUT: cannot read --ca \/nonexistent\/root-ca.pem/);
  });

  it('--seed states the range a seed may take, and refuses one past it', async () => {
    for (const bad of ['abc', '-1', String(2 ** 48)]) {
      const run = await sdc(['sim', '--seed', bad]);
      assert.equal(run.code, 2, bad);
      assert.equal(run.stderr, 'sdc: CLI_USAGE: --seed must be an integer from 0 to 281474976710655\n', bad);
    }
  });

  it('--swarm keeps its last seed within range', async () => {
    const run = await sdc(['sim', '--swarm', '3', '--seed', String(2 ** 48 - 2)]);
    assert.equal(run.code, 2);
    assert.equal(run.stderr, 'sdc: CLI_USAGE: --seed must be an integer from 0 to 281474976710653\n');
  });
});

describe('sdc sim --swarm: its options', () => {
  it('--json prints one object with every run (lines to stderr), and --crypto reaches the runs: the same trace hashes with either', async () => {
    const swarmOf = async (crypto: string) => {
      const run = await sdc(['sim', '--swarm', '2', '--agents', '3', '--duration', '2s', '--seed', '40', '--crypto', crypto, '--json']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, new RegExp(`^swarm: 2 runs from seed 40, 3 agents, safety 2000 ms, crypto ${crypto}\\n`));
      assert.match(run.stderr, /^ok {3}seed 41 [0-9a-f]{16} /m);
      return JSON.parse(run.stdout) as { ok: boolean; crypto: string; failed: number; results: Array<{ seed: number; ok: boolean; traceHash: string; violations: string[]; reproduce: string }> };
    };
    const model = await swarmOf('model');
    assert.deepEqual([model.ok, model.crypto, model.failed, model.results.map((r) => [r.seed, r.ok, r.violations.length])], [true, 'model', 0, [[40, true, 0], [41, true, 0]]]);
    assert.match(model.results[0]!.reproduce, /--scenario swarm:40 /);
    const real = await swarmOf('real');
    assert.deepEqual(real.results.map((r) => r.traceHash), model.results.map((r) => r.traceHash));
  });

  it('refuses options of another mode instead of ignoring them', async () => {
    for (const [args, message] of [
      [['--swarm', '2', '--scenario', 'smoke'], '--scenario does not combine with --swarm'],
      [['--swarm', '2', '--out', '/tmp/x'], '--out does not combine with --swarm'],
      [['--swarm', '2', '--crypto', 'fast'], "--crypto is real or model, got 'fast'"],
      [['--scenario', 'smoke', '--lossy'], '--lossy applies to --swarm only'],
      [['--outages'], '--outages applies to --swarm only'],
    ] as const) {
      const run = await sdc(['sim', ...args, '--seed', '1']);
      assert.equal(run.code, 2, args.join(' '));
      assert.ok(run.stderr.startsWith(`sdc: CLI_USAGE: ${message}`), `${args.join(' ')}: ${run.stderr}`);
    }
  });
});

describe('sdc sim --crypto', () => {
  it('model gives the trace hash of real for the same seed; anything else is a usage error', async () => {
    const hashOf = async (crypto: string) => {
      const run = await sdc(['sim', '--scenario', 'smoke', '--agents', '3', '--duration', '2s', '--seed', '7', '--crypto', crypto, '--json']);
      assert.equal(run.code, 0, run.stderr);
      return (JSON.parse(run.stdout) as { traceHash: string }).traceHash;
    };
    assert.equal(await hashOf('model'), await hashOf('real'));
    assert.equal((await sdc(['sim', '--crypto', 'fast', '--seed', '1'])).code, 2);
  });
});
