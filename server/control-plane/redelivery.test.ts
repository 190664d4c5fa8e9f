import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBusEntry, encodeBusEntry } from '../bus-contract/entries.js';
import { gatewayCommandStream, kvKeys, streamNames } from '../bus-contract/streams.js';
import { SdcError } from '../../core/errors/index.js';
import type { StreamBus } from '../stores/bus/bus-port.js';
import { redispatchIntervalMsDefault } from './commands.js';
import { makeHarness, mysqlTarget, sqlJsTarget, type Harness, type SqlTarget } from './test-support.js';

/** Passes everything through, except appends to gateway command streams while `down` is set. */
function gatewayAppendsFailWhile(down: () => boolean): (bus: StreamBus) => StreamBus {
  return (bus) => new Proxy(bus, {
    get(target, name, receiver) {
      if (name === 'append') {
        return async (stream: string, fields: Record<string, string>, opts?: { maxLen?: number }) => {
          if (down() && stream.startsWith('sdc:gw:')) throw new SdcError('STORE_UNAVAILABLE', 'the stream bus is unavailable (test)');
          return target.append(stream, fields, opts);
        };
      }
      const value: unknown = Reflect.get(target, name, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

function suite(target: SqlTarget): void {
  describe(`redelivery sweep on ${target.name}`, () => {
    let h: Harness;
    let busDown = false;
    const actor = { name: 'op', role: 'operator' as const };
    const stream = gatewayCommandStream('gw1');
    const deliveredIds = async (): Promise<string[]> => {
      const group = `probe-${Math.random().toString(16).slice(2)}`;
      await h.bus.ensureGroup(stream, group, '0');
      const entries = await h.bus.readGroup(stream, group, 'probe', { count: 1000 });
      return entries.map((entry) => {
        const decoded = decodeBusEntry(entry.fields);
        assert.equal(decoded.kind, 'deliver');
        return (decoded.data as { command: { id: string } }).command.id;
      });
    };
    const enroll = async (deviceId: string, online: boolean) => {
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [deviceId, h.clock.nowMs()]);
      if (online) await h.cp.context.kv.set(kvKeys.presence(deviceId), JSON.stringify({ gateway_id: 'gw1' }));
    };
    const create = async (deviceId: string) => (await h.cp.commands.create({ actor, deviceId, opcode: 'EXEC_PING_KERNEL', args: {} })).command;

    before(async () => {
      h = await makeHarness(target, { wrapBus: gatewayAppendsFailWhile(() => busDown) });
    });
    after(async () => {
      await h.close();
      await target.cleanup();
    });

    it('dispatches a command created during a bus outage once the bus is back, and not again within the interval', async () => {
      await enroll('dev-a', true);
      busDown = true;
      const stranded = await create('dev-a');
      assert.equal(stranded.state, 'queued');
      assert.equal(stranded.gateway_id, null);
      assert.deepEqual(await deliveredIds(), []);
      // Still down: the sweep fails quietly and the command stays as it was.
      assert.equal(await h.cp.commands.redispatchDue(), 0);
      busDown = false;
      assert.equal(await h.cp.commands.redispatchDue(), 1);
      assert.deepEqual(await deliveredIds(), [stranded.id]);
      assert.equal((await h.cp.commands.get(stranded.id)).gateway_id, 'gw1');
      assert.equal(await h.cp.commands.redispatchDue(), 0, 'dispatched just now: not again before the interval');
      h.clock.advance(redispatchIntervalMsDefault);
      assert.equal(await h.cp.commands.redispatchDue(), 1, 'still queued after the interval (no progress seen): sent again');
      assert.deepEqual(await deliveredIds(), [stranded.id, stranded.id]);
      await h.cp.commands.transition(stranded.id, 'time_out', h.clock.nowMs());
    });

    it('dispatches earlier stranded commands of the device ahead of a new one, in device_seq order', async () => {
      await enroll('dev-b', true);
      busDown = true;
      const first = await create('dev-b');
      const second = await create('dev-b');
      busDown = false;
      const third = await create('dev-b');
      assert.deepEqual((await deliveredIds()).slice(-3), [first.id, second.id, third.id]);
      assert.equal(await h.cp.commands.redispatchDue(), 0);
      for (const c of [first, second, third]) await h.cp.commands.transition(c.id, 'time_out', h.clock.nowMs());
    });

    it('re-dispatches a sent command handed back while its device stays connected, after the interval only', async () => {
      await enroll('dev-c', true);
      const command = await create('dev-c');
      const atMs = h.clock.nowMs();
      const progress = (event: 'deliver' | 'requeue') => encodeBusEntry('command_progress', { command_id: command.id, device_id: 'dev-c', gateway_id: 'gw1', at_ms: atMs, event, attempt: 1 });
      await h.bus.append(streamNames.events, progress('deliver'));
      await h.bus.append(streamNames.events, progress('requeue'));
      await h.cp.eventsConsumer.drain();
      const handedBack = await h.cp.commands.get(command.id);
      assert.equal(handedBack.state, 'sent');
      assert.equal(handedBack.gateway_id, null);
      const before = (await deliveredIds()).filter((id) => id === command.id).length;
      assert.equal(await h.cp.commands.redispatchDue(), 0);
      h.clock.advance(redispatchIntervalMsDefault);
      assert.equal(await h.cp.commands.redispatchDue(), 1);
      assert.equal((await deliveredIds()).filter((id) => id === command.id).length, before + 1);
      await h.cp.commands.transition(command.id, 'time_out', h.clock.nowMs());
    });

    it('re-dispatches a command left ack_received or executing (its ACK or RESULT lost) once per interval, and a finished one never', async () => {
      await enroll('dev-e', true);
      const command = await create('dev-e');
      const count = async () => (await deliveredIds()).filter((id) => id === command.id).length;
      assert.equal(await count(), 1);
      for (const event of ['deliver', 'ack'] as const) await h.cp.commands.transition(command.id, event, h.clock.nowMs());
      assert.equal((await h.cp.commands.get(command.id)).state, 'ack_received');
      assert.equal(await h.cp.commands.redispatchDue(), 0, 'dispatched within the interval');
      h.clock.advance(redispatchIntervalMsDefault);
      assert.equal(await h.cp.commands.redispatchDue(), 1, 'ack_received: the device is asked again');
      assert.equal(await count(), 2);
      await h.cp.commands.transition(command.id, 'start', h.clock.nowMs());
      assert.equal((await h.cp.commands.get(command.id)).state, 'executing');
      h.clock.advance(redispatchIntervalMsDefault - 1);
      assert.equal(await h.cp.commands.redispatchDue(), 0, 'not before the interval since the last dispatch');
      h.clock.advance(1);
      assert.equal(await h.cp.commands.redispatchDue(), 1, 'executing: a lost result is asked for again');
      assert.equal(await count(), 3);
      await h.cp.commands.transition(command.id, 'succeed', h.clock.nowMs());
      h.clock.advance(redispatchIntervalMsDefault);
      assert.equal(await h.cp.commands.redispatchDue(), 0, 'terminal: never re-dispatched');
      assert.equal(await count(), 3);
    });

    it('takes at most redispatchPerSweepMax commands per sweep, the longest undispatched first', async () => {
      await enroll('dev-f', true);
      const commands = [];
      for (let i = 0; i < 3; i += 1) {
        commands.push(await create('dev-f'));
        h.clock.advance(1_000);
      }
      for (const c of commands) {
        for (const event of ['deliver', 'ack', 'start'] as const) await h.cp.commands.transition(c.id, event, h.clock.nowMs());
      }
      h.clock.advance(redispatchIntervalMsDefault);
      const before = (await deliveredIds()).length;
      assert.equal(await h.cp.commands.redispatchDue({ batchMax: 2 }), 2);
      assert.deepEqual((await deliveredIds()).slice(before), [commands[0]!.id, commands[1]!.id]);
      assert.equal(await h.cp.commands.redispatchDue({ batchMax: 2 }), 1);
      assert.deepEqual((await deliveredIds()).slice(before + 2), [commands[2]!.id]);
      for (const c of commands) await h.cp.commands.transition(c.id, 'time_out', h.clock.nowMs());
    });

    it('stamps commands of offline devices so they do not fill every batch, and skips expired ones', async () => {
      await enroll('dev-off', false);
      const offline = await create('dev-off');
      assert.equal(await h.cp.commands.redispatchDue(), 0);
      await enroll('dev-d', true);
      busDown = true;
      const online = await create('dev-d');
      busDown = false;
      // The offline device's command was stamped by the previous sweep; only the online one is due.
      assert.equal(await h.cp.commands.redispatchDue(), 1);
      assert.equal((await deliveredIds()).at(-1), online.id);
      assert.ok(!(await deliveredIds()).includes(offline.id));
      h.clock.advance(11 * 60 * 1000);
      assert.equal(await h.cp.commands.redispatchDue(), 0, 'past their TTL: the expiry sweep owns them');
    });
  });
}

suite(sqlJsTarget);
const mysqlUrl = process.env.MYSQL_URL;
if (mysqlUrl !== undefined) suite(mysqlTarget(mysqlUrl));
