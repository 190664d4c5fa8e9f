import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { TransitionTable } from '../protocol/state-machine.js';
import { executionEvents, executionInstalledVersion, executionOutcome, executionTable, executionTerminalStates, type ExecutionState } from './execution-machine.js';
import { releaseEvents, releaseTable } from './release-machine.js';

/**
 * docs/ota.md against the tables (as core/protocol/command-docs.test.ts does for commands): the
 * transition tables in the docs are generated from the code's tables (on a mismatch the test
 * prints the rows to paste), every event is explained, and the terminal-state table says what
 * executionInstalledVersion and executionOutcome say.
 */
const docs = readFileSync(new URL('../../docs/ota.md', import.meta.url), 'utf8');

/** One row per state: each event and the state it leads to, in the table's declared event order. */
export function transitionRows(table: TransitionTable<string, string>): string {
  const rows = table.states.map((state) => {
    const row = table.transitions[state]!;
    const moves = table.events.filter((e) => row[e] !== undefined).map((e) => `\`${e}\` → \`${row[e]!}\``);
    return `| \`${state}\` | ${moves.length === 0 ? 'terminal' : moves.join(', ')} |`;
  });
  return ['| state | event → next state |', '| --- | --- |', ...rows].join('\n');
}

function between(startMarker: string): string {
  const start = docs.indexOf(startMarker);
  assert.ok(start >= 0, `docs/ota.md lacks ${startMarker}`);
  const body = docs.slice(start + startMarker.length);
  return body.slice(0, body.indexOf('<!-- end -->')).trim();
}

for (const table of [releaseTable, executionTable] as TransitionTable<string, string>[]) {
  test(`docs/ota.md shows the ${table.name} transitions exactly as the table has them`, () => {
    const expected = transitionRows(table);
    assert.equal(between(`<!-- transitions: ${table.name} (generated; checked by core/ota/ota-docs.test.ts) -->`), expected, `paste:\n${expected}`);
  });
}

test('docs/ota.md explains every release and execution event', () => {
  for (const event of [...releaseEvents, ...executionEvents]) assert.match(docs, new RegExp(`^\\| \`${event}\` \\|`, 'm'), event);
});

test('docs/ota.md lists every terminal execution state once, with the installed version and the count the table gives', () => {
  const section = between('<!-- terminal execution states: checked against executionInstalledVersion and executionOutcome -->');
  const rows = [...section.matchAll(/^\| `([a-z_]+)` \| ([a-z_]+) \| ([a-z_ ]+) \|/gm)].map((m) => ({ state: m[1]! as ExecutionState, installed: m[2]!, counts: m[3]!.trim() }));
  assert.deepEqual(rows.map((r) => r.state).sort(), [...executionTerminalStates].sort());
  for (const { state, installed, counts } of rows) {
    assert.equal(installed, executionInstalledVersion[state], state);
    assert.equal(counts.replace(' ', '_'), executionOutcome[state], state);
  }
});
