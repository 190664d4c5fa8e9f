import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SdcError } from '../errors/index.js';
import { StateMachine, checkTable, isFinal, nextState, renderMermaid, type TransitionTable } from './state-machine.js';
import { sessionTable } from './session-machine.js';
import { commandExecution, commandNotExecutedStates, commandRefinableStates, commandTable, commandTerminalStates } from './command-machine.js';

const tables = [sessionTable, commandTable] as TransitionTable<string, string>[];

for (const table of tables) {
  test(`${table.name}: the table is consistent`, () => {
    assert.deepEqual(checkTable(table), []);
  });

  test(`${table.name}: random event sequences never reach an undeclared state`, () => {
    fc.assert(fc.property(fc.array(fc.constantFrom(...table.events), { maxLength: 60 }), (events) => {
      const machine = new StateMachine(table, { historyEntriesMax: 8 });
      let atMs = 0;
      for (const event of events) {
        const before = machine.state;
        try {
          machine.apply(event, atMs++);
          assert.equal(machine.state, nextState(table, before, event));
        } catch (error) {
          assert.ok(SdcError.is(error), 'only typed errors escape');
          assert.ok(error.code === 'PROTO_ILLEGAL_TRANSITION' || error.code === 'PROTO_STATE_ERROR');
          assert.equal(nextState(table, before, event), undefined, 'a legal event never throws');
          // Without an error state the machine stays where it was; with one, it is there.
          assert.equal(machine.state, table.errorState ?? before);
        }
        assert.ok(table.states.includes(machine.state), `undeclared state ${machine.state}`);
        assert.ok(machine.history.length <= 8, 'history is bounded');
      }
    }), { numRuns: 500 });
  });

  test(`${table.name}: final states accept no event; a refinable terminal state moves at most once more, to a final state`, () => {
    for (const state of table.terminal) {
      for (const event of table.events) {
        const machine = new StateMachine(table, { state });
        if (isFinal(table, state)) {
          assert.throws(() => machine.apply(event, 0), (e) => SdcError.is(e, 'PROTO_ILLEGAL_TRANSITION'));
          continue;
        }
        if (!machine.can(event)) continue;
        const to = machine.apply(event, 0);
        assert.ok(isFinal(table, to), `${state} --${event}--> ${to} is not final`);
      }
    }
  });

  test(`${table.name}: the Mermaid diagram lists every transition`, () => {
    const diagram = renderMermaid(table);
    const count = table.states.reduce((n, s) => n + Object.keys(table.transitions[s] ?? {}).length, 0);
    assert.equal(diagram.split('\n').filter((l) => l.includes(': ')).length, count);
  });
}

test('session: the error state is sticky', () => {
  const machine = new StateMachine(sessionTable);
  assert.throws(() => machine.apply('frame', 1), (e) => SdcError.is(e, 'PROTO_ILLEGAL_TRANSITION'));
  assert.equal(machine.state, 'error');
  for (const event of sessionTable.events) {
    assert.throws(() => machine.apply(event, 2), (e) => SdcError.is(e, 'PROTO_STATE_ERROR'));
    assert.equal(machine.state, 'error');
  }
});

test('session: the happy path', () => {
  const machine = new StateMachine(sessionTable);
  for (const event of ['challenge', 'auth_ok', 'frame', 'frame', 'close'] as const) machine.apply(event, 0);
  assert.equal(machine.state, 'closed');
});

test('command: the full lifecycle is recorded in order with times', () => {
  const machine = new StateMachine(commandTable);
  const path = [['deliver', 10], ['ack', 20], ['start', 30], ['succeed', 40]] as const;
  for (const [event, atMs] of path) machine.apply(event, atMs);
  assert.deepEqual(machine.history.map((r) => [r.to, r.atMs]), [['sent', 10], ['ack_received', 20], ['executing', 30], ['succeeded', 40]]);
  assert.ok(machine.isTerminal);
  assert.ok(commandTerminalStates.includes(machine.state));
});

test('command: an illegal event leaves the state unchanged and names it', () => {
  const machine = new StateMachine(commandTable);
  assert.throws(() => machine.apply('succeed', 0), (e) => {
    assert.ok(SdcError.is(e, 'PROTO_ILLEGAL_TRANSITION'));
    assert.deepEqual(e.details, { machine: 'command', state: 'queued', event: 'succeed' });
    return true;
  });
  assert.equal(machine.state, 'queued');
});

test('command: a timeout or dead letter is refined once by a late result; expired and rejected stay as they are', () => {
  const late = new StateMachine(commandTable);
  for (const [event, atMs] of [['deliver', 10], ['ack', 20], ['start', 30], ['time_out', 40], ['succeed', 50]] as const) late.apply(event, atMs);
  assert.deepEqual(late.history.map((r) => r.to), ['sent', 'ack_received', 'executing', 'timed_out', 'succeeded_late']);
  assert.throws(() => late.apply('fail', 60), (e) => SdcError.is(e, 'PROTO_ILLEGAL_TRANSITION'));
  const refused = new StateMachine(commandTable);
  for (const event of ['deliver', 'dead_letter', 'reject'] as const) refused.apply(event, 0);
  assert.equal(refused.state, 'rejected');
  const expired = new StateMachine(commandTable);
  expired.apply('expire', 0);
  for (const event of commandTable.events) assert.equal(expired.can(event), false, `expired accepts ${event}`);
  // `expire` is only for a command that never left the control plane: one that was sent times out instead.
  assert.equal(nextState(commandTable, 'sent', 'expire'), undefined);
});

test('command: what each terminal state says about execution', () => {
  assert.deepEqual([...commandNotExecutedStates].sort(), ['expired', 'rejected']);
  assert.deepEqual([...commandRefinableStates].sort(), ['dead_lettered', 'timed_out']);
  for (const state of commandTerminalStates) assert.notEqual(commandExecution[state], 'pending', `${state} is terminal`);
  for (const state of commandRefinableStates) assert.equal(commandExecution[state], 'unknown');
  // A state that guarantees non-execution is never reached from one where the device may have run the command, except by its own signed refusal.
  for (const state of commandTable.states) {
    for (const [event, to] of Object.entries(commandTable.transitions[state])) {
      if (commandExecution[to] === 'not_executed') {
        // An approver's rejection ends only a command that was never signed (pending approval).
        assert.ok(event === 'reject' || event === 'expire' || (event === 'approval_reject' && state === 'pending_approval'), `${state} --${event}--> ${to}`);
      }
    }
  }
});

test('command: a pending command is entered only at creation and leaves only to queued (signed) or a not-executed end', () => {
  for (const state of commandTable.states) {
    for (const to of Object.values(commandTable.transitions[state])) assert.notEqual(to, 'pending_approval', `${state} re-enters pending_approval`);
  }
  const exits = commandTable.transitions.pending_approval;
  assert.deepEqual(exits, { release: 'queued', approval_reject: 'rejected', expire: 'expired' });
  for (const state of commandTable.states) {
    if (state !== 'pending_approval') {
      assert.equal(commandTable.transitions[state].release, undefined, `release from ${state}`);
      assert.equal(commandTable.transitions[state].approval_reject, undefined, `approval_reject from ${state}`);
    }
  }
});

test('a machine refuses an undeclared starting state', () => {
  assert.throws(() => new StateMachine(commandTable, { state: 'bogus' as never }), (e) => SdcError.is(e, 'PROTO_INVALID_ARGUMENT'));
});

test('machines kept without history share one empty history and record nothing', () => {
  const a = new StateMachine(sessionTable, { historyEntriesMax: 0 });
  const b = new StateMachine(sessionTable, { historyEntriesMax: 0 });
  // One array for all of them (a gateway holds a session machine per agent), frozen so none can write it.
  assert.equal(a.history, b.history);
  assert.ok(Object.isFrozen(a.history));
  const legal = sessionTable.events.find((event) => a.can(event));
  assert.ok(legal !== undefined);
  a.apply(legal, 1);
  assert.equal(a.history.length, 0);
  assert.notEqual(new StateMachine(sessionTable).history, new StateMachine(sessionTable).history);
});
