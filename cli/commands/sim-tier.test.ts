import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { CliIo } from '../command.js';
import { main } from '../main.js';

async function sdc(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => '', env: {} };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

describe('sdc sim --tier and --validate-model', () => {
  it('--tier model runs the fleet model on the same scenario and seed, beyond the full tier\'s fleet limit, with the same outputs', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sdc-sim-tier-'));
    try {
      const run = await sdc(['sim', '--tier', 'model', '--scenario', 'standard', '--agents', '25000', '--duration', '2m', '--seed', '3', '--out', out]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /^seed: 3\nscenario standard: 25000 agents/);
      assert.match(run.stdout, /model tier: liveness=pass/);
      const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as { tier: string; reproduce: string; agents: number };
      assert.equal(summary.tier, 'model');
      assert.equal(summary.reproduce, 'sdc sim --tier model --seed 3 --scenario standard --agents 25000 --duration 120000ms');
      assert.match(await readFile(join(out, 'online-agents.csv'), 'utf8'), /^t_ms,online_agents\n1000,/);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('--validate-model compares both tiers and exits 0 when the model agrees', async () => {
    const run = await sdc(['sim', '--validate-model', '--scenario', 'smoke', '--agents', '4', '--duration', '4s', '--seed', '2', '--json']);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const report = JSON.parse(run.stdout) as { ok: boolean; comparisons: Array<{ metric: string; ok: boolean }> };
    assert.equal(report.ok, true);
    assert.ok(report.comparisons.some((c) => c.metric === 'latency p50 ms'));
  });

  it('refuses an unknown tier and modes that do not combine, in one line', async () => {
    const bogus = await sdc(['sim', '--tier', 'fast', '--seed', '1']);
    assert.equal(bogus.code, 2);
    assert.match(bogus.stderr, /CLI_USAGE: --tier is full or model/);
    for (const argv of [['sim', '--tier', 'model', '--swarm', '2'], ['sim', '--validate-model', '--swarm', '2'], ['sim', '--tier', 'model', '--validate-model']]) {
      const run = await sdc(argv);
      assert.equal(run.code, 2, argv.join(' '));
      assert.match(run.stderr, /^sdc: CLI_USAGE: --real, --swarm, --validate-model and --tier do not combine\n$/);
    }
    const tooMany = await sdc(['sim', '--tier', 'model', '--agents', '1000001', '--seed', '1']);
    assert.equal(tooMany.code, 2);
  });
});
