import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { executionTable } from '../core/ota/execution-machine.js';
import { documentedDiagrams, mermaidUnderHeading, reportDiagrams } from './report-diagrams.js';
import { mermaidStateDiagram } from './report-mermaid.js';

test('mermaidUnderHeading takes the first mermaid block under the heading, never one under the next heading', () => {
  const md = ['# A', 'text', '## B', '```mermaid', 'flowchart LR', '    x --> y', '```', '## C', '```mermaid', 'sequenceDiagram', '```'].join('\n');
  assert.equal(mermaidUnderHeading(md, 'B'), 'flowchart LR\n    x --> y\n');
  assert.equal(mermaidUnderHeading(md, 'A'), 'flowchart LR\n    x --> y\n');
  assert.equal(mermaidUnderHeading(md, 'C'), 'sequenceDiagram\n');
  assert.equal(mermaidUnderHeading(['## B', 'no block', '## C', '```mermaid', 'x', '```'].join('\n'), 'B'), undefined);
  assert.equal(mermaidUnderHeading(md, 'missing'), undefined);
});

test('every documented diagram is found in the docs, and the OTA rollout sequence is a sequence diagram', async () => {
  const docs: Record<string, string> = {};
  for (const { doc } of documentedDiagrams) docs[doc] = await readFile(new URL(`../${doc}`, import.meta.url), 'utf8');
  const diagrams = reportDiagrams(docs);
  assert.deepEqual(diagrams.map((d) => d.name), ['architecture', 'enrollment', 'command-round-trip', 'ota-rollout']);
  assert.match(diagrams[0]!.mermaid, /^flowchart LR\n/);
  assert.match(diagrams[0]!.mermaid, /Gateway/);
  for (const d of diagrams.slice(1)) assert.match(d.mermaid, /^sequenceDiagram\n/, d.name);
  assert.match(diagrams[2]!.mermaid, /COMMAND_DELIVERY/);
  // Mermaid ends a sequence message at ';' and reads '<...>' as HTML: neither appears in any diagram (a ';' in docs/protocol.md once stopped the round trip from parsing).
  for (const d of diagrams) assert.doesNotMatch(d.mermaid, /[;<]/, d.name);
  assert.throws(() => reportDiagrams({}), RangeError);
});

test('the OTA execution machine is drawn from its transition table: every transition is an edge', () => {
  const mermaid = mermaidStateDiagram(executionTable);
  assert.match(mermaid, /^stateDiagram-v2\n {4}\[\*\] --> queued\n/);
  for (const [from, events] of Object.entries(executionTable.transitions)) {
    for (const [event, to] of Object.entries(events as Record<string, string>)) assert.match(mermaid, new RegExp(`^    ${from} --> ${to}: .*\\b${event}\\b`, 'm'), `${from} ${event}`);
  }
  for (const state of executionTable.terminal) assert.match(mermaid, new RegExp(`^    ${state} --> \\[\\*\\]$`, 'm'));
});
