import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nextState } from '../protocol/state-machine.js';
import { defaultExecutionTimeouts, executionActiveStates, executionTable, type ExecutionState } from './execution-machine.js';
import {
  decideDeviceStep, decideExecutionEvent, decideExecutionTimeout, decideVersionReport, executionDeadline,
  type ExecutionRecord, type VersionReport,
} from './execution-decisions.js';

const minuteMs = 60_000;

function record(state: ExecutionState, overrides: Partial<ExecutionRecord> = {}): ExecutionRecord {
  return {
    executionId: 'ex-1', deviceId: 'dev-1', state, createdAtMs: 0, stateEnteredAtMs: 0,
    healthNonce: state === 'health_checking' ? 'nonce-after-reboot' : null, targetReleaseCounter: 42, previousReleaseCounter: 41, ...overrides,
  };
}

function report(overrides: Partial<VersionReport> = {}): VersionReport {
  return { deviceId: 'dev-1', executionId: 'ex-1', nonce: 'nonce-after-reboot', releaseCounter: 42, healthy: true, signatureValid: true, ...overrides };
}

test('a progress message cannot claim the health check: only a version report can', () => {
  for (const event of ['health_check_pass', 'health_check_fail'] as const) {
    const decision = decideExecutionEvent(record('health_checking'), event, 5);
    assert.deepEqual(decision, { applied: false, reason: 'needs_version_report', state: 'health_checking' });
  }
});

test('entering health_checking asks for a fresh nonce; other moves do not', () => {
  assert.deepEqual(decideExecutionEvent(record('rebooting'), 'rebooted', 7), { applied: true, from: 'rebooting', to: 'health_checking', atMs: 7, issueHealthNonce: true });
  const toRebooting = decideExecutionEvent(record('committed'), 'reboot', 7);
  assert.ok(toRebooting.applied && !toRebooting.issueHealthNonce);
});

test('duplicates and late events change nothing and say why', () => {
  assert.deepEqual(decideExecutionEvent(record('succeeded'), 'cancel', 1), { applied: false, reason: 'terminal', state: 'succeeded' });
  assert.deepEqual(decideExecutionEvent(record('downloading'), 'commit', 1), { applied: false, reason: 'illegal', state: 'downloading' });
});

test('version report: the signed report with this health check\'s nonce decides; a pre-reboot claim, a replay or an unsigned report counts for nothing', () => {
  const pass = decideVersionReport(record('health_checking'), report(), 9);
  assert.ok(pass.accepted);
  assert.equal(pass.event, 'health_check_pass');
  assert.deepEqual(pass.decision, { applied: true, from: 'health_checking', to: 'succeeded', atMs: 9, issueHealthNonce: false });
  // hawkBit #3185: a success claimed before the reboot arrives while the execution is still committed or rebooting.
  for (const state of ['committed', 'rebooting', 'staged'] as const) {
    assert.deepEqual(refusalCode(decideVersionReport(record(state), report(), 9)), 'OTA_REPORT_UNEXPECTED');
  }
  // The same claim replayed after the reboot carries the old nonce (or none).
  assert.equal(refusalCode(decideVersionReport(record('health_checking'), report({ nonce: 'nonce-before-reboot' }), 9)), 'OTA_REPORT_STALE_NONCE');
  assert.equal(refusalCode(decideVersionReport(record('health_checking', { healthNonce: null }), report(), 9)), 'OTA_REPORT_STALE_NONCE');
  assert.equal(refusalCode(decideVersionReport(record('health_checking'), report({ signatureValid: false }), 9)), 'OTA_REPORT_SIGNATURE');
  assert.equal(refusalCode(decideVersionReport(record('health_checking'), report({ executionId: 'ex-2' }), 9)), 'OTA_REPORT_UNEXPECTED');
  assert.equal(refusalCode(decideVersionReport(record('health_checking'), report({ deviceId: 'dev-2' }), 9)), 'OTA_REPORT_UNEXPECTED');
});

test('version report: unhealthy or another release rolls back; the previous release means the watchdog already did', () => {
  const cases = [
    [report({ healthy: false }), 'health_check_fail', 'rolling_back'],
    [report({ releaseCounter: 7 }), 'health_check_fail', 'rolling_back'],
    [report({ releaseCounter: 41 }), 'watchdog_rollback', 'rolled_back'],
  ] as const;
  for (const [input, event, to] of cases) {
    const decision = decideVersionReport(record('health_checking'), input, 3);
    assert.ok(decision.accepted);
    assert.equal(decision.event, event);
    assert.ok(decision.decision.applied);
    assert.equal(decision.decision.to, to);
  }
});

function refusalCode(decision: ReturnType<typeof decideVersionReport>): string | undefined {
  return decision.accepted ? undefined : decision.code;
}

test('timeouts: the step limit counts from entering the state, the execution limit from creation; the earlier one fires', () => {
  const downloading = record('downloading', { createdAtMs: 0, stateEnteredAtMs: 10 * minuteMs });
  assert.deepEqual(executionDeadline(downloading, defaultExecutionTimeouts), { atMs: 70 * minuteMs, event: 'step_timeout' });
  assert.equal(decideExecutionTimeout(downloading, 70 * minuteMs - 1, defaultExecutionTimeouts), undefined);
  const fired = decideExecutionTimeout(downloading, 70 * minuteMs, defaultExecutionTimeouts);
  assert.deepEqual(fired, { applied: true, from: 'downloading', to: 'timed_out', atMs: 70 * minuteMs, issueHealthNonce: false });
  const late = record('health_checking', { createdAtMs: 0, stateEnteredAtMs: 175 * minuteMs });
  assert.deepEqual(executionDeadline(late, defaultExecutionTimeouts), { atMs: 180 * minuteMs, event: 'execution_timeout' });
  assert.equal(executionDeadline(record('succeeded'), defaultExecutionTimeouts), undefined);
});

test('property: from any active state, at any time, the deadline is finite and the timeout then ends the execution', () => {
  fc.assert(fc.property(
    fc.constantFrom(...executionActiveStates), fc.nat(10 ** 9), fc.nat(10 ** 9),
    (state, createdAtMs, sinceCreatedMs) => {
      const rec = record(state, { createdAtMs, stateEnteredAtMs: createdAtMs + sinceCreatedMs });
      const deadline = executionDeadline(rec, defaultExecutionTimeouts)!;
      assert.ok(deadline.atMs <= createdAtMs + defaultExecutionTimeouts.executionMs);
      const decision = decideExecutionTimeout(rec, deadline.atMs, defaultExecutionTimeouts);
      assert.ok(decision?.applied);
      assert.equal(decision.to, 'timed_out');
    },
  ), { numRuns: 300 });
});

test('property: the device checks cancellation before every step: a requested cancel wins wherever the table allows one', () => {
  fc.assert(fc.property(fc.constantFrom(...executionTable.states), fc.boolean(), fc.boolean(), (state, cancelRequested, rebootRequired) => {
    const decision = decideDeviceStep({ state, cancelRequested, rebootRequired });
    const cancelLegal = nextState(executionTable, state, 'cancel') !== undefined;
    if (executionTable.terminal.includes(state)) assert.deepEqual(decision, { type: 'done' });
    else if (cancelRequested && cancelLegal) assert.deepEqual(decision, { type: 'cancel' });
    else assert.equal(decision.type, 'step');
  }), { numRuns: 200 });
  assert.deepEqual(decideDeviceStep({ state: 'committed', cancelRequested: false, rebootRequired: true }), { type: 'step', step: 'reboot' });
  assert.deepEqual(decideDeviceStep({ state: 'committed', cancelRequested: false, rebootRequired: false }), { type: 'step', step: 'health_check' });
  assert.deepEqual(decideDeviceStep({ state: 'staged', cancelRequested: true, rebootRequired: true }), { type: 'cancel' }, 'not only before commit: mender #1815');
  assert.deepEqual(decideDeviceStep({ state: 'rolling_back', cancelRequested: true, rebootRequired: true }), { type: 'step', step: 'rollback' });
});

test('property: no sequence of progress messages, cancels and timeouts reaches succeeded; only a version report does', () => {
  fc.assert(fc.property(fc.array(fc.constantFrom(...executionTable.events), { maxLength: 40 }), (events) => {
    let current = record('queued');
    for (const [i, event] of events.entries()) {
      const decision = decideExecutionEvent(current, event, i);
      if (decision.applied) current = { ...current, state: decision.to, healthNonce: decision.issueHealthNonce ? `n-${i}` : null };
      assert.notEqual(current.state, 'succeeded');
    }
  }), { numRuns: 500 });
  // The same walk to health_checking, then the report with the nonce drawn there: succeeded.
  let current = record('queued');
  for (const event of ['notify', 'accept', 'precheck_pass', 'download_complete', 'stage', 'commit', 'reboot', 'rebooted'] as const) {
    const decision = decideExecutionEvent(current, event, 1);
    assert.ok(decision.applied, event);
    current = { ...current, state: decision.to, healthNonce: decision.issueHealthNonce ? 'drawn-on-entry' : null };
  }
  const verdict = decideVersionReport(current, report({ nonce: 'drawn-on-entry' }), 2);
  assert.ok(verdict.accepted && verdict.decision.applied && verdict.decision.to === 'succeeded');
});
