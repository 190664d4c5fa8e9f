import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { groups, streamNames } from '../bus-contract/streams.js';
import { deadFields, deadLetterStream } from '../stores/bus/bus-port.js';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

/**
 * Dead bus entries (<stream>:dead, docs/decisions/0007-dead-letters.md) through the API: malformed
 * events the control plane's consumer dead-lettered are listed with why, paged, discarded with a
 * reason (audited once, also when two operators discard at once), and an entry dead-lettered by a
 * store outage is replayed into its stream and applied. On sql.js + embedded kv, and MySQL + Redis.
 */

const password = 'correct horse battery staple';

function suite(pair: StorePair): void {
  describe(`dead bus entries on ${pair.name}`, () => {
    let h: Harness;
    const tokens: Record<string, string> = {};
    const deviceId = 'dlq-bus-dev';

    const call = async (method: 'GET' | 'POST', url: string, options: { token?: string; body?: unknown } = {}) => {
      const response = await h.cp.app.inject({
        method, url, headers: { authorization: `Bearer ${options.token ?? tokens.operator}` },
        ...(options.body === undefined ? {} : { payload: options.body as object }),
      });
      return { status: response.statusCode, json: () => response.json() as Record<string, any>, text: response.body };
    };
    const auditOf = async (kind: string) => ((await h.cp.auditStore.scan(1, 10_000)) as Array<{ kind: string; actor: string; subject: string; payload: Record<string, any> }>)
      .filter((entry) => entry.kind === kind);
    const entries = async (query = '') => call('GET', `/v1/dead-letters/streams/entries?stream=sdc:events${query}`);

    before(async () => {
      h = await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
      for (const role of ['operator', 'viewer'] as const) {
        await h.cp.auth.users.add({ name: role, role, password, nowMs: h.clock.nowMs() });
        const login = await h.cp.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { name: role, password } });
        tokens[role] = login.json().token as string;
      }
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [deviceId, h.clock.nowMs()]);
      // Three malformed events: an unknown kind, data that is not JSON, a presence missing its fields.
      await h.bus.append(streamNames.events, { kind: 'bogus', data: '{}' });
      await h.bus.append(streamNames.events, { kind: 'presence', data: 'not json' });
      await h.bus.append(streamNames.events, { kind: 'presence', data: JSON.stringify({ device_id: deviceId, online: 'yes' }) });
      await h.cp.eventsConsumer.drain();
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('lists the malformed events the consumer dead-lettered, oldest first, paged, with the reason; viewers are refused', async () => {
      const streams = await call('GET', '/v1/dead-letters/streams');
      assert.equal(streams.status, 200, streams.text);
      assert.deepEqual(streams.json().items.find((s: { stream: string }) => s.stream === streamNames.events), { stream: streamNames.events, dead_entries: 3 });
      const all = await entries();
      assert.equal(all.status, 200, all.text);
      const items = all.json().items as Array<Record<string, any>>;
      assert.deepEqual(items.map((e) => [e.kind, e.group, e.fields.data]), [
        ['bogus', groups.controlPlane, '{}'], ['presence', groups.controlPlane, 'not json'], ['presence', groups.controlPlane, JSON.stringify({ device_id: deviceId, online: 'yes' })],
      ]);
      assert.ok(items.every((e) => typeof e.reason === 'string' && e.reason.length > 0 && e.delivery_count === 1 && e.stream === streamNames.events && !e.fields_truncated));
      assert.equal(items[2]!.device_id, deviceId, 'the device named in the data, when it can be read');
      assert.equal(items[0]!.device_id, null);
      assert.ok(!Object.keys(items[0]!.fields).some((name) => name.startsWith('dead.')), 'the dead.* fields are given as their own members');
      const first = await entries('&limit=2');
      assert.deepEqual(first.json().items.map((e: { id: string }) => e.id), items.slice(0, 2).map((e) => e.id));
      assert.equal(first.json().next_after, items[1]!.id);
      const second = await entries(`&limit=2&after=${first.json().next_after as string}`);
      assert.deepEqual([second.json().items.map((e: { id: string }) => e.id), second.json().next_after], [[items[2]!.id], null]);
      assert.equal((await call('GET', '/v1/dead-letters/streams/entries?stream=sdc:events', { token: tokens.viewer })).status, 403);
      assert.equal((await call('GET', '/v1/dead-letters/streams', { token: tokens.viewer })).status, 403);
    });

    it('refuses a stream that is not ours, a bad id, an empty reason', async () => {
      const foreign = await call('GET', '/v1/dead-letters/streams/entries?stream=other:key');
      assert.deepEqual([foreign.status, foreign.json().error.code], [400, 'API_VALIDATION']);
      const badId = await call('POST', '/v1/dead-letters/streams/discard', { body: { stream: streamNames.events, id: 'x', reason: 'r' } });
      assert.deepEqual([badId.status, badId.json().error.code], [400, 'API_VALIDATION']);
      const [entry] = (await entries()).json().items as Array<{ id: string }>;
      const blank = await call('POST', '/v1/dead-letters/streams/discard', { body: { stream: streamNames.events, id: entry!.id, reason: '   ' } });
      assert.deepEqual([blank.status, blank.json().error.code], [400, 'API_VALIDATION']);
      const missing = await call('POST', '/v1/dead-letters/streams/discard', { body: { stream: streamNames.events, id: '1-0', reason: 'gone' } });
      assert.deepEqual([missing.status, missing.json().error.code], [404, 'DLQ_ENTRY_NOT_FOUND']);
    });

    it('discards with a reason: audited once even when two operators discard at once, then gone', async () => {
      const [entry] = (await entries()).json().items as Array<{ id: string; kind: string }>;
      const answers = await Promise.all(['unknown kind from an old gateway', 'same'].map((reason) =>
        call('POST', '/v1/dead-letters/streams/discard', { body: { stream: streamNames.events, id: entry!.id, reason } })));
      const statuses = answers.map((a) => a.status).sort();
      assert.equal(statuses[0], 200, answers.map((a) => a.text).join(' | '));
      assert.ok(statuses[1] === 404 || statuses[1] === 409, `the other is refused: ${statuses[1]}`);
      const audited = (await auditOf('dead_letter.entry_discarded')).filter((e) => e.payload['entry_id'] === entry!.id);
      assert.equal(audited.length, 1);
      assert.equal(audited[0]!.actor, 'user:operator');
      assert.equal(audited[0]!.payload['stream'], streamNames.events);
      assert.equal(audited[0]!.payload['kind'], 'bogus');
      assert.ok(typeof audited[0]!.payload['dead_reason'] === 'string');
      assert.equal(await h.bus.length(deadLetterStream(streamNames.events)), 2);
      const again = await call('POST', '/v1/dead-letters/streams/discard', { body: { stream: streamNames.events, id: entry!.id, reason: 'again' } });
      assert.deepEqual([again.status, again.json().error.code], [404, 'DLQ_ENTRY_NOT_FOUND']);
    });

    it('replays an entry a store outage dead-lettered: appended to its stream again, applied, removed from the dead stream, audited', async () => {
      // What the consumer writes after deliveriesMax failed attempts of a valid entry.
      const valid = encodeBusEntry('presence', { device_id: deviceId, gateway_id: 'gw-replay', session_id: 's_replay', online: true, at_ms: h.clock.nowMs() });
      const deadId = await h.bus.append(deadLetterStream(streamNames.events), {
        ...valid, [deadFields.reason]: 'STORE_UNAVAILABLE after 10 deliveries', [deadFields.sourceId]: '1-0', [deadFields.group]: groups.controlPlane, [deadFields.deliveryCount]: '10',
      });
      const [device] = await h.db.query<{ gateway_id: string | null }>('SELECT gateway_id FROM devices WHERE id = ?', [deviceId]);
      assert.equal(device!.gateway_id, null, 'not applied before the replay');
      const replayed = await call('POST', '/v1/dead-letters/streams/replay', { body: { stream: streamNames.events, id: deadId } });
      assert.equal(replayed.status, 200, replayed.text);
      assert.equal(replayed.json().id, deadId);
      await h.cp.eventsConsumer.drain();
      const [after] = await h.db.query<{ gateway_id: string | null }>('SELECT gateway_id FROM devices WHERE id = ?', [deviceId]);
      assert.equal(after!.gateway_id, 'gw-replay', 'the replayed presence was applied');
      assert.ok(!(await entries()).json().items.some((e: { id: string }) => e.id === deadId), 'off the dead stream');
      const audited = (await auditOf('dead_letter.entry_replayed')).filter((e) => e.payload['entry_id'] === deadId);
      assert.deepEqual(audited.map((e) => [e.actor, e.payload['device_id'], e.payload['dead_reason']]), [['user:operator', deviceId, 'STORE_UNAVAILABLE after 10 deliveries']]);
      // A malformed entry replayed fails again and comes back, under a new id.
      const [malformed] = (await entries()).json().items as Array<{ id: string }>;
      assert.equal((await call('POST', '/v1/dead-letters/streams/replay', { body: { stream: streamNames.events, id: malformed!.id } })).status, 200);
      await h.cp.eventsConsumer.drain();
      const now = (await entries()).json().items as Array<{ id: string; fields: Record<string, string> }>;
      assert.equal(now.length, 2);
      assert.ok(!now.some((e) => e.id === malformed!.id));
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
// Without MYSQL_URL and REDIS_URL the real pair is skipped; the same suite ran on the embedded pair above.
if (skipped !== undefined) describe('dead bus entries on mysql + redis', () => { it.skip(skipped, () => undefined); });
