import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../main.js';
import { benchReportErrors } from '../../bench/schemas.js';

async function sdc(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => '', env: {} });
  return { code, stdout, stderr };
}

test('sdc bench sim: the common JSON report for both tiers, progress to 100 %, --out', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-bench-sim-'));
  try {
    for (const tier of ['full', 'model']) {
      // The per-message cost runs (six more fleets) are left out and the scheduler floors kept short: a smoke run of the command.
      const smallFullTier = tier === 'full' ? ['--cost-agents', '0'] : [];
      const run = await sdc(['bench', 'sim', '--tier', tier, '--max-agents', '4', '--duration', '2s', ...smallFullTier, '--floor-events', '2000', '--json', '--out', dir]);
      assert.equal(run.code, 0, run.stderr);
      const report = JSON.parse(run.stdout) as {
        benchmark: string; parameters: { tier: string }; results: Array<Record<string, number>>; units: Record<string, string>;
        details?: { message_costs: unknown[]; scheduler_floors: Array<{ scheduler: string; events: number; cpu_us_per_event: number }> };
      };
      assert.equal(report.benchmark, 'sim');
      // Both tiers' JSON validates against the sim schema (the full tier's rows have no `events`: the schema once required it).
      assert.deepEqual(benchReportErrors(report), []);
      assert.equal(report.parameters.tier, tier);
      // The full tier runs each fleet with real and with modelled crypto: the same trace, each the other's baseline.
      assert.equal(report.results.length, tier === 'full' ? 2 : 1);
      if (tier === 'full') {
        assert.equal(report.results[0]!.trace_hash, report.results[1]!.trace_hash);
        assert.deepEqual(report.details!.message_costs, [], '--cost-agents 0 leaves the per-message runs out');
        // Four schedulers, each timed over the events asked for.
        assert.deepEqual(report.details!.scheduler_floors.map((row) => row.events), [2_000, 2_000, 2_000, 2_000]);
        assert.ok(report.details!.scheduler_floors.every((row) => row.cpu_us_per_event > 0), JSON.stringify(report.details!.scheduler_floors));
      }
      // Issue 14: the baseline measured in the same run is the empty-event floor of the scheduler
      // the tier drives, and every row carries its ratio to it (sdc report draws that column).
      const floorName = tier === 'full' ? 'VirtualTime.runUntil + drainMicrotasks (the full tier now)' : 'model tier EventQueue push + popUntil';
      const floor = report.details!.scheduler_floors.find((row) => row.scheduler === floorName);
      assert.ok(floor !== undefined && floor.events === 2_000, `the ${floorName} floor in ${JSON.stringify(report.details!.scheduler_floors)}`);
      if (tier === 'model') assert.equal(report.details!.scheduler_floors.length, 1, 'the model tier measures its own floor only');
      assert.equal(report.units['ratio_to_empty_event_floor'], `ratio to an empty event through the same ${tier === 'full' ? 'scheduler' : 'event queue'} (same run)`);
      for (const row of report.results) {
        const perEvent = tier === 'full' ? row.steady_cpu_us_per_timer_event! : row.cpu_us_per_event!;
        assert.equal(typeof perEvent, 'number', JSON.stringify(row));
        // Both figures are rounded to 3 decimals in the JSON: the ratio within that rounding.
        assert.ok(Math.abs(row.ratio_to_empty_event_floor! - perEvent / floor.cpu_us_per_event) <= 0.002 * Math.max(1, perEvent / floor.cpu_us_per_event), JSON.stringify({ row, floor }));
      }
      assert.equal(report.results[0]!.agents, 4);
      assert.ok(report.results[0]!.virtual_ms! >= 2_000);
      for (const key of Object.keys(report.results[0]!)) assert.ok(report.units[key], `${key} has a unit`);
      assert.match(run.stderr, new RegExp(`bench sim \\(${tier}\\): 100% 1/1 fleets\\n`));
    }
    // --out writes the common four: JSON, CSV, a Markdown table and an SVG plot.
    assert.deepEqual((await readdir(dir)).sort(), ['sim.csv', 'sim.json', 'sim.md', 'sim.svg']);
    assert.match(await readFile(join(dir, 'sim.md'), 'utf8'), /^\|.*\|$/m, 'the Markdown holds a table');
    assert.match((await readFile(join(dir, 'sim.svg'), 'utf8')).trim(), /^<svg[\s\S]*<\/svg>$/, 'the SVG is one element');
    const legacy = await sdc(['bench', 'sim', '--tier', 'model', '--max-agents', '2', '--duration-s', '1', '--json']);
    assert.equal(legacy.code, 0, legacy.stderr);
    assert.match(legacy.stderr, /--duration-s is deprecated .* use --duration 1s/);
    assert.equal((await sdc(['bench', 'sim', '--duration', '0s'])).code, 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
