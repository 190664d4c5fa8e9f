import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LiveStream, liveReconnectLimits, type LiveEvent, type LiveStatus } from './live.js';

/** An EventSource stand-in the test drives: open, deliver named events, fail. */
class FakeSource {
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  closed = false;
  readonly listeners = new Map<string, (message: { data: string }) => void>();
  constructor(readonly url: string) {}
  addEventListener(type: string, listener: (message: { data: string }) => void): void {
    this.listeners.set(type, listener);
  }
  emit(type: string, data: string): void {
    this.listeners.get(type)?.({ data });
  }
  close(): void {
    this.closed = true;
  }
}

/** Lets the ticket request (a promise) settle, so the connect after it has run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function harness(ticket: () => Promise<string | undefined> = async () => 'tkt') {
  const sources: FakeSource[] = [];
  const timers: Array<{ callback: () => void; delayMs: number }> = [];
  const events: LiveEvent[] = [];
  const statuses: LiveStatus[] = [];
  let expired = 0;
  let resyncs = 0;
  const revoked: string[] = [];
  const live = new LiveStream({
    ticket, onEvent: (event) => events.push(event), onStatus: (status) => statuses.push(status), onTokenExpired: () => { expired += 1; },
    onSessionRevoked: (reason) => { revoked.push(reason); },
    onResync: () => { resyncs += 1; },
    createSource: (url) => { const source = new FakeSource(url); sources.push(source); return source as unknown as EventSource; },
    setTimer: (callback, delayMs) => timers.push({ callback, delayMs }),
  });
  return { live, sources, timers, events, statuses, revoked, expired: () => expired, resyncs: () => resyncs };
}

describe('the live stream', () => {
  it('delivers the documented events and skips lines that are not', async () => {
    const h = harness();
    h.live.start();
    await settle();
    const source = h.sources[0]!;
    assert.equal(source.url, '/v1/live?ticket=tkt');
    source.onopen?.();
    source.emit('presence', '{"device_id":"lab-1","online":true,"gateway_id":"gw-1","at_ms":5}');
    source.emit('command', 'not json');
    source.emit('command', '{"state":"sent"}');
    assert.deepEqual(h.events, [{ type: 'presence', device_id: 'lab-1', online: true, gateway_id: 'gw-1', at_ms: 5 }]);
    assert.deepEqual(h.statuses, ['connecting', 'open']);
  });

  it('asks the views to read again when the server says resync (it lost changes), on the same connection', async () => {
    const h = harness();
    h.live.start();
    await settle();
    const source = h.sources[0]!;
    source.onopen?.();
    source.emit('resync', '{"type":"resync","reason":"publish_lost","at_ms":9}');
    assert.equal(h.resyncs(), 1);
    assert.equal(source.closed, false);
    assert.deepEqual(h.events, []);
  });

  it('delivers alert raises, acknowledgements and clears, also about no one device, and skips an alert without an id', async () => {
    const h = harness();
    h.live.start();
    await settle();
    const source = h.sources[0]!;
    source.emit('alert', '{"alert_id":"al_1","device_id":null,"severity":"warning","kind":"backpressure","message":"m","at_ms":1}');
    source.emit('alert_acknowledged', '{"alert_id":"al_1","device_id":null,"kind":"backpressure","acknowledged_by":"ann","note":"seen","at_ms":2}');
    source.emit('alert_cleared', '{"alert_id":"al_2","device_id":"lab-1","kind":"device_offline","at_ms":3}');
    source.emit('alert', '{"device_id":"lab-1","severity":"warning"}');
    source.emit('presence', '{"device_id":null,"online":true}');
    assert.deepEqual(h.events.map((e) => [e.type, (e as { alert_id?: string }).alert_id]), [['alert', 'al_1'], ['alert_acknowledged', 'al_1'], ['alert_cleared', 'al_2']]);
  });

  it('reconnects after a failure with a doubling pause, capped, and resets it once open', async () => {
    const h = harness();
    h.live.start();
    await settle();
    const delays: number[] = [];
    for (let i = 0; i < 8; i += 1) {
      h.sources.at(-1)!.onerror?.();
      const timer = h.timers.shift()!;
      delays.push(timer.delayMs);
      timer.callback();
      await settle();
    }
    assert.deepEqual(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    assert.equal(h.sources.slice(0, -1).every((s) => s.closed), true);
    h.sources.at(-1)!.onopen?.();
    h.sources.at(-1)!.onerror?.();
    assert.equal(h.timers.shift()!.delayMs, liveReconnectLimits.firstDelayMs);
    assert.ok(h.statuses.includes('reconnecting'));
  });

  it('stops and says so when the server drops the stream at token expiry, and never reconnects after stop', async () => {
    const h = harness();
    h.live.start();
    await settle();
    h.sources[0]!.emit('dropped', '{"reason":"token_expired"}');
    assert.equal(h.expired(), 1);
    assert.equal(h.sources[0]!.closed, true);
    assert.equal(h.timers.length, 0);
    const other = harness();
    other.live.start();
    await settle();
    other.live.stop();
    other.sources[0]!.onerror?.();
    assert.equal(other.timers.length, 0);
  });

  it('ends the session without reconnecting when the server drops the stream for a revoked token or a removed account; reconnects after a slow-client drop', async () => {
    for (const reason of ['token_revoked', 'user_removed', 'subject_invalid']) {
      const h = harness();
      h.live.start();
      await settle();
      h.sources[0]!.onopen?.();
      h.sources[0]!.emit('dropped', JSON.stringify({ reason }));
      assert.deepEqual(h.revoked, [reason]);
      assert.equal(h.sources[0]!.closed, true);
      assert.equal(h.timers.length, 0, `${reason}: no reconnect with the revoked token`);
      assert.equal(h.statuses.at(-1), 'closed');
      // The browser's own error event after the close starts nothing either.
      h.sources[0]!.onerror?.();
      assert.equal(h.timers.length, 0);
      assert.equal(h.expired(), 0);
    }
    const slow = harness();
    slow.live.start();
    await settle();
    slow.sources[0]!.emit('dropped', '{"reason":"slow_client"}');
    assert.deepEqual(slow.revoked, []);
    assert.equal(slow.timers.length, 1, 'a slow client reconnects');
  });

  it('does not connect without a session (no ticket)', async () => {
    const h = harness(async () => undefined);
    h.live.start();
    await settle();
    assert.equal(h.sources.length, 0);
  });

  it('asks for a new one-time ticket at every connect, never sends a token in the URL, and retries a refused ticket request', async () => {
    const asked: string[] = [];
    let refuse = false;
    const h = harness(async () => {
      asked.push(`t${asked.length + 1}`);
      if (refuse) throw new Error('429 API_LIVE_TICKETS_LIMIT');
      return asked.at(-1);
    });
    h.live.start();
    await settle();
    h.sources[0]!.onerror?.();
    h.timers.shift()!.callback();
    await settle();
    assert.deepEqual(h.sources.map((source) => source.url), ['/v1/live?ticket=t1', '/v1/live?ticket=t2']);
    refuse = true;
    h.sources[1]!.onerror?.();
    h.timers.shift()!.callback();
    await settle();
    assert.equal(h.sources.length, 2, 'no stream without a ticket');
    assert.equal(h.timers.length, 1, 'the refused ticket request is tried again after a pause');
    refuse = false;
    h.timers.shift()!.callback();
    await settle();
    assert.equal(h.sources.at(-1)!.url, '/v1/live?ticket=t4');
    assert.ok(h.sources.every((source) => !source.url.includes('token')));
  });

  it('a stop while the ticket is on its way opens nothing, and a start after it opens one stream', async () => {
    let release: (ticket: string) => void = () => undefined;
    const h = harness(() => new Promise<string>((resolve) => { release = resolve; }));
    h.live.start();
    const first = release;
    h.live.stop();
    first('late');
    await settle();
    assert.equal(h.sources.length, 0);
    h.live.start();
    release('fresh');
    await settle();
    assert.deepEqual(h.sources.map((source) => source.url), ['/v1/live?ticket=fresh']);
  });
});
