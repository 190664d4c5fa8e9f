import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { commandExecution, commandTerminalStates } from './command-machine.js';

test('docs/protocol.md lists every terminal command state once, and says it guarantees non-execution exactly when the table does', () => {
  const text = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
  const section = text.slice(text.indexOf('### What a command state says about execution'));
  const rows = [...section.matchAll(/^\| `([a-z_]+)` \| ([^|]+) \|/gm)].map((m) => ({ state: m[1]!, guarantees: m[2]!.trim() }));
  assert.deepEqual(rows.map((r) => r.state).sort(), [...commandTerminalStates].sort());
  for (const { state, guarantees } of rows) {
    const notExecuted = commandExecution[state as keyof typeof commandExecution] === 'not_executed';
    assert.equal(guarantees.startsWith('**yes**'), notExecuted, `${state}: "${guarantees}"`);
    assert.equal(guarantees.includes('unknown'), commandExecution[state as keyof typeof commandExecution] === 'unknown', `${state}: "${guarantees}"`);
  }
});
