import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../main.js';

async function sdc(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => '', env: {} });
  return { code, stdout, stderr };
}

// Its own file: the set runs twice (about 20 s of CPU), apart from the --from tests in report.test.ts.
/** The report without its wall-clock part: the Performance section (to the next top-level section) cut out. */
function withoutPerformance(text: string, tex: boolean): string {
  const [start, next] = tex ? ['\\section{Performance}', '\\section{'] : ['## Performance\n', '\n## '];
  const from = text.indexOf(start);
  assert.ok(from > 0, 'a Performance section');
  const to = text.indexOf(next, from + start.length);
  return text.slice(0, from) + text.slice(to);
}

test('sdc report --run tiny: runs the set into OUT/runs, names each command, and twice gives byte-identical simulation and matrix figures', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-report-run-'));
  try {
    const first = await sdc(['report', '--run', 'tiny', '--out', join(dir, 'a')]);
    assert.equal(first.code, 0, first.stderr);
    const second = await sdc(['report', '--out', join(dir, 'b')]);
    assert.equal(second.code, 0, second.stderr);
    const manifest = JSON.parse(await readFile(join(dir, 'a', 'runs', 'run-set.json'), 'utf8')) as { run_set: string; steps: Array<{ dir: string; command: string; exit_code: number }> };
    assert.equal(manifest.run_set, 'tiny');
    assert.deepEqual(manifest.steps.map((s) => s.exit_code), manifest.steps.map(() => 0));
    assert.ok(manifest.steps.some((s) => s.dir.startsWith('sim-')) && manifest.steps.some((s) => s.dir.startsWith('bench-')) && manifest.steps.some((s) => s.dir === 'chaos-matrix'));
    const md = await readFile(join(dir, 'a', 'report.md'), 'utf8');
    assert.match(md, /Produced by `sdc report --run tiny`/);
    // Every bench names the command of its step; every seed its reproduce line.
    for (const step of manifest.steps.filter((s) => s.dir.startsWith('bench-'))) assert.ok(md.includes(`Command: \`${step.command}\``), step.command);
    assert.match(md, /`sdc sim --seed 1 --scenario sim\/scenarios\/smoke.json --agents 2 --duration 10000ms`/);
    assert.match(md, /\| smoke \| 2 \| 2 \|/);
    assert.match(md, /\| partition \| none_lost \|/);
    const names = (await readdir(join(dir, 'a'))).filter((n) => n !== 'runs').sort();
    assert.deepEqual((await readdir(join(dir, 'b'))).filter((n) => n !== 'runs').sort(), names);
    // Deterministic: everything but the benches (wall-clock: their figures and the Performance section).
    const deterministic = names.filter((n) => !n.startsWith('bench-') && !n.startsWith('report.') && !n.endsWith('.pdf'));
    assert.ok(deterministic.filter((n) => n.startsWith('sim-')).length >= 2, deterministic.join(', '));
    for (const name of deterministic) assert.equal(await readFile(join(dir, 'b', name), 'utf8'), await readFile(join(dir, 'a', name), 'utf8'), `${name} differs between runs`);
    for (const [name, tex] of [['report.md', false], ['report.tex', true]] as const) {
      assert.equal(withoutPerformance(await readFile(join(dir, 'b', name), 'utf8'), tex), withoutPerformance(await readFile(join(dir, 'a', name), 'utf8'), tex), `${name} outside Performance differs`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
