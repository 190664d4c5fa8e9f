// Hardening 10.4 (issue 12): the device-signed COMMAND_ACK frames are in the audit chain, recorded
// in the same transaction as the state change they cause (the outbox, docs/audit.md), and an ACK
// frame that is not the device's, or names another command, seq or stage, changes nothing.
// Runs on sql.js and, with MYSQL_URL, on MySQL.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { streamNames } from '../bus-contract/streams.js';
import { SdcError } from '../../core/errors/index.js';
import type { AuditEntry } from '../../core/protocol/audit-chain.js';
import { deadFields, deadLetterStream } from '../stores/bus/bus-port.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import type { SqlDatabase } from '../stores/sql/sql-port.js';
import { deviceFrame, makeDeviceKey, makeHarness, mysqlTarget, sqlJsTarget, type Harness, type SqlTarget } from './test-support.js';
import { withOneByOneBatches } from '../stores/sql/sql-batch.js';

/** The database with every chain append failing while `failing` is set: what committed is then only in the outbox. */
function chainAppendsFailing(db: SqlDatabase): { db: SqlDatabase; set(failing: boolean): void } {
  let failing = false;
  const check = (sql: string): void => {
    if (failing && sql.startsWith('INSERT INTO audit_log')) throw new SdcError('STORE_UNAVAILABLE', 'injected: chain append failed after the commit');
  };
  const wrapped: SqlDatabase = {
    dialect: db.dialect,
    query: async (sql, params) => { check(sql); return db.query(sql, params); },
    execute: async (sql, params) => { check(sql); return db.execute(sql, params); },
    transaction: (fn) => db.transaction((tx) => fn(withOneByOneBatches({
      dialect: tx.dialect,
      query: async (sql, params) => { check(sql); return tx.query(sql, params); },
      execute: async (sql, params) => { check(sql); return tx.execute(sql, params); },
    }))),
    close: () => db.close(),
  };
  return { db: wrapped, set: (value) => { failing = value; } };
}

function suite(target: SqlTarget): void {
  describe(`COMMAND_ACK frames in the audit chain on ${target.name}`, () => {
    let h: Harness;
    let faults: ReturnType<typeof chainAppendsFailing>;
    const device = 'ack-dev-1';
    let deviceKey: { seed: Uint8Array; csrPem: string };
    const chain = async (): Promise<AuditEntry[]> => h.cp.auditStore.scan(1, 10_000);
    const entriesOf = (entries: readonly AuditEntry[], commandId: string): AuditEntry[] => entries.filter((e) => e.subject === `command:${commandId}`);

    const newCommand = async (): Promise<{ id: string; deviceSeq: number }> => {
      const { command } = await h.cp.commands.create({ actor: { name: 'op', role: 'operator' }, deviceId: device, opcode: 'EXEC_PING_KERNEL', args: {} });
      return { id: command.id, deviceSeq: command.device_seq! };
    };
    const ackFrame = (command: { id: string; deviceSeq: number }, stage: 'received' | 'executing', ts: number, seed = deviceKey.seed) =>
      deviceFrame({ deviceId: device, seed, type: 'COMMAND_ACK', ts, body: { command_id: command.id, device_seq: command.deviceSeq, stage } });
    const progress = (commandId: string, event: 'deliver' | 'ack' | 'start', at: number, frame?: string) =>
      encodeBusEntry('command_progress', { command_id: commandId, device_id: device, gateway_id: 'gw1', at_ms: at, event, attempt: 1, ...(frame === undefined ? {} : { frame }) });

    before(async () => {
      const faultyTarget: SqlTarget = { name: target.name, open: async (dir) => (faults = chainAppendsFailing(await target.open(dir))).db, cleanup: () => target.cleanup() };
      h = await makeHarness(faultyTarget);
      deviceKey = await makeDeviceKey(device);
      const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId: device });
      await h.cp.devices.enroll({ deviceId: device, token, csrPem: deviceKey.csrPem });
    });
    after(async () => {
      await h.close();
      await target.cleanup();
    });

    it('audits each signed ACK (received, executing) as command.ack with the frame verbatim, actor the device, committed with its state change', async () => {
      const command = await newCommand();
      const t0 = h.clock.nowMs();
      const received = ackFrame(command, 'received', t0 + 2);
      const executing = ackFrame(command, 'executing', t0 + 3);
      // The chain append fails after each commit: the entry must already be in the outbox, committed with the state.
      faults.set(true);
      for (const entry of [progress(command.id, 'deliver', t0 + 1), progress(command.id, 'ack', t0 + 2, received), progress(command.id, 'start', t0 + 3, executing)]) {
        await h.bus.append(streamNames.events, entry);
      }
      await h.cp.eventsConsumer.drain();
      assert.equal((await h.cp.commands.get(command.id)).state, 'executing');
      assert.ok(await h.cp.auditStore.recordedCount() >= 3, 'the ACK entries wait in the outbox, committed with their state changes');
      faults.set(false);
      await h.cp.context.settleAudit();
      const entries = entriesOf(await chain(), command.id);
      assert.deepEqual(entries.map((e) => e.kind), ['command.created', 'command.state', 'command.ack', 'command.ack']);
      const [, , ack, start] = entries;
      assert.deepEqual([ack!.actor, ack!.payload.from, ack!.payload.to, ack!.payload.event, ack!.payload.frame], [`device:${device}`, 'sent', 'ack_received', 'ack', received]);
      assert.deepEqual([start!.actor, start!.payload.from, start!.payload.to, start!.payload.event, start!.payload.frame], [`device:${device}`, 'ack_received', 'executing', 'start', executing]);
      assert.equal(ack!.payload.gateway_id, 'gw1');
      // One audit entry per command_events row, as for every other change.
      const changes = await h.db.query<{ state: string }>('SELECT state FROM command_events WHERE command_id = ?', [command.id]);
      assert.equal(changes.length, entries.length);
      assert.equal((await h.cp.context.audit.verify()).ok, true);
    });

    it('a forged ACK frame, or one for another command or stage, is dead-lettered and changes nothing', async () => {
      const command = await newCommand();
      const other = await newCommand();
      const t0 = h.clock.nowMs();
      const forger = await makeDeviceKey(device);
      const deadBefore = await h.bus.length(deadLetterStream(streamNames.events));
      await h.bus.append(streamNames.events, progress(command.id, 'deliver', t0 + 1));
      await h.bus.append(streamNames.events, progress(command.id, 'ack', t0 + 2, ackFrame(command, 'received', t0 + 2, forger.seed)));
      await h.bus.append(streamNames.events, progress(command.id, 'ack', t0 + 3, ackFrame(other, 'received', t0 + 3)));
      await h.bus.append(streamNames.events, progress(command.id, 'ack', t0 + 4, ackFrame(command, 'executing', t0 + 4)));
      await h.cp.eventsConsumer.drain();
      assert.equal(await h.bus.length(deadLetterStream(streamNames.events)) - deadBefore, 3);
      assert.equal((await h.cp.commands.get(command.id)).state, 'sent');
      await h.cp.context.settleAudit();
      assert.deepEqual(entriesOf(await chain(), command.id).map((e) => e.kind), ['command.created', 'command.state']);
    });

    it('an ack or start without the device frame (a gateway\'s word only) is dead-lettered COMMAND_ACK_UNSIGNED and changes nothing', async () => {
      const command = await newCommand();
      const t0 = h.clock.nowMs();
      const deadBefore = await h.bus.range(deadLetterStream(streamNames.events), { count: 10_000 });
      await h.bus.append(streamNames.events, progress(command.id, 'deliver', t0 + 1));
      // Written by hand: encodeBusEntry refuses these too. Without a frame both bus forms (frame in its own field, frame inside data) are this text.
      const frameless = (event: 'ack' | 'start', at: number) => ({
        kind: 'command_progress', data: canonicalize({ command_id: command.id, device_id: device, gateway_id: 'gw1', at_ms: at, event, attempt: 1 }),
      });
      await h.bus.append(streamNames.events, frameless('ack', t0 + 2));
      await h.bus.append(streamNames.events, frameless('start', t0 + 3));
      await h.cp.eventsConsumer.drain();
      assert.equal((await h.cp.commands.get(command.id)).state, 'sent');
      const dead = (await h.bus.range(deadLetterStream(streamNames.events), { count: 10_000 })).slice(deadBefore.length);
      assert.deepEqual(dead.map((e) => e.fields[deadFields.reason]?.split(':')[0]), ['COMMAND_ACK_UNSIGNED', 'COMMAND_ACK_UNSIGNED']);
      assert.deepEqual(await h.bus.pending(streamNames.events, 'control-plane'), []);
      await h.cp.context.settleAudit();
      assert.deepEqual(entriesOf(await chain(), command.id).map((e) => e.kind), ['command.created', 'command.state']);
    });

    it('the handler itself refuses a frameless ack or start COMMAND_ACK_UNSIGNED (given past the decoder) and changes nothing; a frameless deliver is still recorded', async () => {
      const command = await newCommand();
      const t0 = h.clock.nowMs();
      const frameless = (event: 'deliver' | 'ack' | 'start', at: number) => ({
        kind: 'command_progress' as const, data: { command_id: command.id, device_id: device, gateway_id: 'gw1', at_ms: at, event, attempt: 1 },
      });
      await h.cp.events.handleDecodedEvent(frameless('deliver', t0 + 1));
      assert.equal((await h.cp.commands.get(command.id)).state, 'sent');
      for (const [event, at] of [['ack', t0 + 2], ['start', t0 + 3]] as const) {
        await assert.rejects(h.cp.events.handleDecodedEvent(frameless(event, at)), (e) => SdcError.is(e, 'COMMAND_ACK_UNSIGNED'));
      }
      assert.equal((await h.cp.commands.get(command.id)).state, 'sent');
      await h.cp.context.settleAudit();
      assert.deepEqual(entriesOf(await chain(), command.id).map((e) => e.kind), ['command.created', 'command.state']);
    });
  });
}

suite(sqlJsTarget);
const mysqlUrl = process.env['MYSQL_URL'];
if (mysqlUrl !== undefined && mysqlUrl !== '') suite(mysqlTarget(mysqlUrl));
else describe('COMMAND_ACK frames in the audit chain on MySQL', () => it.skip('MYSQL_URL is not set; the same suite ran on sql.js above', () => {}));
