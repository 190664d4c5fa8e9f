import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { systemRandom } from '../../runtime/system.js';
import RedisMock from 'ioredis-mock';
import { MemoryKeyValueStore } from '../stores/kv/memory-key-value-store.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import { createEmbeddedKeyValueStore, createRedisKeyValueStore, RedisKeyValueStore } from '../stores/kv/redis-key-value-store.js';
import { deleteKeysWithPrefix, testKeyPrefix } from '../stores/redis-test-keys.js';
import { LiveTickets, liveTicketLimits } from './live-tickets.js';
import { SseReader, makeHarness, openSecondControlPlane, storePairs, type Harness, type SecondControlPlane, type StorePair } from './test-support.js';

/**
 * The live stream's one-time tickets (security review, 2026-12-05 evening): the viewer sent its
 * JWT as `/v1/live?token=`, a long-lived bearer token in a URL.
 */

/** What a stores' writes carried: every key and value, to show the ticket itself is never stored. */
function recordingKv(inner: KeyValueStore): { kv: KeyValueStore; written: string[] } {
  const written: string[] = [];
  const kv: KeyValueStore = {
    get: (key) => inner.get(key),
    getBounded: (key, bytesMax) => inner.getBounded(key, bytesMax),
    deleteIfLarger: (key, bytesMax) => inner.deleteIfLarger(key, bytesMax),
    set: (key, value, opts) => { written.push(key, value); return inner.set(key, value, opts); },
    compareAndSet: (key, expected, value, opts) => { written.push(key, value); return inner.compareAndSet(key, expected, value, opts); },
    deleteIfEqual: (key, expected) => inner.deleteIfEqual(key, expected),
    take: (key) => inner.take(key),
    del: (key) => inner.del(key),
    incr: (key, by) => { written.push(key); return inner.incr(key, by); },
    expire: (key, ttlMs) => inner.expire(key, ttlMs),
    ttlMs: (key) => inner.ttlMs(key),
    expiringSetAdd: (key, member, opts) => { written.push(key, member); return inner.expiringSetAdd(key, member, opts); },
    expiringSetRemove: (key, member) => inner.expiringSetRemove(key, member),
    expiringSetCount: (key, nowMs) => inner.expiringSetCount(key, nowMs),
    publish: (channel, message) => inner.publish(channel, message),
    subscribe: (channel, handler) => inner.subscribe(channel, handler),
    close: () => inner.close(),
  };
  return { kv, written };
}

function codeOf(error: unknown): string {
  return SdcError.is(error) ? error.code : `untyped ${String(error)}`;
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'accepted';
  } catch (error) {
    return codeOf(error);
  }
}

describe('LiveTickets on virtual time (memory kv)', () => {
  function world(options: { removed?: Set<string> } = {}) {
    const time = new VirtualTime(1_000_000);
    const { kv, written } = recordingKv(new MemoryKeyValueStore({ clock: time }));
    const removed = options.removed ?? new Set<string>();
    const tickets = new LiveTickets({
      kv, clock: time, random: systemRandom,
      requireSubject: async (name) => { if (removed.has(name)) throw new SdcError('API_TOKEN_SUBJECT_INVALID', 'gone'); },
    });
    const ann = { name: 'ann', role: 'viewer' as const, tokenExpiresAtMs: time.nowMs() + 15 * 60_000, tokenGeneration: 0 };
    return { time, kv, written, tickets, ann, removed };
  }

  it('issues 32 random bytes in base64url, stores only their SHA-256, and spends a ticket once', async () => {
    const w = world();
    const issued = await w.tickets.issue(w.ann);
    assert.match(issued.ticket, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(issued.ticket, 'base64url').length, 32);
    assert.equal(issued.expiresAtMs, w.time.nowMs() + liveTicketLimits.ticketTtlMs);
    const digest = createHash('sha256').update(issued.ticket).digest('hex');
    assert.ok(w.written.some((text) => text.includes(digest)), 'stored under its hash');
    assert.ok(!w.written.some((text) => text.includes(issued.ticket)), 'the ticket itself is in no key and no value');
    assert.deepEqual(await w.tickets.redeem(issued.ticket), w.ann);
    assert.equal(await refusal(w.tickets.redeem(issued.ticket)), 'API_LIVE_TICKET_INVALID', 'a second use');
    assert.equal(await refusal(w.tickets.redeem('x'.repeat(43))), 'API_LIVE_TICKET_INVALID', 'never issued');
    assert.equal(await refusal(w.tickets.redeem('not a ticket')), 'API_LIVE_TICKET_INVALID');
    assert.notEqual((await w.tickets.issue(w.ann)).ticket, issued.ticket);
  });

  it('expires after ticketTtlMs on the clock, not before, and never outlives the token', async () => {
    const w = world();
    const early = await w.tickets.issue(w.ann);
    const late = await w.tickets.issue(w.ann);
    w.time.advance(liveTicketLimits.ticketTtlMs - 1);
    assert.equal((await w.tickets.redeem(early.ticket)).name, 'ann');
    w.time.advance(1);
    assert.equal(await refusal(w.tickets.redeem(late.ticket)), 'API_LIVE_TICKET_INVALID');

    const brief = { ...w.ann, tokenExpiresAtMs: w.time.nowMs() + 5_000 };
    const capped = await w.tickets.issue(brief);
    assert.equal(capped.expiresAtMs, brief.tokenExpiresAtMs);
    w.time.advance(5_000);
    assert.equal(await refusal(w.tickets.redeem(capped.ticket)), 'API_LIVE_TICKET_INVALID');
    // A token past its expiry (the verifier allows clock skew) gets no ticket.
    assert.equal(await refusal(w.tickets.issue({ ...w.ann, tokenExpiresAtMs: w.time.nowMs() })), 'JWT_EXPIRED');
  });

  it('refuses the ticket of a user removed or demoted since it was issued', async () => {
    const w = world();
    const issued = await w.tickets.issue(w.ann);
    w.removed.add('ann');
    assert.equal(await refusal(w.tickets.redeem(issued.ticket)), 'API_TOKEN_SUBJECT_INVALID');
    w.removed.delete('ann');
    assert.equal(await refusal(w.tickets.redeem(issued.ticket)), 'API_LIVE_TICKET_INVALID', 'spent even though refused');
  });

  it('bounds the unused tickets of one user, not of others; a used one or the TTL gives room back', async () => {
    const w = world();
    const held = [];
    for (let i = 0; i < liveTicketLimits.ticketsPerUserMax; i += 1) held.push(await w.tickets.issue(w.ann));
    const refused = await w.tickets.issue(w.ann).then(() => undefined, (error: unknown) => error);
    assert.ok(SdcError.is(refused, 'API_LIVE_TICKETS_LIMIT'), codeOf(refused));
    assert.equal(refused.details['retryAfterS'], liveTicketLimits.ticketTtlMs / 1000);
    assert.equal(refused.status, 429);
    assert.equal(await w.tickets.heldBy('ann'), liveTicketLimits.ticketsPerUserMax, 'a refusal takes no place');
    await w.tickets.issue({ ...w.ann, name: 'bob' });
    await w.tickets.redeem(held[0]!.ticket);
    await w.tickets.issue(w.ann);
    assert.equal(await refusal(w.tickets.issue(w.ann)), 'API_LIVE_TICKETS_LIMIT');
    w.time.advance(liveTicketLimits.ticketTtlMs);
    assert.equal(await w.tickets.heldBy('ann'), 0, 'expired unused tickets are forgotten with their count');
    await w.tickets.issue(w.ann);
    // A spent ticket whose count had expired does not drive the count below zero.
    assert.equal(await refusal(w.tickets.redeem(held[1]!.ticket)), 'API_LIVE_TICKET_INVALID');
    assert.equal(await w.tickets.heldBy('ann'), 1);
  });
});

/**
 * Review h11, finding 1: the count of a user's unused tickets was one counter whose TTL every
 * request renewed, refused ones included, so 16 tickets that expired unused locked out for good a
 * user asking at least every 30 s (two tabs, a tab and the CLI, a proxy that drops the SSE GET).
 * Each ticket now counts until its own expiry, on the tickets' clock, whatever the store.
 */
async function staleTicketsThenEvery20s(kv: KeyValueStore): Promise<void> {
  const time = new VirtualTime(1_000_000);
  const tickets = new LiveTickets({ kv, clock: time, random: systemRandom, requireSubject: async () => undefined });
  const ann = { name: 'ann', role: 'viewer' as const, tokenExpiresAtMs: time.nowMs() + 3_600_000, tokenGeneration: 0 };
  for (let i = 0; i < liveTicketLimits.ticketsPerUserMax; i += 1) await tickets.issue(ann); // never used
  time.advance(20_000);
  assert.equal(await refusal(tickets.issue(ann)), 'API_LIVE_TICKETS_LIMIT', '16 unexpired tickets');
  time.advance(liveTicketLimits.ticketTtlMs - 20_000 - 1);
  assert.equal(await refusal(tickets.issue(ann)), 'API_LIVE_TICKETS_LIMIT', 'still 16, 1 ms before they expire');
  assert.equal(await tickets.heldBy('ann'), liveTicketLimits.ticketsPerUserMax);
  time.advance(1);
  assert.equal(await tickets.heldBy('ann'), 0, 'the 16 expired together, the refusals kept none alive');
  const outcomes: string[] = [];
  for (let elapsedMs = 0; elapsedMs < 600_000; elapsedMs += 20_000) {
    outcomes.push(await refusal(tickets.issue(ann))); // never used either: at most 2 live at 20 s apart
    time.advance(20_000);
  }
  assert.deepEqual(outcomes, Array.from({ length: 30 }, () => 'accepted'));
  assert.equal(await tickets.heldBy('ann'), 1);
  // And used ones give their place back at once.
  for (let held = 1; held < liveTicketLimits.ticketsPerUserMax - 1; held += 1) await tickets.issue(ann);
  const last = (await tickets.issue(ann)).ticket;
  assert.equal(await refusal(tickets.issue(ann)), 'API_LIVE_TICKETS_LIMIT');
  await tickets.redeem(last);
  assert.equal(await refusal(tickets.issue(ann)), 'accepted');
}

describe('LiveTickets: tickets that expired unused stop counting on their own (review h11, finding 1)', () => {
  it('on the memory store', async () => {
    await staleTicketsThenEvery20s(new MemoryKeyValueStore({ clock: new VirtualTime(0) }));
  });
  it('on the embedded store (ioredis-mock, its keyspace read in process)', async () => {
    const kv = createEmbeddedKeyValueStore({ keyPrefix: `live-bound:${process.pid}:embedded:` });
    try { await staleTicketsThenEvery20s(kv); } finally { await kv.close(); }
  });
  it('on ioredis-mock through the script', async () => {
    const kv = new RedisKeyValueStore({ client: new RedisMock(), keyPrefix: `live-bound:${process.pid}:script:` });
    try { await staleTicketsThenEvery20s(kv); } finally { await kv.close(); }
  });
  const redisUrl = process.env['REDIS_URL'];
  it('on Redis', { skip: redisUrl === undefined || redisUrl === '' ? 'REDIS_URL is not set' : false }, async () => {
    const keyPrefix = testKeyPrefix('live-bound');
    const kv = createRedisKeyValueStore({ url: redisUrl!, keyPrefix });
    try { await staleTicketsThenEvery20s(kv); } finally { await kv.close(); await deleteKeysWithPrefix(redisUrl!, keyPrefix); }
  });
});


function suite(pair: StorePair): void {
  describe(`GET /v1/live with a ticket on ${pair.name}`, () => {
    let h: Harness;
    let second: SecondControlPlane;
    let url = '';
    let secondUrl = '';
    const logLines: string[] = [];
    const open: SseReader[] = [];

    before(async () => {
      const logger = pino({ level: 'debug' }, new Writable({ write(chunk, _encoding, done) { logLines.push(String(chunk)); done(); } }));
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }), controlPlane: { logger, liveClientsPerUserMax: 20 } });
      for (const name of ['ann', 'gone', 'brief']) await h.cp.auth.users.add({ name, role: 'viewer', password: `${name} password 12`, nowMs: h.clock.nowMs() });
      await h.cp.start();
      ({ url } = await h.cp.listen({ host: '127.0.0.1', port: 0, tls: false }));
      second = await openSecondControlPlane(h, pair);
      await second.cp.start();
      ({ url: secondUrl } = await second.cp.listen({ host: '127.0.0.1', port: 0, tls: false }));
    });
    after(async () => {
      for (const reader of open) await reader.cancel();
      await second.close();
      await h.close();
      await pair.sql.cleanup();
    });

    const ticketFor = async (token: string, base = url): Promise<{ ticket: string; expires_at_ms: number }> => {
      const response = await fetch(`${base}/v1/live/tickets`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      assert.equal(response.status, 200, await response.clone().text());
      assert.equal(response.headers.get('cache-control'), 'no-store');
      return await response.json() as { ticket: string; expires_at_ms: number };
    };
    const stream = async (query: string, base = url): Promise<{ status: number; reader?: SseReader; code?: string }> => {
      const response = await fetch(`${base}/v1/live?${query}`);
      if (response.status !== 200) return { status: response.status, code: ((await response.json()) as { error: { code: string } }).error.code };
      const reader = new SseReader(response);
      open.push(reader);
      await reader.readUntil('event: hello');
      return { status: 200, reader };
    };

    it('opens one stream per ticket; the second use is refused, and a ticket opens no other route', async () => {
      const token = await h.cp.auth.authority.issue({ sub: 'ann', role: 'viewer' });
      const { ticket, expires_at_ms: expiresAtMs } = await ticketFor(token);
      assert.equal(expiresAtMs, h.clock.nowMs() + liveTicketLimits.ticketTtlMs);
      const first = await stream(`ticket=${ticket}`);
      assert.equal(first.status, 200);
      h.cp.context.publishLive({ type: 'presence', device_id: 'dev-t1', online: true, gateway_id: 'gw1', at_ms: 1 });
      assert.match(await first.reader!.readUntil('dev-t1'), /event: presence/);
      assert.deepEqual(await stream(`ticket=${ticket}`), { status: 401, code: 'API_LIVE_TICKET_INVALID' });
      assert.deepEqual(await stream(`ticket=${'A'.repeat(43)}`), { status: 401, code: 'API_LIVE_TICKET_INVALID' });
      assert.deepEqual(await stream(''), { status: 401, code: 'API_UNAUTHENTICATED' });
      const other = await ticketFor(token);
      const devices = await fetch(`${url}/v1/devices?ticket=${other.ticket}`);
      assert.equal(devices.status, 401, 'a ticket is not a token');
      assert.equal((await fetch(`${url}/v1/live/tickets`, { method: 'POST' })).status, 401, 'a ticket needs the header');
      // Headers still work for a client that can send them (the CLI's SSE client could).
      const headed = await fetch(`${url}/v1/live`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(headed.status, 200);
      await headed.body?.cancel();
    });

    it('refuses a JWT in the URL with API_LIVE_TOKEN_IN_URL (400), with or without a ticket or header', async () => {
      const token = await h.cp.auth.authority.issue({ sub: 'ann', role: 'viewer' });
      assert.deepEqual(await stream(`token=${token}`), { status: 400, code: 'API_LIVE_TOKEN_IN_URL' });
      const { ticket } = await ticketFor(token);
      assert.deepEqual(await stream(`ticket=${ticket}&token=${token}`), { status: 400, code: 'API_LIVE_TOKEN_IN_URL' });
      const headed = await fetch(`${url}/v1/live?token=${token}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(headed.status, 400);
      // The refusal spent nothing: the ticket still opens its stream.
      assert.equal((await stream(`ticket=${ticket}`)).status, 200);
    });

    it('works across replicas: issued by one control plane, spent on the other, refused on both after', async () => {
      const token = await h.cp.auth.authority.issue({ sub: 'ann', role: 'viewer' });
      const { ticket } = await ticketFor(token);
      assert.equal((await stream(`ticket=${ticket}`, secondUrl)).status, 200);
      assert.equal((await stream(`ticket=${ticket}`)).code, 'API_LIVE_TICKET_INVALID');
      assert.equal((await stream(`ticket=${ticket}`, secondUrl)).code, 'API_LIVE_TICKET_INVALID');
    });

    it('refuses a ticket once its 30 s are over on the control plane\'s clock', async () => {
      const token = await h.cp.auth.authority.issue({ sub: 'ann', role: 'viewer' });
      const { ticket } = await ticketFor(token);
      h.clock.advance(liveTicketLimits.ticketTtlMs);
      assert.deepEqual(await stream(`ticket=${ticket}`), { status: 401, code: 'API_LIVE_TICKET_INVALID' });
    });

    it('refuses the ticket of a user removed after it was issued', async () => {
      const token = await h.cp.auth.authority.issue({ sub: 'gone', role: 'viewer' });
      const { ticket } = await ticketFor(token);
      await h.cp.auth.users.remove({ name: 'gone' });
      h.cp.auth.subjectChanged('gone');
      assert.deepEqual(await stream(`ticket=${ticket}`), { status: 401, code: 'API_TOKEN_SUBJECT_INVALID' });
    });

    it('bounds a user\'s unused tickets with API_LIVE_TICKETS_LIMIT (429, Retry-After)', async () => {
      const token = await h.cp.auth.authority.issue({ sub: 'brief', role: 'viewer' });
      for (let i = 0; i < liveTicketLimits.ticketsPerUserMax; i += 1) await ticketFor(token, i % 2 === 0 ? url : secondUrl);
      const refused = await fetch(`${url}/v1/live/tickets`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      assert.equal(refused.status, 429);
      assert.equal(refused.headers.get('retry-after'), String(liveTicketLimits.ticketTtlMs / 1000));
      assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'API_LIVE_TICKETS_LIMIT');
    });

    it('closes a ticket\'s stream when the token it was issued for expires', async () => {
      const token = await h.cp.auth.authority.issue({ sub: 'ann', role: 'viewer', ttlMs: 3_000 });
      const { ticket, expires_at_ms: expiresAtMs } = await ticketFor(token);
      assert.ok(expiresAtMs <= h.clock.nowMs() + 3_000, 'the ticket does not outlive the token');
      const opened = await stream(`ticket=${ticket}`);
      assert.equal(opened.status, 200);
      h.clock.advance(3_000);
      h.cp.context.publishLive({ type: 'presence', device_id: 'dev-after', online: true, gateway_id: 'gw1', at_ms: 2 });
      const text = await opened.reader!.readUntil('"reason":"token_expired"');
      assert.ok(!text.includes('dev-after'), text);
    });

    it('never logs a ticket: not in the request lines, not in the refusals', async () => {
      const token = await h.cp.auth.authority.issue({ sub: 'ann', role: 'viewer' });
      const { ticket } = await ticketFor(token);
      assert.equal((await stream(`ticket=${ticket}`)).status, 200);
      assert.equal((await stream(`ticket=${ticket}`)).code, 'API_LIVE_TICKET_INVALID');
      const logged = logLines.join('');
      assert.ok(logged.includes('/v1/live?ticket=[redacted]'), 'the request line is there, redacted');
      assert.ok(logged.includes('API_LIVE_TICKET_INVALID'), 'the refusal is logged with its code');
      assert.ok(!logged.includes(ticket), 'the ticket appears in no log line');
      assert.ok(!logged.includes(token), 'nor does the token');
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('GET /v1/live with a ticket on mysql + redis', { skip: skipped }, () => {});
