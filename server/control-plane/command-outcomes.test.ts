import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { gatewayCommandStream, kvKeys, streamNames } from '../bus-contract/streams.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { deviceFrame, makeHarness, mysqlTarget, progressEntry, sqlJsTarget, type Harness, type SqlTarget } from './test-support.js';

const provider = createNodeEd25519Provider();

/**
 * What the command states say about execution (docs/protocol.md): `expired` only for a command
 * that never left the control plane, `timed_out` for one that may have run, a late signed result
 * refining a timeout or a dead letter (recorded and audited), and the device clock's offset.
 */
function suite(target: SqlTarget): void {
  describe(`command outcomes on ${target.name}`, () => {
    let h: Harness;
    const actor = { name: 'op', role: 'operator' as const };
    const seed = new Uint8Array(randomBytes(32));

    const enroll = async (deviceId: string, online: boolean) => {
      await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', ?, ?)",
        [deviceId, h.clock.nowMs(), Buffer.from(provider.publicKeyFromSeed(seed)).toString('base64url')]);
      if (online) await h.cp.context.kv.set(kvKeys.presence(deviceId), JSON.stringify({ gateway_id: 'gw1' }));
    };
    const create = async (deviceId: string, ttlMs = 10_000) => (await h.cp.commands.create({ actor, deviceId, opcode: 'EXEC_PING_KERNEL', args: {}, ttlMs })).command;
    const progress = async (command: { id: string; device_id: string; device_seq: number | null }, event: 'deliver' | 'ack' | 'start' | 'dead_letter') => {
      await h.bus.append(streamNames.events, progressEntry({ command, event, atMs: h.clock.nowMs(), seed }));
      await h.cp.eventsConsumer.drain();
    };
    const result = async (command: { id: string; device_id: string; device_seq: number | null }, status: 'succeeded' | 'failed' | 'rejected', error?: JsonObject) => {
      const body: JsonObject = { command_id: command.id, device_seq: command.device_seq, status, output: {}, finished_at: h.clock.nowMs(), ...(error ? { error } : {}) };
      const frame = deviceFrame({ deviceId: command.device_id, seed, type: 'COMMAND_RESULT', ts: h.clock.nowMs(), body });
      await h.bus.append(streamNames.events, encodeBusEntry('command_result', { command_id: command.id, device_id: command.device_id, gateway_id: 'gw1', at_ms: h.clock.nowMs(), frame }));
      await h.cp.eventsConsumer.drain();
      return frame;
    };
    const states = async (id: string) => (await h.cp.commands.get(id)).history.map((entry) => entry.state);
    const auditOf = async (id: string) => (await h.db.query<{ kind: string; payload_json: string }>(
      'SELECT kind, payload_json FROM audit_log WHERE subject = ? ORDER BY seq ASC', [`command:${id}`],
    )).map((row) => ({ kind: row.kind, payload: JSON.parse(row.payload_json) as { from?: string; to?: string; frame?: string } }));
    const appendedIds = async (): Promise<string[]> => {
      const group = `probe-${randomBytes(4).toString('hex')}`;
      await h.bus.ensureGroup(gatewayCommandStream('gw1'), group, '0');
      const entries = await h.bus.readGroup(gatewayCommandStream('gw1'), group, 'probe', { count: 1000 });
      return entries.map((entry) => (JSON.parse(entry.fields.data!) as { command: { id: string } }).command.id);
    };

    before(async () => {
      h = await makeHarness(target);
    });
    after(async () => {
      await h.close();
      await target.cleanup();
    });

    it('expires a command that never left the control plane, and times out one that did (it may have run)', async () => {
      await enroll('dev-offline', false);
      await enroll('dev-online', true);
      const neverSent = await create('dev-offline');
      const sent = await create('dev-online');
      assert.deepEqual(await appendedIds(), [sent.id]);
      h.clock.advance(10_000);
      assert.equal(await h.cp.commands.expireDue(), 2);
      assert.deepEqual(await states(neverSent.id), ['queued', 'expired']);
      assert.deepEqual(await states(sent.id), ['queued', 'timed_out'], 'appended to a gateway stream: a device may have it even before a deliver report');
      // Once expired, nothing sends it: the device coming online does not get it.
      await h.cp.context.kv.set(kvKeys.presence('dev-offline'), JSON.stringify({ gateway_id: 'gw1' }));
      assert.equal(await h.cp.commands.redeliver('dev-offline', 'gw1'), 0);
      assert.ok(!(await appendedIds()).includes(neverSent.id));
      assert.equal((await h.cp.commands.transition(neverSent.id, 'deliver', h.clock.nowMs())).applied, false);
    });

    it('a delivered command whose TTL passes is timed out, and its late result is recorded and audited as succeeded_late', async () => {
      const command = await create('dev-online');
      await progress(command, 'deliver');
      await progress(command, 'ack');
      await progress(command, 'start');
      h.clock.advance(11_000);
      assert.equal(await h.cp.commands.expireDue(), 1);
      assert.equal((await h.cp.commands.get(command.id)).state, 'timed_out');
      // Late progress changes nothing: only a result refines a timeout.
      assert.deepEqual(await h.cp.commands.transition(command.id, 'ack', h.clock.nowMs()), { applied: false, reason: 'terminal', state: 'timed_out' });
      h.clock.advance(9_000);
      const frame = await result(command, 'succeeded');
      const detail = await h.cp.commands.get(command.id);
      assert.equal(detail.state, 'succeeded_late');
      assert.deepEqual(detail.result_frame, JSON.parse(frame), 'the signed result is kept');
      assert.deepEqual(detail.history.map((e) => e.state), ['queued', 'sent', 'ack_received', 'executing', 'timed_out', 'succeeded_late']);
      const audited = (await auditOf(command.id)).filter((e) => e.kind === 'command.result');
      assert.deepEqual(audited.map((e) => [e.payload.from, e.payload.to, e.payload.frame]), [['timed_out', 'succeeded_late', frame]]);
      // Refined once: a later result changes nothing.
      await result(command, 'failed', { code: 'AGENT_EXECUTION_FAILED', message: 'x' });
      assert.equal((await h.cp.commands.get(command.id)).state, 'succeeded_late');
    });

    it("a timed-out command the agent refused to start after its deadline ends rejected (never ran), from the device's signed word", async () => {
      const command = await create('dev-online');
      await progress(command, 'deliver');
      await progress(command, 'ack');
      h.clock.advance(10_000);
      await h.cp.commands.expireDue();
      await result(command, 'rejected', { code: 'AGENT_COMMAND_EXPIRED', message: 'the deadline passed before the command could start' });
      assert.deepEqual(await states(command.id), ['queued', 'sent', 'ack_received', 'timed_out', 'rejected']);
      assert.deepEqual((await auditOf(command.id)).filter((e) => e.kind === 'command.result').map((e) => [e.payload.from, e.payload.to]), [['timed_out', 'rejected']]);
    });

    it('a dead-lettered command is refined by a late result too (failed_late)', async () => {
      const command = await create('dev-online', 60_000);
      await progress(command, 'deliver');
      await progress(command, 'dead_letter');
      assert.equal((await h.cp.commands.get(command.id)).state, 'dead_lettered');
      await result(command, 'failed', { code: 'KERNEL_BUSY', message: 'busy' });
      assert.deepEqual(await states(command.id), ['queued', 'sent', 'dead_lettered', 'failed_late']);
      assert.equal((await auditOf(command.id)).filter((e) => e.kind === 'command.result').length, 1);
    });

    it('the expiry sweep and a dispatch racing it cannot both win: an expired command is never appended', async () => {
      await enroll('dev-race', false);
      const command = await create('dev-race');
      h.clock.advance(10_000);
      assert.equal(await h.cp.commands.expireDue(), 1);
      assert.equal((await h.cp.commands.get(command.id)).state, 'expired');
      // A dispatch that read the command before the sweep (the device just came online) appends nothing.
      assert.equal(await h.cp.commands.dispatch(command.signed!, 'gw1'), false);
      assert.ok(!(await appendedIds()).includes(command.id));
    });

    it('a signed result contradicting a never-ran state is not applied, and raises a critical alert', async () => {
      await enroll('dev-odd', false);
      const command = await create('dev-odd');
      h.clock.advance(10_000);
      await h.cp.commands.expireDue();
      await result(command, 'succeeded');
      assert.equal((await h.cp.commands.get(command.id)).state, 'expired');
      const alerts = await h.cp.alerts.list({ deviceId: 'dev-odd' });
      assert.deepEqual(alerts.items.map((a) => [a.kind, a.severity]), [['command_state_contradicted', 'critical']]);
    });

    it("records the device clock's offset from presence and from a clock_skew alert, and shows it on the device", async () => {
      await enroll('dev-skew', false);
      assert.equal((await h.cp.devices.get('dev-skew')).clock_offset_ms, null);
      await h.bus.append(streamNames.events, encodeBusEntry('presence', {
        device_id: 'dev-skew', gateway_id: 'gw1', session_id: 's1', online: true, at_ms: h.clock.nowMs(), last_command_seq: 0, clock_offset_ms: 20_000,
      }));
      await h.cp.eventsConsumer.drain();
      assert.equal((await h.cp.devices.get('dev-skew')).clock_offset_ms, 20_000);
      await h.bus.append(streamNames.events, encodeBusEntry('presence', {
        device_id: 'dev-skew', gateway_id: 'gw1', session_id: 's1', online: false, at_ms: h.clock.nowMs(), reason: 'gone',
      }));
      await h.bus.append(streamNames.events, encodeBusEntry('alert', {
        device_id: 'dev-skew', gateway_id: 'gw1', at_ms: h.clock.nowMs(), severity: 'critical', kind: 'clock_skew', message: 'device clock is -400000 ms off', clock_offset_ms: -400_000,
      }));
      await h.cp.eventsConsumer.drain();
      assert.equal((await h.cp.devices.get('dev-skew')).clock_offset_ms, -400_000, 'a refused AUTH still reports the offset');
      const alerts = await h.cp.alerts.list({ deviceId: 'dev-skew' });
      assert.deepEqual(alerts.items.map((a) => [a.kind, a.severity]), [['clock_skew', 'critical']]);
    });
  });
}

suite(sqlJsTarget);
const mysqlUrl = process.env.MYSQL_URL;
if (mysqlUrl !== undefined) suite(mysqlTarget(mysqlUrl));
