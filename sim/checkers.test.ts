import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendAuditEntry, type AuditEntry } from '../core/protocol/audit-chain.js';
import {
  ExecutionChecker, SessionSeqChecker, checkAuditChain, checkCommandHistories, checkNoneLost, checkNotExecuted, checkPresence, type CommandEventRow,
} from './checkers.js';

// Each checker is shown a clean history (no violation) and the same history with one planted fault.
const row = (command_id: string, state: string, at: number, event: string): CommandEventRow => ({ command_id, state, at, detail_json: JSON.stringify({ event }) });

describe('sim checkers catch planted violations', () => {
  it('none lost: a non-terminal or missing accepted command', () => {
    const rows = [{ id: 'c1', state: 'succeeded' }, { id: 'c2', state: 'expired' }];
    assert.deepEqual(checkNoneLost(rows, new Set(['c1', 'c2'])), []);
    assert.match(checkNoneLost([...rows, { id: 'c3', state: 'sent' }], new Set(['c1']))[0]!.message, /c3 is still sent/);
    assert.match(checkNoneLost(rows, new Set(['c1', 'c9']))[0]!.message, /c9 is missing/);
  });

  it('at most once: a command reaching the kernel twice, or a kernel call outside any command', () => {
    const checker = new ExecutionChecker();
    checker.executing('d1', 'c1');
    assert.equal(checker.kernelCall('d1'), undefined);
    assert.match(checker.kernelCall('d1')!.message, /outside any command/);
    checker.executing('d1', 'c1');
    assert.match(checker.kernelCall('d1')!.message, /c1 took effect 2 times/);
    checker.executing('d2', 'c1');
    assert.equal(checker.kernelCall('d2'), undefined, 'per device');
  });

  it('not executed: a command recorded expired or rejected that its device started or ran', () => {
    const checker = new ExecutionChecker();
    checker.executing('d1', 'ran');
    assert.equal(checker.kernelCall('d1'), undefined);
    checker.executing('d1', 'started');
    const clean = [
      { id: 'ran', device_id: 'd1', state: 'succeeded_late' }, { id: 'started', device_id: 'd1', state: 'timed_out' },
      { id: 'never', device_id: 'd1', state: 'expired' }, { id: 'refused', device_id: 'd1', state: 'rejected' },
    ];
    assert.deepEqual(checkNotExecuted(clean, checker), []);
    const planted = checkNotExecuted([{ id: 'ran', device_id: 'd1', state: 'expired' }, { id: 'started', device_id: 'd1', state: 'rejected' }], checker);
    assert.equal(planted.length, 2);
    assert.match(planted[0]!.message, /ran is expired.*1 kernel calls/);
    assert.match(planted[1]!.message, /started is rejected.*0 kernel calls/);
    assert.deepEqual(checkNotExecuted([{ id: 'ran', device_id: 'd2', state: 'expired' }], checker), [], 'per device');
  });

  it('legal transitions: an edge not in the table, time going back, a wrong start, a final state that disagrees', () => {
    const good = [row('c1', 'queued', 1, 'create'), row('c1', 'sent', 2, 'deliver'), row('c1', 'ack_received', 3, 'ack'), row('c1', 'succeeded', 4, 'succeed')];
    assert.deepEqual(checkCommandHistories(good, new Map([['c1', 'succeeded']])), []);
    const refined = [row('c2', 'queued', 1, 'create'), row('c2', 'sent', 2, 'deliver'), row('c2', 'timed_out', 3, 'time_out'), row('c2', 'succeeded_late', 4, 'succeed')];
    assert.deepEqual(checkCommandHistories(refined, new Map([['c2', 'succeeded_late']])), [], 'a late result refines a timeout');
    assert.match(checkCommandHistories([refined[0]!, refined[1]!, row('c2', 'expired', 3, 'expire')], new Map([['c2', 'expired']]))[0]!.message, /sent --expire--> expired is not in the command table/);
    assert.match(checkCommandHistories([good[0]!, row('c1', 'succeeded', 2, 'ack')], new Map([['c1', 'succeeded']]))[0]!.message, /not in the command table/);
    assert.match(checkCommandHistories([good[0]!, row('c1', 'sent', 0, 'deliver')], new Map([['c1', 'sent']]))[0]!.message, /before the previous change/);
    assert.match(checkCommandHistories([row('c1', 'sent', 1, 'deliver')], new Map([['c1', 'sent']]))[0]!.message, /starts with sent/);
    assert.match(checkCommandHistories(good, new Map([['c1', 'failed']]))[0]!.message, /history ends at succeeded/);
  });

  it('audit chain: an edited entry', async () => {
    const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash('sha256').update(bytes).digest());
    const entries: AuditEntry[] = [];
    for (let i = 0; i < 3; i += 1) entries.push(appendAuditEntry(entries.at(-1), { ts: 1000 + i, kind: 'k', actor: 'system', subject: `s${i}`, payload: { i } }, sha256));
    assert.deepEqual(await checkAuditChain(entries), []);
    const edited = entries.map((e, i) => (i === 1 ? { ...e, subject: 'forged' } : e));
    assert.match((await checkAuditChain(edited))[0]!.message, /broken at seq 2/);
  });

  it('presence: shown online while disconnected, or offline while connected', () => {
    assert.deepEqual(checkPresence([{ deviceId: 'd1', connected: true, online: true }, { deviceId: 'd2', connected: false, online: false }]), []);
    assert.equal(checkPresence([{ deviceId: 'd1', connected: false, online: true }, { deviceId: 'd2', connected: true, online: false }]).length, 2);
  });

  it('session seq: a repeated or decreasing seq within a session, per direction', () => {
    const checker = new SessionSeqChecker();
    assert.equal(checker.observe('1:to_gateway', 's1', 1), undefined);
    assert.equal(checker.observe('1:to_agent', 's1', 1), undefined, 'directions are separate');
    assert.equal(checker.observe('1:to_gateway', 's1', 2), undefined);
    assert.match(checker.observe('1:to_gateway', 's1', 2)!.message, /seq 2 after 2/);
    checker.forget('1:to_gateway');
    assert.equal(checker.observe('1:to_gateway', 's1', 1), undefined, 'forgotten when the link closes');
  });
});
