import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { streamNames } from '../bus-contract/streams.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { deviceActivityLimits } from './devices.js';
import { deviceFrame, makeHarness, mysqlTarget, sqlJsTarget, type Harness, type SqlTarget } from './test-support.js';

const provider = createNodeEd25519Provider();

/** GET /v1/devices/{id} keeps up with the device: telemetry moves last_seen_at_ms, results move last_command_seq. */
function suite(target: SqlTarget): void {
  describe(`device activity in the device view on ${target.name}`, () => {
    let h: Harness;
    const seed = new Uint8Array(randomBytes(32));
    const device = `dev-activity-${randomBytes(3).toString('hex')}`;
    before(async () => {
      h = await makeHarness(target);
      await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', ?, ?)",
        [device, h.clock.nowMs(), Buffer.from(provider.publicKeyFromSeed(seed)).toString('base64url')]);
    });
    after(async () => {
      await h.close();
      await target.cleanup();
    });

    const telemetryAt = async (receivedAtMs: number): Promise<void> => {
      const frame = deviceFrame({ deviceId: device, seed, type: 'TELEMETRY', ts: receivedAtMs,
        body: { sampled_at: receivedAtMs, metrics: { cpu_pct: 1, mem_pct: 1, disk_pct: 1, net_rx_bytes_per_sec: 0, net_tx_bytes_per_sec: 0 } } });
      await h.bus.append(streamNames.telemetry, encodeBusEntry('telemetry', { device_id: device, gateway_id: 'gw1', received_at_ms: receivedAtMs, frame }));
      await h.cp.telemetryConsumer.drain();
    };

    it('last_seen_at_ms follows telemetry after connect, written at most once per interval', async () => {
      const t0 = h.clock.nowMs();
      const intervalMs = deviceActivityLimits.lastSeenWriteIntervalMs;
      await h.bus.append(streamNames.events, encodeBusEntry('presence', { device_id: device, gateway_id: 'gw1', session_id: 's1', online: true, at_ms: t0, last_command_seq: 0 }));
      await h.cp.eventsConsumer.drain();
      assert.equal((await h.cp.devices.get(device)).last_seen_at_ms, t0);
      await telemetryAt(t0 + intervalMs);
      assert.equal((await h.cp.devices.get(device)).last_seen_at_ms, t0 + intervalMs, 'a sample an interval after connect is recorded');
      await telemetryAt(t0 + intervalMs + 1_000);
      assert.equal((await h.cp.devices.get(device)).last_seen_at_ms, t0 + intervalMs, 'within the interval: no write');
      await telemetryAt(t0 + 3 * intervalMs);
      assert.equal((await h.cp.devices.get(device)).last_seen_at_ms, t0 + 3 * intervalMs);
      await telemetryAt(t0 + 1_000);
      assert.equal((await h.cp.devices.get(device)).last_seen_at_ms, t0 + 3 * intervalMs, 'a late sample never moves it back');
    });

    it('last_command_seq follows signed results, never going back', async () => {
      const actor = { name: 'op', role: 'operator' as const };
      const first = (await h.cp.commands.create({ actor, deviceId: device, opcode: 'EXEC_PING_KERNEL', args: {} })).command;
      const second = (await h.cp.commands.create({ actor, deviceId: device, opcode: 'EXEC_PING_KERNEL', args: {} })).command;
      const resultOf = async (command: { id: string; device_seq: number | null }, atMs: number) => {
        const frame = deviceFrame({ deviceId: device, seed, type: 'COMMAND_RESULT', ts: atMs,
          body: { command_id: command.id, device_seq: command.device_seq, status: 'succeeded', output: {}, finished_at: atMs } });
        await h.bus.append(streamNames.events, encodeBusEntry('command_result', { command_id: command.id, device_id: device, gateway_id: 'gw1', at_ms: atMs, frame }));
        await h.cp.eventsConsumer.drain();
      };
      assert.equal((await h.cp.devices.get(device)).last_command_seq, 0);
      const atMs = h.clock.nowMs() + 60_000;
      await resultOf(second, atMs);
      let view = await h.cp.devices.get(device);
      assert.equal(view.last_command_seq, second.device_seq);
      assert.equal(view.last_seen_at_ms, atMs);
      await resultOf(first, atMs + 1);
      view = await h.cp.devices.get(device);
      assert.equal(view.last_command_seq, second.device_seq, 'an earlier seq finishing later does not lower it');
      assert.equal(view.last_seen_at_ms, atMs + 1);
    });
  });
}

suite(sqlJsTarget);
const mysqlUrl = process.env.MYSQL_URL;
if (mysqlUrl !== undefined && mysqlUrl !== '') suite(mysqlTarget(mysqlUrl));
