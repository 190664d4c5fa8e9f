import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { parseCommandArgs, type Command } from '../command.js';
import { benchGroup } from './bench.js';
import { chaosGroup } from './chaos.js';
import { simCommand } from './sim.js';
import { runSets } from './report-sets.js';

/** The command a step runs (sdc bench X, sdc chaos X, sdc sim) and its options after the name. */
function commandOf(argv: readonly string[]): { command: Command; rest: string[] } {
  if (argv[0] === 'sim') return { command: simCommand, rest: argv.slice(1) };
  const group = argv[0] === 'bench' ? benchGroup : argv[0] === 'chaos' ? chaosGroup : undefined;
  const command = group?.commands.find((c) => c.name === argv[1]);
  assert.ok(command !== undefined, `no command sdc ${argv.slice(0, 2).join(' ')}`);
  return { command: command as Command, rest: argv.slice(2) };
}

// The paper set takes hours and is not run by the tests: each of its command lines (and tiny's) at least parses, and its scenarios exist.
test('every step of every run set is a valid sdc command line with --out, its scenario files present', async () => {
  for (const set of runSets) {
    const dirs = set.steps.map((s) => s.dir);
    assert.equal(new Set(dirs).size, dirs.length, `${set.name}: step directories are unique`);
    for (const step of set.steps) {
      const argv = step.argv.map((a) => a.replace('{scenarios}', 'sim/scenarios'));
      const { command, rest } = commandOf(argv);
      const stores = (step.stores ?? []).flatMap((s) => [`--${s}`, 'redis://127.0.0.1:1']);
      assert.doesNotThrow(() => parseCommandArgs(command, [...rest, ...stores, '--out', '/tmp/x']), `${set.name} ${step.dir}: ${argv.join(' ')}`);
      const scenario = argv[argv.indexOf('--scenario') + 1];
      if (argv.includes('--scenario')) assert.ok((await stat(new URL(`../../${scenario}`, import.meta.url))).isFile(), `${scenario}`);
    }
  }
  assert.deepEqual(runSets.map((s) => s.name), ['tiny', 'paper']);
});
