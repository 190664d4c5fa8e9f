import { SdcError } from '../errors/index.js';

/**
 * A state machine is a table, `[state][event] -> next state` (h11's `_state.py`).
 * An event with no entry is illegal: it throws PROTO_ILLEGAL_TRANSITION. When the table
 * declares an error state, an illegal event also moves the machine there and the error
 * state is sticky: nothing leaves it. A terminal state accepts no event, unless the table lists
 * it as `refinable`: then it may move once more, to a terminal state that is not refinable (a
 * late fact refining what was recorded). Docs diagrams are drawn from the same table.
 */
export interface TransitionTable<S extends string, E extends string> {
  readonly name: string;
  readonly initial: S;
  readonly states: readonly S[];
  readonly events: readonly E[];
  readonly terminal: readonly S[];
  /** Terminal states that a late event may still refine (once, to a final state). */
  readonly refinable?: readonly S[];
  /** Sticky state entered on an illegal event, if the machine has one. */
  readonly errorState?: S;
  readonly transitions: { readonly [state in S]: Partial<Readonly<Record<E, S>>> };
}

export interface TransitionRecord<S extends string, E extends string> {
  readonly from: S;
  readonly event: E;
  readonly to: S;
  readonly atMs: number;
}

/** Pure look-up: the next state, or undefined when the event is illegal in `state`. */
export function nextState<S extends string, E extends string>(table: TransitionTable<S, E>, state: S, event: E): S | undefined {
  return table.transitions[state][event];
}

export function isTerminal<S extends string, E extends string>(table: TransitionTable<S, E>, state: S): boolean {
  return table.terminal.includes(state);
}

/** Terminal and not refinable: nothing can change it any more. */
export function isFinal<S extends string, E extends string>(table: TransitionTable<S, E>, state: S): boolean {
  return table.terminal.includes(state) && !(table.refinable ?? []).includes(state);
}

/** Checks a table's own consistency; run once per table by the tests. Returns the problems found. */
export function checkTable<S extends string, E extends string>(table: TransitionTable<S, E>): string[] {
  const problems: string[] = [];
  const states = new Set<string>(table.states);
  if (!states.has(table.initial)) problems.push(`initial state ${table.initial} is not declared`);
  if (table.errorState !== undefined && !states.has(table.errorState)) problems.push(`error state ${table.errorState} is not declared`);
  for (const state of table.states) {
    const row = table.transitions[state];
    if (row === undefined) { problems.push(`state ${state} has no row`); continue; }
    for (const [event, to] of Object.entries(row)) {
      if (!table.events.includes(event as E)) problems.push(`${state}: undeclared event ${event}`);
      if (!states.has(to as string)) problems.push(`${state} --${event}--> undeclared state ${String(to)}`);
    }
    if (isFinal(table, state) && Object.keys(row).length > 0) problems.push(`terminal state ${state} has transitions`);
    if ((table.refinable ?? []).includes(state)) {
      if (!table.terminal.includes(state)) problems.push(`refinable state ${state} is not terminal`);
      for (const [event, to] of Object.entries(row)) {
        if (!isFinal(table, to as S)) problems.push(`refinable state ${state} --${event}--> ${String(to)}, which is not final`);
      }
    }
  }
  for (const key of Object.keys(table.transitions)) if (!states.has(key)) problems.push(`row for undeclared state ${key}`);
  return problems;
}

const noHistory: readonly never[] = Object.freeze([]);

/**
 * One running instance of a table. Keeps a bounded history of transitions with their times
 * (`historyEntriesMax`), which the command lifecycle reports through the API.
 */
export class StateMachine<S extends string, E extends string> {
  #state: S;
  readonly #history: TransitionRecord<S, E>[];
  readonly #historyEntriesMax: number;

  constructor(readonly table: TransitionTable<S, E>, options: { state?: S; historyEntriesMax?: number } = {}) {
    this.#state = options.state ?? table.initial;
    this.#historyEntriesMax = options.historyEntriesMax ?? 32;
    // Without history (every gateway session's machine, connection-core.ts) all machines share one
    // frozen empty array, never written (#record returns first), instead of an array each.
    this.#history = this.#historyEntriesMax === 0 ? (noHistory as unknown as TransitionRecord<S, E>[]) : [];
    if (!table.states.includes(this.#state)) {
      throw new SdcError('PROTO_INVALID_ARGUMENT', `${table.name}: unknown state ${this.#state}`);
    }
  }

  get state(): S {
    return this.#state;
  }

  get history(): readonly TransitionRecord<S, E>[] {
    return this.#history;
  }

  get isTerminal(): boolean {
    return isTerminal(this.table, this.#state);
  }

  can(event: E): boolean {
    return nextState(this.table, this.#state, event) !== undefined;
  }

  /** Applies `event` at `atMs`; returns the new state or throws PROTO_ILLEGAL_TRANSITION / PROTO_STATE_ERROR. */
  apply(event: E, atMs: number): S {
    const from = this.#state;
    if (from === this.table.errorState) {
      throw new SdcError('PROTO_STATE_ERROR', `${this.table.name} is in its error state; ${event} refused`, { event });
    }
    const to = nextState(this.table, from, event);
    if (to === undefined) {
      if (this.table.errorState !== undefined) this.#record(from, event, this.table.errorState, atMs);
      throw new SdcError('PROTO_ILLEGAL_TRANSITION', `${this.table.name}: event ${event} is not allowed in state ${from}`, {
        machine: this.table.name, state: from, event,
      });
    }
    this.#record(from, event, to, atMs);
    return to;
  }

  #record(from: S, event: E, to: S, atMs: number): void {
    this.#state = to;
    if (this.#historyEntriesMax === 0) return;
    this.#history.push({ from, event, to, atMs });
    if (this.#history.length > this.#historyEntriesMax) this.#history.shift();
  }
}

/** A Mermaid state diagram of a table, for docs/protocol.md. */
export function renderMermaid<S extends string, E extends string>(table: TransitionTable<S, E>): string {
  const lines = ['stateDiagram-v2', `    [*] --> ${table.initial}`];
  for (const state of table.states) {
    for (const [event, to] of Object.entries(table.transitions[state])) lines.push(`    ${state} --> ${String(to)}: ${event}`);
  }
  for (const state of table.terminal) lines.push(`    ${state} --> [*]`);
  return lines.join('\n');
}
