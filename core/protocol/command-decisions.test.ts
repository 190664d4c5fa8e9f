import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decideCreate, decideCreateAdmission, decideRedispatch, decideTransition, expiryEvent,
  type CommandRecord, type TransactionEffect, type TransitionInput,
} from './command-decisions.js';
import { commandEvents, commandStates, commandTable, type CommandState } from './command-machine.js';
import type { SignedCommand } from './messages/command.js';
import type { PolicyDecision } from './policy.js';
import { isFinal, isTerminal, nextState } from './state-machine.js';

const record = (state: CommandState, firstDispatchedAtMs: number | null): CommandRecord => ({ id: 'c_1', deviceId: 'dev-1', state, firstDispatchedAtMs });
const input = (event: TransitionInput['event'], extra: Partial<TransitionInput> = {}): TransitionInput => ({ event, atMs: 1_000, actor: 'gateway:gw1', ...extra });
const effectOf = <T extends TransactionEffect['type']>(effects: readonly TransactionEffect[], type: T) =>
  effects.filter((e): e is Extract<TransactionEffect, { type: T }> => e.type === type);

/** What the table (and the expire rule) say must happen: the oracle the decisions are checked against. */
function expected(state: CommandState, event: TransitionInput['event'], dispatched: boolean): { to: CommandState } | { reason: string; unexpected: boolean } {
  if (isFinal(commandTable, state)) return { reason: 'terminal', unexpected: false };
  if (event === 'expire' && dispatched) return { reason: 'illegal', unexpected: false };
  const to = nextState(commandTable, state, event);
  if (to !== undefined) return { to };
  return isTerminal(commandTable, state) ? { reason: 'terminal', unexpected: false } : { reason: 'illegal', unexpected: true };
}

test('every event in every state, dispatched or not: applied exactly as the table says, refused otherwise', () => {
  for (const state of commandStates) {
    for (const event of commandEvents) {
      for (const firstDispatchedAtMs of [null, 500]) {
        const decision = decideTransition(record(state, firstDispatchedAtMs), input(event));
        const want = expected(state, event, firstDispatchedAtMs !== null);
        const where = `${state} --${event}--> (dispatched ${firstDispatchedAtMs !== null})`;
        if ('to' in want) {
          assert.ok(decision.applied, where);
          assert.deepEqual([decision.from, decision.to], [state, want.to], where);
        } else {
          assert.ok(!decision.applied, where);
          assert.deepEqual([decision.reason, decision.state, decision.unexpected], [want.reason, state, want.unexpected], where);
        }
      }
    }
  }
});

test('an event for no stored command is refused as unknown_command', () => {
  for (const event of commandEvents) assert.deepEqual(decideTransition(undefined, input(event)), { applied: false, reason: 'unknown_command', unexpected: false });
});

test('expire only for a command that never left the control plane; the sweep times out the rest', () => {
  assert.equal(expiryEvent({ firstDispatchedAtMs: null }), 'expire');
  assert.equal(expiryEvent({ firstDispatchedAtMs: 0 }), 'time_out');
  const decision = decideTransition(record('queued', null), input('expire'));
  assert.ok(decision.applied);
  assert.equal(effectOf(decision.effects.transaction, 'update_state')[0]?.onlyIfNeverDispatched, true, 'the compare-and-set re-checks it');
});

const arbState = fc.constantFrom(...commandStates);
const arbEvent = fc.constantFrom(...commandEvents);
const arbDetail = fc.option(fc.dictionary(fc.constantFrom('gateway_id', 'attempt', 'status', 'event'), fc.oneof(fc.string({ maxLength: 8 }), fc.integer())), { nil: undefined });
const arbResult = fc.option(fc.record({ frame: fc.string({ maxLength: 16 }), gatewayId: fc.constantFrom('gw1', 'gw2') }), { nil: undefined });

test('an applied decision is one compare-and-set on the state read, one history entry, one audit record in the transaction, and the live event after it', () => {
  fc.assert(fc.property(arbState, arbEvent, fc.option(fc.nat(), { nil: null }), fc.nat(), arbDetail, arbResult, (state, event, dispatched, atMs, detail, result) => {
    const given = input(event, { atMs, ...(detail === undefined ? {} : { detail }), ...(result === undefined ? {} : { result }) });
    const decision = decideTransition(record(state, dispatched), given);
    if (!decision.applied) {
      assert.ok(!('to' in expected(state, event, dispatched !== null)));
      return;
    }
    const { transaction, afterCommit } = decision.effects;
    assert.deepEqual(transaction.map((e) => e.type), ['update_state', 'append_history', 'record_audit'], 'the change first, so a lost compare-and-set writes nothing');
    const [update] = effectOf(transaction, 'update_state');
    assert.deepEqual([update?.from, update?.to, update?.atMs, update?.commandId], [state, decision.to, atMs, 'c_1']);
    assert.equal(update?.attemptsIncrement, event === 'deliver' ? 1 : 0, 'attempts count deliveries only');
    assert.equal(update?.resultFrame, result?.frame ?? null);
    assert.equal(update?.onlyIfNeverDispatched, event === 'expire');
    const [history] = effectOf(transaction, 'append_history');
    assert.deepEqual([history?.state, history?.atMs, history?.detail['event']], [decision.to, atMs, detail?.['event'] ?? event]);
    const [audit] = effectOf(transaction, 'record_audit');
    assert.equal(audit?.entry.subject, 'command:c_1');
    assert.equal(audit?.entry.actor, 'gateway:gw1');
    assert.equal(audit?.entry.kind, result === undefined ? 'command.state' : 'command.result');
    assert.deepEqual([audit?.entry.payload['from'], audit?.entry.payload['to']], [state, decision.to]);
    if (result !== undefined) assert.equal(audit?.entry.payload['frame'], result.frame, 'the signed frame is audited verbatim');
    assert.deepEqual(afterCommit, [{ type: 'publish_live', event: { type: 'command', command_id: 'c_1', device_id: 'dev-1', state: decision.to, at_ms: atMs } }]);
  }), { numRuns: 2_000 });
});

test('decisions are pure: the same record and event give the same decision, and the inputs are not changed', () => {
  fc.assert(fc.property(arbState, arbEvent, fc.option(fc.nat(), { nil: null }), arbDetail, (state, event, dispatched, detail) => {
    const given = input(event, detail === undefined ? {} : { detail });
    const stored = record(state, dispatched);
    const before = JSON.stringify([stored, given]);
    assert.deepEqual(decideTransition(stored, given), decideTransition(stored, given));
    assert.equal(JSON.stringify([stored, given]), before);
  }), { numRuns: 500 });
});

test('a sequence of decisions applied to a record never leaves the table, and a final state stays final', () => {
  fc.assert(fc.property(fc.array(arbEvent, { maxLength: 40 }), fc.boolean(), (events, dispatched) => {
    let current = record('queued', dispatched ? 1 : null);
    for (const event of events) {
      const decision = decideTransition(current, input(event));
      const wasFinal = isFinal(commandTable, current.state);
      if (decision.applied) current = { ...current, state: decision.to };
      assert.ok(commandStates.includes(current.state));
      if (wasFinal) assert.ok(!decision.applied, `${event} changed the final state ${current.state}`);
    }
  }), { numRuns: 1_000 });
});

const allow: PolicyDecision = { decision: 'allow', reason: 'rule ok', ruleId: 'r1' };
const deny: PolicyDecision = { decision: 'deny', reason: 'not in the window' };
const admission = (deviceStatus: string | undefined, policy: PolicyDecision) => decideCreateAdmission({
  deviceId: 'dev-1', deviceStatus, opcode: 'EXEC_PING_KERNEL', args: {}, auditActor: 'user:op', policy: () => policy,
});

test('create admission: only an enrolled device, then the policy; a denial carries its audit record', () => {
  assert.deepEqual(admission('enrolled', allow), { admitted: true, policyRecord: { decision: 'allow', reason: 'rule ok', rule_id: 'r1' } });
  for (const [status, code] of [[undefined, 'API_DEVICE_NOT_FOUND'], ['revoked', 'API_DEVICE_REVOKED'], ['pending', 'API_DEVICE_NOT_ENROLLED']] as const) {
    const refused = admission(status, allow);
    assert.ok(!refused.admitted);
    assert.equal(refused.refusal.code, code);
  }
  const denied = admission('enrolled', deny);
  assert.ok(!denied.admitted && denied.refusal.code === 'COMMAND_POLICY_DENIED');
  assert.equal(denied.refusal.reason, 'not in the window');
  assert.deepEqual(denied.refusal.audit, {
    kind: 'command.denied', actor: 'user:op', subject: 'device:dev-1',
    payload: { opcode: 'EXEC_PING_KERNEL', args: {}, policy: { decision: 'deny', reason: 'not in the window' } },
  });
});

test('create admission asks the policy only for a device that may take commands', () => {
  let asked = 0;
  for (const status of [undefined, 'revoked', 'pending']) {
    decideCreateAdmission({ deviceId: 'd', deviceStatus: status, opcode: 'EXEC_PING_KERNEL', args: {}, auditActor: 'user:op', policy: () => { asked += 1; return allow; } });
  }
  assert.equal(asked, 0);
});

test('create: the row, its queued history entry and command.created in one transaction; live event and dispatch after the commit', () => {
  const command = { id: 'c_9', device_id: 'dev-1', opcode: 'EXEC_PING_KERNEL', args: {}, issued_at: 10, expires_at: 20, device_seq: 3, issuer: 'cp', sig: { kid: 'k', alg: 'Ed25519', value: 'x' } } as unknown as SignedCommand;
  const effects = decideCreate({ row: { command, createdBy: 'op', idempotencyKey: null, argsJson: '{}' }, auditActor: 'user:op', policyRecord: { decision: 'allow', reason: 'ok' } });
  assert.deepEqual(effects.transaction.map((e) => e.type), ['insert_command', 'append_history', 'record_audit']);
  assert.deepEqual(effectOf(effects.transaction, 'append_history')[0], { type: 'append_history', commandId: 'c_9', state: 'queued', atMs: 10, detail: { event: 'create', by: 'op' } });
  const [audit] = effectOf(effects.transaction, 'record_audit');
  assert.deepEqual([audit?.entry.kind, audit?.entry.actor, audit?.entry.subject], ['command.created', 'user:op', 'command:c_9']);
  assert.deepEqual(effects.afterCommit, [
    { type: 'publish_live', event: { type: 'command', command_id: 'c_9', device_id: 'dev-1', state: 'queued', at_ms: 10 } },
    { type: 'dispatch_waiting', deviceId: 'dev-1' },
  ]);
});

test('redispatch: deliver to the presence gateway, or only stamp the time when the device has none', () => {
  assert.deepEqual(decideRedispatch('c_1', 'gw1', 5), { type: 'deliver', gatewayId: 'gw1' });
  assert.deepEqual(decideRedispatch('c_1', undefined, 5), { type: 'stamp_dispatched', commandId: 'c_1', atMs: 5 });
});
