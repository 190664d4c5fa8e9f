import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import pino from 'pino';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { eventually, realTimeWaitMsMin } from '../gateway/test-support.js';
import { MemoryKeyValueStore } from '../stores/kv/memory-key-value-store.js';
import { LiveHub, liveHubLimits } from './live.js';
import { SseReader, makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

/**
 * Issue 16, finding 6: one viewer holding 100 streams locked every other user out of /v1/live,
 * and a stream outlived its token (events 42 s after a 3 s token).
 */


function suite(pair: StorePair): void {
  describe(`live streams on ${pair.name}`, () => {
    let h: Harness;
    let url = '';
    const open: SseReader[] = [];

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }) });
      for (const name of ['hoarder', 'other', 'brief']) await h.cp.auth.users.add({ name, role: 'viewer', password: `${name} password 12`, nowMs: h.clock.nowMs() });
      await h.cp.start();
      ({ url } = await h.cp.listen({ host: '127.0.0.1', port: 0, tls: false }));
    });
    after(async () => {
      for (const reader of open) await reader.cancel();
      await h.close();
      await pair.sql.cleanup();
    });

    const stream = async (token: string): Promise<{ status: number; reader?: SseReader; error?: { code: string } }> => {
      // A one-time ticket per stream, as the viewer does (live-tickets.test.ts covers the tickets).
      const issued = await fetch(`${url}/v1/live/tickets`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      const { ticket } = (await issued.json()) as { ticket: string };
      const response = await fetch(`${url}/v1/live?ticket=${ticket}`);
      if (response.status !== 200) return { status: response.status, error: ((await response.json()) as { error: { code: string } }).error };
      const reader = new SseReader(response);
      open.push(reader);
      await reader.readUntil('event: hello');
      return { status: 200, reader };
    };

    it('one viewer asking for 100 streams gets clientsPerUserMax; every other user still gets one', async () => {
      const hoarder = await h.cp.auth.authority.issue({ sub: 'hoarder', role: 'viewer' });
      const answers = [];
      for (let i = 0; i < 100; i += 1) answers.push(await stream(hoarder));
      const perUser = liveHubLimits.clientsPerUserMax;
      assert.ok(perUser < liveHubLimits.clientsMax);
      assert.equal(answers.filter((a) => a.status === 200).length, perUser);
      const refused = answers.filter((a) => a.status !== 200);
      assert.equal(refused.length, 100 - perUser);
      assert.ok(refused.every((a) => a.status === 429 && a.error?.code === 'API_TOO_MANY_STREAMS'));
      const other = await stream(await h.cp.auth.authority.issue({ sub: 'other', role: 'viewer' }));
      assert.equal(other.status, 200);
      assert.equal(h.cp.live.streamsOf('hoarder'), perUser);
      // A stream that closes gives its slot back.
      await answers[0]!.reader!.cancel();
      // The server sees the cancel when the socket closes: a condition, waited for however long a busy machine takes.
      await eventually(() => (h.cp.live.streamsOf('hoarder') < perUser ? true : undefined), realTimeWaitMsMin, "the cancelled stream's slot given back");
      assert.equal((await stream(hoarder)).status, 200);
    });

    it('a stream opened with a 3 s token is closed with token_expired and gets no event after the expiry', async () => {
      const brief = await h.cp.auth.authority.issue({ sub: 'brief', role: 'viewer', ttlMs: 3_000 });
      const opened = await stream(brief);
      assert.equal(opened.status, 200);
      h.cp.context.publishLive({ type: 'presence', device_id: 'dev-before', online: true, gateway_id: 'gw1', at_ms: 1 });
      await opened.reader!.readUntil('dev-before');
      h.clock.advance(3_000);
      h.cp.context.publishLive({ type: 'presence', device_id: 'dev-after', online: true, gateway_id: 'gw1', at_ms: 2 });
      const text = await opened.reader!.readUntil('"reason":"token_expired"');
      assert.match(text, /event: dropped\ndata: \{"reason":"token_expired"\}/);
      assert.ok(!text.includes('dev-after'), text);
      await opened.reader!.readUntil('never arrives: the server ends the stream');
      assert.equal(opened.reader!.ended, true);
      assert.equal(h.cp.live.streamsOf('brief'), 0);
    });
  });
}

/** The smallest ServerResponse the hub uses, recording what it is sent. */
function fakeResponse(): ServerResponse & { sent: string[]; ended: boolean } {
  const listeners: Array<() => void> = [];
  const fake = {
    sent: [] as string[], ended: false, writableLength: 0,
    writeHead() { return fake; },
    write(chunk: string) { fake.sent.push(chunk); return true; },
    end(chunk?: string) { if (chunk !== undefined) fake.sent.push(chunk); fake.ended = true; for (const listener of listeners) listener(); return fake; },
    on(event: string, listener: () => void) { if (event === 'close') listeners.push(listener); return fake; },
  };
  return fake as unknown as ServerResponse & { sent: string[]; ended: boolean };
}

describe('16.6: LiveHub closes a quiet stream when its token expires, on the injected clock and scheduler', () => {
  it('closes at the expiry time, not before, and frees the user\'s slot', () => {
    const time = new VirtualTime(1_000_000);
    const kv = new MemoryKeyValueStore({ clock: time });
    const hub = new LiveHub({ kv, logger: pino({ level: 'silent' }), clock: time, scheduler: time, clientsPerUserMax: 1 });
    const response = fakeResponse();
    hub.attach(response, { name: 'brief', role: 'viewer', tokenGeneration: 0, tokenExpiresAtMs: time.nowMs() + 3_000 });
    assert.throws(() => hub.reserve('brief'), { code: 'API_TOO_MANY_STREAMS' });
    time.advance(2_999);
    assert.equal(response.ended, false);
    time.advance(1);
    assert.equal(response.ended, true);
    assert.match(response.sent.at(-1)!, /"reason":"token_expired"/);
    assert.equal(hub.streamsOf('brief'), 0);
    assert.equal(time.pendingTimers, 0);
    hub.reserve('brief');
  });
});

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('live streams on mysql + redis', { skip: skipped }, () => {});
