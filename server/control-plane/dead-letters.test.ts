import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBusEntry, encodeBusEntry } from '../bus-contract/entries.js';
import { gatewayCommandStream, kvKeys, streamNames } from '../bus-contract/streams.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { deviceFrame, makeDeviceKey, makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

/**
 * Dead-letter remediation (roadmap 11.4) through the API: the list (fleet-wide, per device,
 * paged), retry (the same signed command appended again to the device's gateway; refusals per
 * id), discard with a reason, the audit entry of each action, the roles, and a late signed result
 * after a retry settling the command (off the list). On sql.js + embedded kv, and MySQL + Redis.
 */

const password = 'correct horse battery staple';

function suite(pair: StorePair): void {
  describe(`dead-letter remediation on ${pair.name}`, () => {
    let h: Harness;
    const tokens: Record<string, string> = {};
    const devices = ['dlq-dev-1', 'dlq-dev-2'];
    const seeds = new Map<string, Uint8Array>();
    const stream = gatewayCommandStream('gw1');

    const call = async (method: 'GET' | 'POST', url: string, options: { token?: string; body?: unknown } = {}) => {
      const response = await h.cp.app.inject({
        method, url, headers: { authorization: `Bearer ${options.token ?? tokens.operator}` },
        ...(options.body === undefined ? {} : { payload: options.body as object }),
      });
      return { status: response.statusCode, json: () => response.json() as Record<string, any>, text: response.body };
    };
    /** Every command id delivered on gw1's stream so far, with its signed command, in order. */
    const delivered = async (): Promise<SignedCommand[]> => {
      const group = `probe-${Math.random().toString(16).slice(2)}`;
      await h.bus.ensureGroup(stream, group, '0');
      return (await h.bus.readGroup(stream, group, 'probe', { count: 10_000 })).map((entry) => {
        const decoded = decodeBusEntry(entry.fields);
        assert.equal(decoded.kind, 'deliver');
        return (decoded.data as { command: SignedCommand }).command;
      });
    };
    /** A command created, delivered, then dead-lettered by the gateway, as the events stream reports it. */
    const deadLettered = async (deviceId: string, detail = 'no ACK after 5 attempts'): Promise<string> => {
      const created = await call('POST', '/v1/commands', { body: { device_id: deviceId, opcode: 'EXEC_PING_KERNEL', args: {} } });
      assert.equal(created.status, 201, created.text);
      const id = created.json().id as string;
      const atMs = h.clock.nowMs();
      for (const event of ['deliver', 'dead_letter'] as const) {
        await h.bus.append(streamNames.events, encodeBusEntry('command_progress', {
          command_id: id, device_id: deviceId, gateway_id: 'gw1', at_ms: atMs, event, attempt: 5, ...(event === 'dead_letter' ? { detail } : {}),
        }));
      }
      await h.cp.eventsConsumer.drain();
      assert.equal((await h.cp.commands.get(id)).state, 'dead_lettered');
      h.clock.advance(1);
      return id;
    };
    const auditOf = async (kind: string) => ((await h.cp.auditStore.scan(1, 10_000)) as Array<{ kind: string; actor: string; subject: string; payload: Record<string, any> }>)
      .filter((entry) => entry.kind === kind);

    before(async () => {
      h = await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
      for (const role of ['admin', 'operator', 'viewer'] as const) {
        await h.cp.auth.users.add({ name: role, role, password, nowMs: h.clock.nowMs() });
        const login = await h.cp.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { name: role, password } });
        tokens[role] = login.json().token as string;
      }
      for (const deviceId of devices) {
        const { seed, csrPem } = await makeDeviceKey(deviceId);
        seeds.set(deviceId, seed);
        const pairing = await call('POST', `/v1/devices/${deviceId}/pairing-tokens`, { token: tokens.admin, body: {} });
        const enrolled = await h.cp.app.inject({ method: 'POST', url: '/v1/enroll', payload: { device_id: deviceId, token: pairing.json().token, csr_pem: csrPem } });
        assert.equal(enrolled.statusCode, 201, enrolled.body);
        await h.cp.context.kv.set(kvKeys.presence(deviceId), JSON.stringify({ gateway_id: 'gw1' }));
      }
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('lists dead-lettered commands fleet-wide and per device, newest first, paged, with the gateway\'s reason; viewers are refused', async () => {
      const first = await deadLettered(devices[0]!);
      const second = await deadLettered(devices[1]!, 'GATEWAY_COMMAND_REFUSED: refused by gateway');
      const third = await deadLettered(devices[0]!);
      const all = await call('GET', '/v1/dead-letters');
      assert.equal(all.status, 200, all.text);
      assert.deepEqual(all.json().items.map((item: { command_id: string }) => item.command_id), [third, second, first]);
      const item = all.json().items[1];
      assert.equal(item.device_id, devices[1]);
      assert.equal(item.opcode, 'EXEC_PING_KERNEL');
      assert.equal(item.reason, 'GATEWAY_COMMAND_REFUSED: refused by gateway');
      assert.equal(item.retries, 0);
      const mine = await call('GET', `/v1/dead-letters?device_id=${devices[0]}`);
      assert.deepEqual(mine.json().items.map((i: { command_id: string }) => i.command_id), [third, first]);
      const page1 = await call('GET', '/v1/dead-letters?limit=2');
      assert.equal(page1.json().items.length, 2);
      const page2 = await call('GET', `/v1/dead-letters?limit=2&cursor=${page1.json().next_cursor}`);
      assert.deepEqual(page2.json().items.map((i: { command_id: string }) => i.command_id), [first]);
      assert.equal(page2.json().next_cursor, null);
      const viewer = await call('GET', '/v1/dead-letters', { token: tokens.viewer });
      assert.equal(viewer.status, 403);
      assert.equal(viewer.json().error.code, 'API_FORBIDDEN');
      for (const id of [first, second, third]) await call('POST', `/v1/dead-letters/${id}/discard`, { body: { reason: 'test cleanup' } });
    });

    it('retries the same signed command (same id, seq and signature) on the device\'s gateway, audited; a refused id does not stop the others', async () => {
      const id = await deadLettered(devices[0]!);
      const before = await delivered();
      const original = before.find((command) => command.id === id)!;
      const retry = await call('POST', '/v1/dead-letters/retry', { body: { ids: [id, 'c_nosuchcommand'] } });
      assert.equal(retry.status, 200, retry.text);
      assert.deepEqual(retry.json().results[0], { command_id: id, outcome: 'retried', gateway_id: 'gw1', retries: 1 });
      assert.equal(retry.json().results[1].outcome, 'refused');
      assert.equal(retry.json().results[1].error.code, 'DLQ_ENTRY_NOT_FOUND');
      const after = await delivered();
      assert.equal(after.length, before.length + 1);
      assert.deepEqual(after.at(-1), original, 'the very same signed command: a new attempt, not a new command');
      // Still dead-lettered (execution unknown) until the device answers; the list shows the retry.
      assert.equal((await h.cp.commands.get(id)).state, 'dead_lettered');
      const listed = (await call('GET', `/v1/dead-letters?device_id=${devices[0]}`)).json().items.find((i: { command_id: string }) => i.command_id === id);
      assert.equal(listed.retries, 1);
      assert.equal(listed.last_retry_by, 'operator');
      const [audit] = (await auditOf('dead_letter.retried')).filter((entry) => entry.payload.command_id === id);
      assert.equal(audit?.actor, 'user:operator');
      assert.equal(audit?.payload.mode, 'same_signed_command');
      assert.equal(audit?.payload.device_seq, original.device_seq);

      // The device's signed result for the retried command settles it (a late result) and takes it off the list.
      const frame = deviceFrame({
        deviceId: devices[0]!, seed: seeds.get(devices[0]!)!, type: 'COMMAND_RESULT', ts: h.clock.nowMs(),
        body: { command_id: id, device_seq: original.device_seq, status: 'succeeded', output: {}, finished_at: h.clock.nowMs() },
      });
      await h.bus.append(streamNames.events, encodeBusEntry('command_result', { command_id: id, device_id: devices[0]!, gateway_id: 'gw1', at_ms: h.clock.nowMs(), frame }));
      await h.cp.eventsConsumer.drain();
      assert.equal((await h.cp.commands.get(id)).state, 'succeeded_late');
      assert.ok(!(await call('GET', '/v1/dead-letters')).json().items.some((i: { command_id: string }) => i.command_id === id));
      const again = await call('POST', '/v1/dead-letters/retry', { body: { ids: [id] } });
      assert.equal(again.json().results[0].error.code, 'DLQ_ENTRY_NOT_FOUND', 'no longer dead-lettered');
    });

    it('refuses a retry while the device is offline, and after the signed expiry', async () => {
      const id = await deadLettered(devices[1]!);
      await h.cp.context.kv.del(kvKeys.presence(devices[1]!));
      const before = (await delivered()).length;
      const offline = await call('POST', '/v1/dead-letters/retry', { body: { ids: [id] } });
      assert.equal(offline.json().results[0].error.code, 'DLQ_DEVICE_OFFLINE');
      await h.cp.context.kv.set(kvKeys.presence(devices[1]!), JSON.stringify({ gateway_id: 'gw1' }));
      h.clock.advance(11 * 60 * 1000); // past the default 10-minute TTL
      const expired = await call('POST', '/v1/dead-letters/retry', { body: { ids: [id] } });
      assert.equal(expired.json().results[0].error.code, 'DLQ_RETRY_EXPIRED');
      assert.equal((await delivered()).length, before, 'nothing appended for a refused retry');
      assert.equal((await auditOf('dead_letter.retried')).filter((entry) => entry.payload.command_id === id).length, 0, 'a refusal changes nothing');
      await call('POST', `/v1/dead-letters/${id}/discard`, { body: { reason: 'expired' } });
    });

    it('discards with a reason (audited, off the list, never retried); an empty reason or a second discard is refused', async () => {
      const id = await deadLettered(devices[0]!);
      const empty = await call('POST', `/v1/dead-letters/${id}/discard`, { body: { reason: '' } });
      assert.equal(empty.status, 400);
      assert.equal(empty.json().error.code, 'API_VALIDATION');
      const blank = await call('POST', `/v1/dead-letters/${id}/discard`, { body: { reason: '   ' } });
      assert.equal(blank.json().error.code, 'API_VALIDATION');
      const discarded = await call('POST', `/v1/dead-letters/${id}/discard`, { body: { reason: 'device being replaced' } });
      assert.equal(discarded.status, 200, discarded.text);
      assert.equal(discarded.json().reason, 'device being replaced');
      assert.ok(!(await call('GET', '/v1/dead-letters')).json().items.some((i: { command_id: string }) => i.command_id === id));
      const [audit] = (await auditOf('dead_letter.discarded')).filter((entry) => entry.payload.command_id === id);
      assert.equal(audit?.payload.reason, 'device being replaced');
      assert.equal(audit?.actor, 'user:operator');
      const retry = await call('POST', '/v1/dead-letters/retry', { body: { ids: [id] } });
      assert.equal(retry.json().results[0].error.code, 'DLQ_ENTRY_DISCARDED');
      const twice = await call('POST', `/v1/dead-letters/${id}/discard`, { body: { reason: 'again' } });
      assert.equal(twice.status, 409);
      assert.equal(twice.json().error.code, 'DLQ_ENTRY_DISCARDED');
      const unknown = await call('POST', '/v1/dead-letters/c_nosuch/discard', { body: { reason: 'x' } });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.json().error.code, 'DLQ_ENTRY_NOT_FOUND');
      const tooMany = await call('POST', '/v1/dead-letters/retry', { body: { ids: Array.from({ length: 101 }, (_, i) => `c_${i}`) } });
      assert.equal(tooMany.status, 400);
      const viewer = await call('POST', `/v1/dead-letters/${id}/discard`, { token: tokens.viewer, body: { reason: 'x' } });
      assert.equal(viewer.status, 403);
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
// Without MYSQL_URL and REDIS_URL the real pair is skipped; the same suite ran on the embedded pair above.
if (skipped !== undefined) describe('dead-letter remediation on mysql + redis', () => { it.skip(skipped, () => undefined); });
