// Hardening 10.4 (issue 12), the gateway under abuse: a message over the WebSocket size bound gets
// the typed refusal before the 1009 close; a session closed for overload stops its queued frames
// (no presence refresh after the close); a presence refresh is a compare-and-set on the session,
// so a device's next session is never closed as GATEWAY_SESSION_REPLACED by an older one's leftovers.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { kvKeys } from '../bus-contract/streams.js';
import { defaultProtocolLimits } from '../../core/protocol/limits.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import { closeCodes } from './close-codes.js';
import type { GatewayCore } from './gateway-core.js';
import { startGatewayServer, type GatewayServer } from './gateway-server.js';
import {
  connectInMemory, connectTls, embeddedStores, eventually, makeCore, makeGatewayPki, onVirtualTime, settle, StreamReader, TestAgent, VirtualDriver,
  type GatewayPki, type TestStores,
} from './test-support.js';

/** Over the ws maxPayload (twice the protocol's frame bound, gateway-server.ts): ws drops it unread. */
const oversizeBytes = defaultProtocolLimits.frameBytesMax * 2 + 1;

describe('gateway under abuse: a message over the size bound (TLS + WebSocket)', () => {
  let gpki: GatewayPki;
  let stores: TestStores;
  let core: GatewayCore;
  let server: GatewayServer;
  const sockets: WebSocket[] = [];

  before(async () => {
    gpki = await makeGatewayPki();
    stores = embeddedStores();
    core = makeCore(stores, { heartbeatIntervalMs: 60_000, authTimeoutMs: 30_000 });
    await core.start();
    server = await startGatewayServer({ core, tls: gpki.serverTls, host: '127.0.0.1', port: 0, trustAnchors: [gpki.pki.intermediate.certificate, gpki.pki.root.certificate] });
  });
  after(async () => {
    for (const ws of sockets) ws.terminate();
    await server.close();
    await core.stop();
    await stores.bus.close();
    await stores.kv.close();
  });

  it('an authenticated session gets ERROR PROTO_FRAME_TOO_LARGE, then the close 1009 with the code as reason', async () => {
    const device = await gpki.issueDevice('dev-oversize');
    const { agent, ws } = await connectTls(server.address.url, device, gpki.serverTls.caPem);
    sockets.push(ws);
    await eventually(() => (agent.ready ? true : undefined), 30_000, 'AUTH_ACK');
    let errorsAtClose: string[] | undefined;
    ws.on('close', () => { errorsAtClose = agent.errorCodes(); });
    ws.send(Buffer.alloc(oversizeBytes, 0x20));
    const closed = await eventually(() => agent.closed, 30_000, 'the close');
    assert.deepEqual(closed, { code: closeCodes.tooLarge, reason: 'PROTO_FRAME_TOO_LARGE' });
    assert.deepEqual(errorsAtClose, ['PROTO_FRAME_TOO_LARGE'], 'the typed ERROR frame came before the close');
    assert.equal(await eventually(async () => ((await stores.kv.get(kvKeys.presence('dev-oversize'))) === null ? true : undefined), 30_000, 'presence gone'), true);
  });

  it('before AUTH the device gets AUTH_ERROR PROTO_FRAME_TOO_LARGE, then the close 1009', async () => {
    const device = await gpki.issueDevice('dev-oversize-early');
    const ws = new WebSocket(server.address.url, { cert: device.certPem, key: device.keyPem, ca: gpki.serverTls.caPem });
    sockets.push(ws);
    const frames: string[] = [];
    ws.on('error', () => undefined);
    ws.on('message', (data: Buffer) => {
      frames.push(data.toString('utf8'));
      if (frames.length === 1) ws.send(Buffer.alloc(oversizeBytes, 0x20)); // right after the CHALLENGE
    });
    const closed = await new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    assert.deepEqual(closed, { code: closeCodes.tooLarge, reason: 'PROTO_FRAME_TOO_LARGE' });
    assert.equal(frames.length, 2, frames.join('\n'));
    assert.match(frames[0]!, /"type":"AUTH_CHALLENGE"/);
    const refusal = JSON.parse(frames[1]!) as { type: string; body: { code: string } };
    assert.deepEqual([refusal.type, refusal.body.code], ['AUTH_ERROR', 'PROTO_FRAME_TOO_LARGE']);
  });
});

/** A key/value store whose operations can be held (a store stall) and whose presence operations are logged when called. */
class StallingKv {
  readonly calls: Array<{ op: string; key: string; value?: string }> = [];
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;
  /** Runs once, inside the next presence read or compare-and-set, before it reaches the store. */
  beforeNextPresenceOp: (() => Promise<void>) | undefined;

  constructor(readonly inner: KeyValueStore) {}

  stall(): void {
    this.#gate = new Promise((resolve) => { this.#open = resolve; });
  }

  resume(): void {
    this.#open?.();
    this.#gate = undefined;
  }

  get store(): KeyValueStore {
    const inner = this.inner;
    const held = async <T>(op: string, key: string, run: () => Promise<T>, value?: string): Promise<T> => {
      if (key.includes('presence')) this.calls.push({ op, key, ...(value === undefined ? {} : { value }) });
      if (this.#gate !== undefined) await this.#gate;
      return run();
    };
    const hook = async (key: string): Promise<void> => {
      const once = this.beforeNextPresenceOp;
      if (once === undefined || !key.includes('presence')) return;
      this.beforeNextPresenceOp = undefined;
      await once();
    };
    return {
      get: (key) => held('get', key, async () => {
        // A read then a write: the other writer lands between them (after the read).
        const value = await inner.get(key);
        await hook(key);
        return value;
      }),
      getBounded: (key, bytesMax) => held('getBounded', key, () => inner.getBounded(key, bytesMax)),
      deleteIfLarger: (key, bytesMax) => held('deleteIfLarger', key, () => inner.deleteIfLarger(key, bytesMax)),
      set: (key, value, opts) => held('set', key, () => inner.set(key, value, opts), value),
      compareAndSet: (key, expected, value, opts) => held('compareAndSet', key, async () => {
        // Atomic: the other writer lands before it (it cannot land inside).
        await hook(key);
        return inner.compareAndSet(key, expected, value, opts);
      }, value),
      deleteIfEqual: (key, expected) => held('deleteIfEqual', key, async () => {
        // Atomic like compareAndSet: the other writer lands before it.
        await hook(key);
        return inner.deleteIfEqual(key, expected);
      }),
      take: (key) => held('take', key, () => inner.take(key)),
      del: (key) => held('del', key, () => inner.del(key)),
      incr: (key, by) => held('incr', key, () => inner.incr(key, by)),
      expire: (key, ttlMs) => held('expire', key, () => inner.expire(key, ttlMs)),
      ttlMs: (key) => held('ttlMs', key, () => inner.ttlMs(key)),
      expiringSetAdd: (key, member, opts) => held('expiringSetAdd', key, () => inner.expiringSetAdd(key, member, opts)),
      expiringSetRemove: (key, member) => held('expiringSetRemove', key, () => inner.expiringSetRemove(key, member)),
      expiringSetCount: (key, nowMs) => held('expiringSetCount', key, () => inner.expiringSetCount(key, nowMs)),
      publish: (channel, message) => inner.publish(channel, message),
      subscribe: (channel, handler) => inner.subscribe(channel, handler),
      close: () => inner.close(),
    };
  }
}

describe('gateway under abuse: overload and presence (virtual time, in-memory transport)', () => {
  const heartbeatIntervalMs = 1_000;
  let gpki: GatewayPki;

  before(async () => {
    gpki = await makeGatewayPki();
  });

  async function gateway(driver: VirtualDriver) {
    const base = embeddedStores(driver.time);
    const kv = new StallingKv(base.kv);
    const core = makeCore({ bus: base.bus, kv: kv.store }, { ...onVirtualTime(driver), heartbeatIntervalMs, authTimeoutMs: 5_000, ackTimeoutMs: 60_000 });
    await core.start();
    return {
      core, kv, base,
      async close() {
        kv.resume();
        await core.stop();
        await base.bus.close();
        await base.kv.close();
      },
    };
  }

  const heartbeat = (agent: TestAgent, driver: VirtualDriver): void => {
    agent.connection.sendHeartbeat({ uptime_ms: 1, queue_depth: 0 }, driver.time.nowMs());
    agent.flush();
  };

  it('a session closed for overload stops its queued frames (no presence refresh after the close), and the device\'s next session stays', async () => {
    const driver = new VirtualDriver();
    const g = await gateway(driver);
    try {
      const device = await gpki.issueDevice('dev-overload');
      const first = connectInMemory(g.core, device, new TestAgent(device, { clock: driver.time }));
      await driver.until(() => (first.ready ? true : undefined), 2_000, 'first AUTH_ACK');
      await driver.until(async () => ((await g.base.kv.get(kvKeys.presence('dev-overload'))) !== null ? true : undefined), 2_000, 'first presence');
      const firstSessionId = first.connection.id;
      // The store stalls; the device keeps sending: the session's work queue (256) overflows.
      g.kv.stall();
      for (let i = 0; i < 300 && first.closed === undefined; i += 1) {
        heartbeat(first, driver);
        await settle(1);
      }
      assert.deepEqual(first.closed, { code: closeCodes.overloaded, reason: 'GATEWAY_OVERLOADED' });
      const callsAtClose = g.kv.calls.length;
      g.kv.resume();
      await driver.advance(100);
      const refreshesAfterClose = g.kv.calls.slice(callsAtClose).filter((c) => c.op !== 'del' && c.op !== 'get' && c.value?.includes(firstSessionId));
      assert.deepEqual(refreshesAfterClose, [], 'no write of the closed session\'s presence after the close');
      const readsAfterClose = g.kv.calls.slice(callsAtClose).filter((c) => c.op === 'get').length;
      assert.ok(readsAfterClose <= 1, `at most the offline check reads presence after the close (read ${readsAfterClose} times)`);

      // The device comes back: its new session is never closed as replaced by the old one's leftovers.
      const second = connectInMemory(g.core, device, new TestAgent(device, { clock: driver.time }));
      await driver.until(() => (second.ready ? true : undefined), 2_000, 'second AUTH_ACK');
      for (let beat = 0; beat < 5; beat += 1) {
        await driver.advance(heartbeatIntervalMs / 2);
        heartbeat(second, driver);
      }
      await driver.advance(100);
      assert.equal(second.closed, undefined, `the new session was closed: ${JSON.stringify(second.closed)}`);
      const record = JSON.parse((await g.base.kv.get(kvKeys.presence('dev-overload')))!) as { session_id: string };
      assert.equal(record.session_id, second.connection.id);
    } finally {
      await g.close();
    }
  });

  it('a presence refresh is compare-and-set on the session id: a newer session\'s key written meanwhile is kept, and the older session ends', async () => {
    const driver = new VirtualDriver();
    const g = await gateway(driver);
    try {
      const device = await gpki.issueDevice('dev-cas');
      const old = connectInMemory(g.core, device, new TestAgent(device, { clock: driver.time }));
      await driver.until(() => (old.ready ? true : undefined), 2_000, 'AUTH_ACK');
      await driver.until(async () => ((await g.base.kv.get(kvKeys.presence('dev-cas'))) !== null ? true : undefined), 2_000, 'presence');
      // The device's newer session on another gateway writes the key while this one refreshes.
      const newer = JSON.stringify({ gateway_id: 'gw-other', session_id: 's_newer', since_ms: driver.time.nowMs() });
      g.kv.beforeNextPresenceOp = async () => { await g.base.kv.set(kvKeys.presence('dev-cas'), newer, { ttlMs: 60_000 }); };
      heartbeat(old, driver);
      await driver.until(() => old.closed, 2_000, 'the older session closed');
      assert.deepEqual(old.closed, { code: closeCodes.replaced, reason: 'GATEWAY_SESSION_REPLACED' });
      assert.equal(await g.base.kv.get(kvKeys.presence('dev-cas')), newer, 'the newer session\'s presence is not overwritten');
    } finally {
      await g.close();
    }
  });

  it('offline is delete-if-equal on the session\'s record: a newer session\'s key written as the old one times out is kept, and no offline is reported', async () => {
    const driver = new VirtualDriver();
    const g = await gateway(driver);
    try {
      const device = await gpki.issueDevice('dev-offline-cas');
      const old = connectInMemory(g.core, device, new TestAgent(device, { clock: driver.time }));
      await driver.until(() => (old.ready ? true : undefined), 2_000, 'AUTH_ACK');
      await driver.until(async () => ((await g.base.kv.get(kvKeys.presence('dev-offline-cas'))) !== null ? true : undefined), 2_000, 'presence');
      // The device went silent here and reconnected through another gateway: its newer session
      // writes the key just as this gateway's silence deadline ends the old session.
      const newer = JSON.stringify({ gateway_id: 'gw-other', session_id: 's_newer', since_ms: driver.time.nowMs() });
      g.kv.beforeNextPresenceOp = async () => { await g.base.kv.set(kvKeys.presence('dev-offline-cas'), newer, { ttlMs: 60_000 }); };
      const events = new StreamReader(g.base.bus);
      await driver.until(() => old.closed, 10 * heartbeatIntervalMs, 'the silent session closed');
      assert.equal(old.closed?.code, 4000);
      await driver.advance(100);
      assert.equal(g.kv.beforeNextPresenceOp, undefined, 'the newer session wrote its key during the offline');
      assert.equal(await g.base.kv.get(kvKeys.presence('dev-offline-cas')), newer, 'the newer session\'s presence is not deleted');
      await events.poll();
      const offline = events.entries.filter((e) => e.kind === 'presence' && e.data.device_id === 'dev-offline-cas' && !e.data.online);
      assert.deepEqual(offline, [], 'the old session does not report a device offline that a newer session holds');
    } finally {
      await g.close();
    }
  });
});
