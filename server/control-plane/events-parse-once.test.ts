import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { streamNames } from '../bus-contract/streams.js';
import { deadFields, deadLetterStream, type BusEntry, type StreamBus } from '../stores/bus/bus-port.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { deviceFrame, makeHarness, sqlJsTarget, type Harness } from './test-support.js';

const provider = createNodeEd25519Provider();

/**
 * Issue 17: an events or telemetry entry is parsed (strict JSON) and schema-checked once on its
 * way through the control plane (partition key, handler, compliance hook), not once per reader.
 * Counted as reads of the entry's `data` field: every parse of the entry must read it. A malformed
 * entry is still refused with its typed error and dead-lettered.
 */
describe('events entries parsed once in the control plane', () => {
  let h: Harness;
  /** Reads of `data` per `stream id` (ids repeat across streams), through the entries the control plane's consumers read. */
  const dataReads = new Map<string, number>();
  const counted = (stream: string, entry: BusEntry): BusEntry => ({
    ...entry,
    fields: new Proxy(entry.fields, {
      get(target, name, receiver) {
        if (name === 'data') dataReads.set(`${stream} ${entry.id}`, (dataReads.get(`${stream} ${entry.id}`) ?? 0) + 1);
        return Reflect.get(target, name, receiver) as unknown;
      },
    }),
  });
  const counting = (bus: StreamBus): StreamBus => new Proxy(bus, {
    get(target, name) {
      if (name === 'readGroup' || name === 'claim') {
        return async (...args: unknown[]) => ((await (target[name] as (...a: unknown[]) => Promise<BusEntry[]>).apply(target, args)).map((entry) => counted(String(args[0]), entry)));
      }
      const value = Reflect.get(target, name, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  const seed = new Uint8Array(randomBytes(32));
  const device = `dev-parse-${randomBytes(3).toString('hex')}`;

  before(async () => {
    h = await makeHarness(sqlJsTarget, { wrapBus: counting });
    await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', ?, ?)",
      [device, h.clock.nowMs(), Buffer.from(provider.publicKeyFromSeed(seed)).toString('base64url')]);
  });
  after(async () => {
    await h.close();
    await sqlJsTarget.cleanup();
  });

  it('reads each well-formed entry once: presence (with its compliance facts), alert, telemetry', async () => {
    const t0 = h.clock.nowMs();
    const presence = await h.bus.append(streamNames.events, encodeBusEntry('presence', {
      device_id: device, gateway_id: 'gw1', session_id: 's1', online: true, at_ms: t0, last_command_seq: 0, agent_version: '1.2.3',
    }));
    const alert = await h.bus.append(streamNames.events, encodeBusEntry('alert', {
      device_id: device, gateway_id: 'gw1', at_ms: t0, severity: 'warning', kind: 'disk_full', message: 'disk at 99 %',
    }));
    const frame = deviceFrame({ deviceId: device, seed, type: 'TELEMETRY', ts: t0,
      body: { sampled_at: t0, metrics: { cpu_pct: 1, mem_pct: 1, disk_pct: 1, net_rx_bytes_per_sec: 0, net_tx_bytes_per_sec: 0 } } });
    const telemetry = await h.bus.append(streamNames.telemetry, encodeBusEntry('telemetry', { device_id: device, gateway_id: 'gw1', received_at_ms: t0, frame }));
    assert.equal(await h.cp.eventsConsumer.drain(), 2);
    assert.equal(await h.cp.telemetryConsumer.drain(), 1);
    // Handled, not refused: the presence recorded the agent version, the telemetry the receive time; nothing dead-lettered.
    const view = await h.cp.devices.get(device);
    assert.deepEqual([view.agent_version, view.last_seen_at_ms], ['1.2.3', t0]);
    assert.equal((await h.bus.range(deadLetterStream(streamNames.events), { count: 10 })).length, 0);
    assert.deepEqual([`${streamNames.events} ${presence}`, `${streamNames.events} ${alert}`, `${streamNames.telemetry} ${telemetry}`].map((key) => dataReads.get(key)), [1, 1, 1]);
  });

  it('still refuses a malformed entry with its typed error, dead-lettered', async () => {
    await h.bus.append(streamNames.events, { kind: 'presence', data: JSON.stringify({ device_id: device, online: 'yes' }) });
    await h.cp.eventsConsumer.drain();
    const dead = await h.bus.range(deadLetterStream(streamNames.events), { count: 10 });
    assert.equal(dead.length, 1);
    assert.match(dead[0]!.fields[deadFields.reason] ?? '', /^PROTO_SCHEMA_INVALID: bus entry presence/);
  });
});
