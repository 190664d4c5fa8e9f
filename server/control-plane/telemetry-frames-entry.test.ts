import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { decodeBusEntry, encodeBusEntry, telemetryFramesLimits } from '../bus-contract/entries.js';
import { streamNames } from '../bus-contract/streams.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { SdcError } from '../../core/errors/index.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { macEnvelope } from '../../core/protocol/envelope.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import { systemClock, systemScheduler } from '../../runtime/system.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { deadFields, deadLetterStream, type BusEntry } from '../stores/bus/bus-port.js';
import { MemoryStreamBus } from '../stores/bus/memory-stream-bus.js';
import { AppendBatcher } from '../gateway/append-batcher.js';
import { packTelemetryFrames, type TelemetryItem } from '../gateway/forward-message.js';
import { StreamConsumer } from './stream-consumer.js';
import { deviceIdOfEntry } from './events.js';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

/**
 * Decision 0023: a gateway puts several devices' telemetry frames in one telemetry_frames entry;
 * the control plane stores every frame's samples as it would from its own entry, acks the entry
 * only after all of them are stored, keeps each device's order, and dead-letters a refused frame
 * alone.
 */
const item = (deviceId: string, n: number, frame = `{"n":${n}}`): TelemetryItem => ({ device_id: deviceId, gateway_id: 'gw-1', received_at_ms: 1_000 + n, frame });

describe('telemetry_frames entries: encoding', () => {
  it('round-trip: the frames verbatim in one field, cut by their lengths', () => {
    const frames = [item('dev-a', 1, '{"x":"é"}'), item('dev-b', 2), item('dev-a', 3)].map(({ gateway_id: _g, ...f }) => f);
    const fields = encodeBusEntry('telemetry_frames', { gateway_id: 'gw-1', frames });
    assert.deepEqual(Object.keys(fields).sort(), ['data', 'frames', 'kind']);
    assert.equal(fields.frames, '{"x":"é"}{"n":2}{"n":3}');
    assert.deepEqual(decodeBusEntry({ ...fields }), { kind: 'telemetry_frames', data: { gateway_id: 'gw-1', frames } });
    assert.deepEqual(deviceIdOfEntry({ id: '1-0', fields: { ...fields }, deliveryCount: 1 }), ['dev-a', 'dev-b', 'dev-a']);
  });

  it('refuses lengths that do not add up to the frames field, a missing field, and more than 64 frames (typed errors)', () => {
    const fields = encodeBusEntry('telemetry_frames', { gateway_id: 'gw-1', frames: [item('dev-a', 1), item('dev-b', 2)].map(({ gateway_id: _g, ...f }) => f) });
    const code = (f: Record<string, string>) => { try { decodeBusEntry(f); return 'decoded'; } catch (e) { return SdcError.is(e) ? e.code : 'untyped'; } };
    assert.equal(code({ ...fields, frames: `${fields.frames!}x` }), 'PROTO_SCHEMA_INVALID');
    assert.equal(code({ ...fields, frames: fields.frames!.slice(1) }), 'PROTO_SCHEMA_INVALID');
    assert.equal(code({ kind: fields.kind!, data: fields.data! }), 'PROTO_SCHEMA_INVALID');
    const many = Array.from({ length: telemetryFramesLimits.framesPerEntryMax + 1 }, (_, i) => item('dev-a', i)).map(({ gateway_id: _g, ...f }) => f);
    assert.throws(() => encodeBusEntry('telemetry_frames', { gateway_id: 'gw-1', frames: many }), (e) => SdcError.is(e, 'PROTO_SCHEMA_INVALID'));
  });

  it('packs a flush in order: runs of at most framesPerEntryMax frames and the byte bound; a run of one stays a telemetry entry', () => {
    const items = Array.from({ length: 150 }, (_, i) => item(`dev-${i % 7}`, i));
    const entries = packTelemetryFrames(items, 64);
    assert.deepEqual(entries.map((e) => e.kind), ['telemetry_frames', 'telemetry_frames', 'telemetry_frames']);
    const decoded = entries.map((e) => decodeBusEntry(e));
    const frames = decoded.flatMap((d) => (d.kind === 'telemetry_frames' ? d.data.frames.map((f) => f.frame) : []));
    assert.deepEqual(frames, items.map((i) => i.frame));
    assert.deepEqual(decoded.map((d) => (d.kind === 'telemetry_frames' ? d.data.frames.length : 0)), [64, 64, 22]);
    assert.deepEqual(packTelemetryFrames([item('dev-a', 1)], 64), [encodeBusEntry('telemetry', item('dev-a', 1))]);
    // 40 KiB frames: one per entry by the 64 KiB bound, so each is a telemetry entry of its own.
    const big = (n: number) => item('dev-a', n, `"${'x'.repeat(40 * 1024)}"`);
    assert.deepEqual(packTelemetryFrames([big(1), big(2)], 64).map((e) => e.kind), ['telemetry', 'telemetry']);
  });

  it('a packing AppendBatcher writes one turn of frames as few entries, and a retry after an outage writes the same entries', async () => {
    const time = new VirtualTime(0);
    const memory = new MemoryStreamBus({ clock: systemClock, scheduler: systemScheduler });
    let failing = true;
    const bus = new Proxy(memory, {
      get(target, name, receiver) {
        if (name === 'appendBatch') return (...a: Parameters<MemoryStreamBus['appendBatch']>) => (failing ? Promise.reject(new SdcError('STORE_UNAVAILABLE', 'down (test)')) : target.appendBatch(...a));
        const value: unknown = Reflect.get(target, name, receiver);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const batcher = new AppendBatcher<TelemetryItem>({
      bus, stream: 't', maxLen: 1_000, entriesMax: 100, waitingMax: 1_000, itemsPerFlushMax: 1_000, pack: (items) => packTelemetryFrames(items, 64),
      schedule: (delayMs, run) => time.schedule(delayMs, run), cancel: (timer) => time.cancel(timer), logger: pino({ level: 'silent' }),
    });
    const written = Array.from({ length: 70 }, (_, i) => batcher.write(item(`dev-${i}`, i)));
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(batcher.heldEntries, 70, 'held after the failed write');
    failing = false;
    time.advance(10_000);
    await Promise.all(written);
    const stored = await memory.range('t', { count: 100 });
    assert.deepEqual(stored.map((e) => e.fields.kind), ['telemetry_frames', 'telemetry_frames'], '64 + 6 frames');
    assert.deepEqual(stored.flatMap((e) => { const d = decodeBusEntry(e.fields); return d.kind === 'telemetry_frames' ? d.data.frames.map((f) => f.device_id) : [(d.data as { device_id: string }).device_id]; }),
      Array.from({ length: 70 }, (_, i) => `dev-${i}`));
    await assert.rejects(new AppendBatcher<TelemetryItem>({ bus, stream: 't', maxLen: 1_000, entriesMax: 2, waitingMax: 10, pack: (items) => packTelemetryFrames(items, 64),
      schedule: (delayMs, run) => time.schedule(delayMs, run), cancel: (timer) => time.cancel(timer) }).append(item('dev-a', 1)), (e) => SdcError.is(e, 'GATEWAY_INVALID_ARGUMENT'));
  });
});

describe('StreamConsumer: an entry with several partition keys', () => {
  it('waits for the earlier entries of each of its keys, and the later entries of each wait for it; other keys run meanwhile', async () => {
    const bus = new MemoryStreamBus({ clock: systemClock, scheduler: systemScheduler });
    const keys: Record<string, string[]> = { e1: ['a'], e2: ['b'], e3: ['a', 'b'], e4: ['c'], e5: ['b'], e6: ['a', 'a'] };
    for (const name of Object.keys(keys)) await bus.append('s', { name });
    const release = new Map<string, () => void>();
    const log: string[] = [];
    const consumer = new StreamConsumer({
      bus, stream: 's', group: 'g', consumer: 'c', logger: pino({ level: 'silent' }), scheduler: systemScheduler,
      partitionKey: (entry) => keys[entry.fields.name!], partitionsInFlightMax: 10,
      handle: (entry) => { const name = entry.fields.name!; log.push(`start ${name}`); return new Promise<void>((resolve) => { release.set(name, () => { log.push(`end ${name}`); resolve(); }); }); },
    });
    const polled = consumer.pollOnce(0);
    const turns = async () => { for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve)); };
    await turns();
    assert.deepEqual(log, ['start e1', 'start e2', 'start e4']);
    release.get('e1')!();
    await turns();
    assert.deepEqual(log.slice(3), ['end e1'], 'e3 still waits for e2');
    release.get('e2')!();
    await turns();
    assert.deepEqual(log.slice(4), ['end e2', 'start e3']);
    release.get('e4')!();
    release.get('e3')!();
    await turns();
    assert.deepEqual(log.slice(6).sort(), ['end e3', 'end e4', 'start e5', 'start e6'].sort());
    release.get('e5')!();
    release.get('e6')!();
    assert.equal(await polled, 6);
    assert.equal((await bus.pending('s', 'g')).length, 0);
  });
});

function suite(pair: StorePair): void {
  describe(`the telemetry handler: telemetry_frames entries on ${pair.name}`, () => {
    const provider = createNodeEd25519Provider();
    const sessionCrypto = createNodeSessionKeyCrypto();
    let h: Harness;
    let seq = 0;
    const devices = ['dev-frames-a', 'dev-frames-b'];
    const metrics = (i: number) => ({ cpu_pct: i, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 4, net_tx_bytes_per_sec: 5 });
    const frameOf = (deviceId: string, atMs: number, cpu: number) => canonicalize(macEnvelope({
      fields: { v: 1, type: 'TELEMETRY', id: `f${++seq}`, device_id: deviceId, session_id: 's1', seq, ts: atMs, body: { sampled_at: atMs, metrics: metrics(cpu) } as unknown as JsonObject },
      key: new Uint8Array(32).fill(9), crypto: sessionCrypto,
    }));
    const stored = async () => (await h.db.query<{ device_id: string; ts: number }>('SELECT device_id, ts FROM telemetry WHERE device_id LIKE ? ORDER BY device_id, ts', ['dev-frames-%']))
      .map((row) => `${row.device_id} ${Number(row.ts)}`);

    before(async () => {
      h = await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
      for (const deviceId of devices) {
        await h.db.execute("INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES (?, 'enrolled', ?, ?, ?, ?)",
          [deviceId, h.clock.nowMs(), `c-${deviceId}`, h.clock.nowMs() + 86_400_000, base64urlFromBytes(provider.publicKeyFromSeed(new Uint8Array(32).fill(3)))]);
      }
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('stores every frame\'s sample; an unknown device\'s frame is dead-lettered alone, as its telemetry entry; a redelivery stores nothing twice', async () => {
      const nowMs = h.clock.nowMs();
      const frames = [
        { device_id: 'dev-frames-a', received_at_ms: nowMs, frame: frameOf('dev-frames-a', nowMs, 1) },
        { device_id: 'dev-frames-unknown', received_at_ms: nowMs, frame: frameOf('dev-frames-unknown', nowMs, 2) },
        { device_id: 'dev-frames-b', received_at_ms: nowMs, frame: frameOf('dev-frames-b', nowMs + 1, 3) },
      ];
      const fields = encodeBusEntry('telemetry_frames', { gateway_id: 'gw-1', frames });
      const entry: BusEntry = { id: '77-0', fields, deliveryCount: 1 };
      await h.cp.events.handleTelemetry(entry);
      assert.deepEqual(await stored(), [`dev-frames-a ${nowMs}`, `dev-frames-b ${nowMs + 1}`]);
      const dead = await h.bus.range(deadLetterStream(streamNames.telemetry), { count: 10 });
      assert.equal(dead.length, 1);
      const deadEntry = dead[0]!.fields;
      assert.equal(deadEntry.kind, 'telemetry');
      assert.match(deadEntry[deadFields.reason]!, /^API_DEVICE_NOT_ENROLLED: /);
      assert.equal(deadEntry[deadFields.sourceId], '77-0');
      const { [deadFields.reason]: _r, [deadFields.sourceId]: _s, [deadFields.group]: _g, [deadFields.deliveryCount]: _d, ...original } = deadEntry;
      assert.deepEqual(decodeBusEntry(original), { kind: 'telemetry', data: { ...frames[1]!, gateway_id: 'gw-1' } });
      // Delivered again (its ack lost): the samples stored already are skipped (decision 0012).
      await h.cp.events.handleTelemetry({ id: '77-0', fields: { ...fields }, deliveryCount: 2 });
      assert.deepEqual(await stored(), [`dev-frames-a ${nowMs}`, `dev-frames-b ${nowMs + 1}`]);
    });

    it('fails the whole entry (to be retried, nothing acked) when the store fails, and stores it all on the retry', async () => {
      const nowMs = h.clock.nowMs() + 10_000;
      const frames = devices.map((deviceId, i) => ({ device_id: deviceId, received_at_ms: nowMs, frame: frameOf(deviceId, nowMs + i, 10 + i) }));
      const fields = encodeBusEntry('telemetry_frames', { gateway_id: 'gw-1', frames });
      const db = h.db as { execute: Harness['db']['execute'] };
      const execute = db.execute;
      db.execute = (sql, params) => (sql.startsWith('INSERT INTO telemetry') ? Promise.reject(new SdcError('STORE_UNAVAILABLE', 'down (test)')) : execute.call(h.db, sql, params));
      try {
        await assert.rejects(h.cp.events.handleTelemetry({ id: '78-0', fields, deliveryCount: 1 }), (e) => SdcError.is(e, 'STORE_UNAVAILABLE'));
      } finally {
        db.execute = execute;
      }
      await h.cp.events.handleTelemetry({ id: '78-0', fields: { ...fields }, deliveryCount: 1 });
      const rows = await stored();
      assert.ok(rows.includes(`dev-frames-a ${nowMs}`) && rows.includes(`dev-frames-b ${nowMs + 1}`));
    });

    it('bounds a frame\'s dead letter by the bus\'s own deadMaxLen, not 10,000 (review h13, item 4)', async () => {
      // A bus keeping 10,001 dead letters, holding 10,000 already: two frames dead-lettered leave 10,001 (a fixed 10,000 trimmed it to 10,000).
      const bus = new MemoryStreamBus({ clock: systemClock, scheduler: systemScheduler, deadMaxLen: 10_001 });
      const own = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }), wrapBus: () => bus });
      try {
        const dead = deadLetterStream(streamNames.telemetry);
        let lastFillerId = '';
        for (let i = 0; i < 10_000; i += 1) lastFillerId = await bus.append(dead, { kind: 'filler', n: String(i) });
        const nowMs = own.clock.nowMs();
        const frames = ['dev-frames-gone-1', 'dev-frames-gone-2'].map((deviceId, i) => ({ device_id: deviceId, received_at_ms: nowMs, frame: frameOf(deviceId, nowMs + i, 1) }));
        await own.cp.events.handleTelemetry({ id: '79-0', fields: encodeBusEntry('telemetry_frames', { gateway_id: 'gw-1', frames }), deliveryCount: 1 });
        assert.equal(await bus.length(dead), 10_001);
        const newest = (await bus.range(dead, { afterId: lastFillerId, count: 10 })).map((e) => e.fields[deadFields.sourceId]);
        assert.deepEqual(newest, ['79-0', '79-0']);
      } finally {
        await own.close();
        await bus.close();
      }
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe(`telemetry_frames on MySQL + Redis: ${skipped}`, { skip: skipped }, () => undefined);
