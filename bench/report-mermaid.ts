import type { TransitionTable } from '../core/protocol/state-machine.js';

/**
 * A state machine drawn from its transition table (core/protocol/*-machine.ts), never by hand:
 * a Mermaid stateDiagram-v2 with one edge per (state, event) entry, events on the edges, the
 * initial state from [*] and terminal states to [*]. Transitions that share both ends are merged
 * into one edge labelled with every event, so the diagram stays readable.
 */
export function mermaidStateDiagram<S extends string, E extends string>(table: TransitionTable<S, E>): string {
  const lines = ['stateDiagram-v2', `    [*] --> ${table.initial}`];
  for (const from of table.states) {
    const byTarget = new Map<S, E[]>();
    for (const event of table.events) {
      const to = table.transitions[from][event];
      if (to !== undefined) byTarget.set(to, [...(byTarget.get(to) ?? []), event]);
    }
    for (const [to, events] of byTarget) lines.push(`    ${from} --> ${to}: ${events.join(', ')}`);
  }
  for (const state of table.terminal) {
    if (!(table.refinable ?? []).includes(state)) lines.push(`    ${state} --> [*]`);
  }
  // Declared on its own line: no transition names the error state (any illegal event enters it), and Mermaid refuses a note on an undeclared state.
  if (table.errorState !== undefined) lines.push(`    ${table.errorState}`, `    note right of ${table.errorState}: sticky, entered on any illegal event`);
  for (const state of table.refinable ?? []) lines.push(`    note right of ${state}: terminal, refined once by a late result`);
  return lines.join('\n') + '\n';
}

/** The same table as rows (from, event, to), for a table beside the diagram. */
export function transitionRows<S extends string, E extends string>(table: TransitionTable<S, E>): Array<[string, string, string]> {
  const rows: Array<[string, string, string]> = [];
  for (const from of table.states) {
    for (const event of table.events) {
      const to = table.transitions[from][event];
      if (to !== undefined) rows.push([from, event, to]);
    }
  }
  return rows;
}
