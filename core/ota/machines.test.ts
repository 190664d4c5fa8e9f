import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SdcError } from '../errors/index.js';
import { StateMachine, checkTable, isTerminal, nextState, type TransitionTable } from '../protocol/state-machine.js';
import { releaseStates, releaseTable } from './release-machine.js';
import {
  defaultExecutionTimeouts, executionActiveStates, executionInstalledVersion, executionOutcome, executionTable, executionTerminalStates,
  type ExecutionEvent, type ExecutionState,
} from './execution-machine.js';

for (const table of [releaseTable, executionTable] as TransitionTable<string, string>[]) {
  test(`${table.name}: the table is consistent`, () => {
    assert.deepEqual(checkTable(table), []);
  });

  test(`${table.name}: random event sequences stay in declared states; illegal events are typed refusals that change nothing`, () => {
    fc.assert(fc.property(fc.array(fc.constantFrom(...table.events), { maxLength: 60 }), (events) => {
      const machine = new StateMachine(table);
      for (const event of events) {
        const before = machine.state;
        try {
          machine.apply(event, 0);
        } catch (error) {
          assert.ok(SdcError.is(error, 'PROTO_ILLEGAL_TRANSITION'));
          assert.equal(nextState(table, before, event), undefined);
          assert.equal(machine.state, before);
        }
        assert.ok(table.states.includes(machine.state));
      }
    }), { numRuns: 300 });
  });

  test(`${table.name}: every state is reachable from the initial state`, () => {
    const seen = new Set([table.initial]);
    for (let grown = true; grown;) {
      grown = false;
      for (const state of [...seen]) for (const to of Object.values(table.transitions[state]!)) if (!seen.has(to as string)) { seen.add(to as string); grown = true; }
    }
    assert.deepEqual([...seen].sort(), [...table.states].sort());
  });
}

test('release: the happy path, and revoke from every state but revoked', () => {
  const machine = new StateMachine(releaseTable);
  for (const event of ['upload_start', 'upload_failed', 'upload_verified', 'sign', 'publish'] as const) machine.apply(event, 0);
  assert.equal(machine.state, 'published');
  for (const state of releaseStates) {
    assert.equal(nextState(releaseTable, state, 'revoke'), state === 'revoked' ? undefined : 'revoked', state);
  }
  // Nothing is published without being signed, nor signed without a verified upload.
  for (const state of releaseStates) {
    if (nextState(releaseTable, state, 'publish') !== undefined) assert.equal(state, 'signed');
    if (nextState(releaseTable, state, 'sign') !== undefined) assert.equal(state, 'verified');
  }
});

test('execution: the successful path with a reboot, and without one', () => {
  const withReboot = new StateMachine(executionTable);
  const path: ExecutionEvent[] = ['notify', 'accept', 'precheck_pass', 'download_complete', 'stage', 'commit', 'reboot', 'rebooted', 'health_check_pass'];
  for (const event of path) withReboot.apply(event, 0);
  assert.deepEqual(withReboot.history.map((r) => r.to), [
    'notified', 'prechecking', 'downloading', 'verifying', 'staged', 'committed', 'rebooting', 'health_checking', 'succeeded',
  ]);
  const withoutReboot = new StateMachine(executionTable, { state: 'committed' });
  withoutReboot.apply('health_check_start', 0);
  withoutReboot.apply('health_check_pass', 0);
  assert.equal(withoutReboot.state, 'succeeded');
});

test('execution: succeeded is entered only from health_checking, by the health check passing (never from a pre-reboot claim)', () => {
  for (const state of executionTable.states) {
    for (const [event, to] of Object.entries(executionTable.transitions[state])) {
      if (to === 'succeeded') assert.deepEqual([state, event], ['health_checking', 'health_check_pass']);
    }
  }
  // The health check's verdict (pass or fail) is taken only in health_checking, where the version report is awaited.
  for (const state of executionTable.states) {
    for (const event of ['health_check_pass', 'health_check_fail'] as const) {
      if (nextState(executionTable, state, event) !== undefined) assert.equal(state, 'health_checking', `${state} --${event}-->`);
    }
  }
});

test('execution: every non-terminal state times out, per step and per execution (hawkBit #693), and has a step limit', () => {
  for (const state of executionActiveStates) {
    assert.equal(nextState(executionTable, state, 'step_timeout'), 'timed_out', state);
    assert.equal(nextState(executionTable, state, 'execution_timeout'), 'timed_out', state);
    assert.ok(defaultExecutionTimeouts.stepMs[state] > 0, state);
  }
  assert.deepEqual([...executionActiveStates, ...executionTerminalStates].sort(), [...executionTable.states].sort());
});

const committedStates: readonly ExecutionState[] = ['committed', 'rebooting', 'health_checking'];

test('execution: cancel is legal before every step; before the commit it ends the execution, after it the device rolls back', () => {
  for (const state of executionActiveStates) {
    const to = nextState(executionTable, state, 'cancel');
    if (state === 'rolling_back') assert.equal(to, undefined, 'a rollback in progress is not canceled');
    else assert.equal(to, committedStates.includes(state) ? 'rolling_back' : 'canceled', state);
  }
});

test('execution: what each terminal state says about the installed version, and how it counts', () => {
  for (const state of executionTable.states) {
    assert.equal(executionInstalledVersion[state] === 'pending', !isTerminal(executionTable, state), state);
    assert.equal(executionOutcome[state] === 'pending', !isTerminal(executionTable, state), state);
  }
  assert.equal(executionOutcome.timed_out, 'failure', 'timed_out counts as a failure');
  assert.equal(executionOutcome.canceled, 'not_counted');
  assert.deepEqual(executionTerminalStates.filter((s) => executionInstalledVersion[s] === 'target'), ['succeeded']);
  // Once committed, "previous" is only reached by a reported rollback: never by a timeout or a plain failure.
  for (const state of [...committedStates, 'rolling_back'] as const) {
    for (const [event, to] of Object.entries(executionTable.transitions[state])) {
      if (executionInstalledVersion[to as ExecutionState] === 'previous') assert.ok(event === 'rollback_complete' || event === 'watchdog_rollback', `${state} --${event}--> ${to}`);
    }
  }
});
