import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parsePolicy } from '../../core/protocol/policy.js';
import { kvKeys } from '../bus-contract/streams.js';
import type { ControlPlane } from './control-plane.js';
import { makeDeviceKey, makeHarness, openSecondControlPlane, storePairs, type Harness, type StorePair } from './test-support.js';

/**
 * Issue 12's policy conditions end to end, through the API on the embedded pair and on MySQL +
 * Redis: device tags (set, list by tag, audited, roles), a rate limit per actor and device whose
 * N+1th command is refused COMMAND_RATE_LIMITED on this control plane and on a second one sharing
 * the stores, and admits again once the window has passed; a required reason (refused without,
 * audited with); quiet hours for a group; posture (online); a bad condition refused with its path.
 */

const password = 'correct horse battery staple';
const device = 'cond-dev-1';
const windowMs = 60_000;

function policyDocument(revision: number, quietStartMinute: number) {
  return {
    version: 1, revision,
    rules: [
      { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
      {
        id: 'lab-status', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_GET_STATUS'], devices: { tags: ['group:lab'] },
        conditions: { rateLimit: { per: ['actor', 'device'], count: 3, windowMs } },
      },
      { id: 'lab-lock', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_LOCK_SCREEN'], devices: { tags: ['group:lab'] }, conditions: { reasonRequired: true } },
      { id: 'lab-list', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_GET_PROCESS_LIST'], devices: { tags: ['group:lab'] }, conditions: { posture: { online: true } } },
      { id: 'lab-ping', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_PING_KERNEL'], devices: { tags: ['group:lab'] } },
      {
        id: 'night-quiet', effect: 'deny', roles: '*', opcodes: ['EXEC_PING_KERNEL'], devices: { tags: ['group:night'] },
        conditions: { quietHours: { startMinute: quietStartMinute, endMinute: (quietStartMinute + 30) % 1440 } },
      },
    ],
  };
}

function suite(pair: StorePair): void {
  describe(`policy conditions on ${pair.name}`, () => {
    let h: Harness;
    let second: ControlPlane;
    let closeSecond: () => Promise<void> = async () => undefined;
    const tokens: Record<string, string> = {};

    const call = async (cp: ControlPlane, method: 'GET' | 'POST' | 'PUT', url: string, options: { token?: string | undefined; body?: unknown } = {}) => {
      const response = await cp.app.inject({
        method, url, headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
        ...(options.body === undefined ? {} : { payload: options.body as object }),
      });
      return { status: response.statusCode, json: () => response.json() as Record<string, any>, text: response.body, headers: response.headers };
    };
    const send = (cp: ControlPlane, opcode: string, extra: Record<string, unknown> = {}) =>
      call(cp, 'POST', '/v1/commands', { token: tokens.operator, body: { device_id: device, opcode, args: {}, ...extra } });
    const audit = async () => (await h.cp.auditStore.scan(1, 10_000)) as Array<{ kind: string; actor: string; subject: string; payload: Record<string, any> }>;
    const minuteOfDay = () => Math.floor((h.clock.nowMs() % 86_400_000) / 60_000);

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }) });
      for (const role of ['admin', 'operator', 'viewer'] as const) {
        await h.cp.auth.users.add({ name: role, role, password, nowMs: h.clock.nowMs() });
        tokens[role] = (await call(h.cp, 'POST', '/v1/auth/login', { body: { name: role, password } })).json().token as string;
      }
      const { csrPem } = await makeDeviceKey(device);
      const pairing = await call(h.cp, 'POST', `/v1/devices/${device}/pairing-tokens`, { token: tokens.admin, body: {} });
      const enrolled = await call(h.cp, 'POST', '/v1/enroll', { body: { device_id: device, token: pairing.json().token, csr_pem: csrPem } });
      assert.equal(enrolled.status, 201, enrolled.text);
      const stored = await call(h.cp, 'PUT', '/v1/policy', { token: tokens.admin, body: policyDocument(0, (minuteOfDay() + 720) % 1440) });
      assert.equal(stored.status, 200, stored.text);
      // A second control plane sharing the database and the key/value store (its own connection pool on MySQL).
      ({ cp: second, close: closeSecond } = await openSecondControlPlane(h, pair));
    });
    after(async () => {
      await closeSecond();
      await h.close();
      await pair.sql.cleanup();
    });

    it('tags: an operator sets those no rule names (audited), an admin those it does, a viewer none, bad tags are refused, the list filters by tag', async () => {
      assert.equal((await send(h.cp, 'EXEC_PING_KERNEL')).json().error.code, 'COMMAND_POLICY_DENIED', 'untagged: no rule selects the device');
      const viewer = await call(h.cp, 'PUT', `/v1/devices/${device}/tags`, { token: tokens.viewer, body: { tags: ['group:lab'] } });
      assert.equal(viewer.status, 403);
      for (const tags of [['Group:Lab'], ['a b'], Array.from({ length: 33 }, (_, i) => `t${i}`), ['x'.repeat(65)]]) {
        const bad = await call(h.cp, 'PUT', `/v1/devices/${device}/tags`, { token: tokens.operator, body: { tags } });
        assert.equal(bad.status, 400, JSON.stringify(tags));
        assert.equal(bad.json().error.code, 'API_VALIDATION');
      }
      // An operator sets tags no rule selects on; a tag the policy names (group:lab) needs an admin (decision 0013).
      const own = await call(h.cp, 'PUT', `/v1/devices/${device}/tags`, { token: tokens.operator, body: { tags: ['site-2'] } });
      assert.equal(own.status, 200, own.text);
      const ownEntry = (await audit()).filter((e) => e.kind === 'device.tags_set').at(-1);
      assert.equal(ownEntry?.actor, 'user:operator');
      assert.deepEqual(ownEntry?.payload, { tags: ['site-2'], previous: [] });
      const named = await call(h.cp, 'PUT', `/v1/devices/${device}/tags`, { token: tokens.operator, body: { tags: ['site-2', 'group:lab'] } });
      assert.equal(named.status, 403, named.text);
      assert.equal(named.json().error.code, 'API_DEVICE_TAG_POLICY_NAMED');
      const set = await call(h.cp, 'PUT', `/v1/devices/${device}/tags`, { token: tokens.admin, body: { tags: ['site-2', 'group:lab'] } });
      assert.equal(set.status, 200, set.text);
      assert.deepEqual(set.json(), { device_id: device, tags: ['group:lab', 'site-2'] });
      assert.equal((await call(h.cp, 'PUT', '/v1/devices/nobody/tags', { token: tokens.operator, body: { tags: [] } })).json().error.code, 'API_DEVICE_NOT_FOUND');
      const listed = await call(h.cp, 'GET', '/v1/devices?tag=group:lab&limit=10', { token: tokens.viewer });
      assert.deepEqual(listed.json().items.map((d: { id: string }) => d.id), [device]);
      assert.deepEqual(listed.json().items[0].tags, ['group:lab', 'site-2']);
      assert.deepEqual((await call(h.cp, 'GET', '/v1/devices?tag=group:other', { token: tokens.viewer })).json().items, []);
      const entry = (await audit()).filter((e) => e.kind === 'device.tags_set').at(-1);
      assert.equal(entry?.actor, 'user:admin');
      assert.deepEqual(entry?.payload, { tags: ['group:lab', 'site-2'], previous: ['site-2'] });
      assert.equal((await send(h.cp, 'EXEC_PING_KERNEL')).status, 201, 'now the lab rule selects it by its group tag');
    });

    it('rate limit: the 4th command in the window is refused COMMAND_RATE_LIMITED on both control planes, and admitted again after the window', async () => {
      for (let index = 0; index < 3; index += 1) {
        const created = await send(index === 1 ? second : h.cp, 'EXEC_GET_STATUS');
        assert.equal(created.status, 201, created.text);
      }
      for (const cp of [h.cp, second]) {
        const refused = await send(cp, 'EXEC_GET_STATUS');
        assert.equal(refused.status, 429, refused.text);
        assert.equal(refused.json().error.code, 'COMMAND_RATE_LIMITED');
        assert.match(refused.json().error.message, /lab-status.*3 per 60000 ms per actor\+device/);
        assert.equal(refused.headers['retry-after'], '6');
      }
      const explained = await call(second, 'POST', '/v1/policy/evaluate', { token: tokens.operator, body: { device_id: device, opcode: 'EXEC_GET_STATUS', args: {} } });
      assert.equal(explained.json().refusal_code, 'COMMAND_RATE_LIMITED');
      const rule = explained.json().rules.find((r: { id: string }) => r.id === 'lab-status');
      assert.deepEqual([rule.fate, rule.rate_limit.count_in_window, rule.rate_limit.remaining], ['rate_limited', 3, 0]);
      const denied = (await audit()).filter((e) => e.kind === 'command.denied').at(-1);
      assert.equal(denied?.payload.policy.blocked.kind, 'rate_limit');
      assert.equal(denied?.payload.policy.blocked.rule_id, 'lab-status');
      // An admin is not limited by the operators' rule; the refused attempts did not count.
      assert.equal((await call(h.cp, 'POST', '/v1/commands', { token: tokens.admin, body: { device_id: device, opcode: 'EXEC_GET_STATUS', args: {} } })).status, 201);
      h.clock.advance(windowMs + 2 * (windowMs / 10));
      assert.equal((await send(second, 'EXEC_GET_STATUS')).status, 201, 'a new window');
    });

    it('reason: a command without one is refused COMMAND_REASON_REQUIRED; the reason given is in the audit entry', async () => {
      const refused = await send(h.cp, 'EXEC_LOCK_SCREEN');
      assert.equal(refused.status, 400, refused.text);
      assert.equal(refused.json().error.code, 'COMMAND_REASON_REQUIRED');
      assert.equal((await send(h.cp, 'EXEC_LOCK_SCREEN', { reason: '   ' })).json().error.code, 'API_VALIDATION', 'blank is no reason');
      const created = await send(h.cp, 'EXEC_LOCK_SCREEN', { reason: 'ticket 4711: user reported a stolen laptop' });
      assert.equal(created.status, 201, created.text);
      const entry = (await audit()).find((e) => e.kind === 'command.created' && e.subject === `command:${created.json().id}`);
      assert.equal(entry?.payload.policy.stated_reason, 'ticket 4711: user reported a stolen laptop');
    });

    it('posture: a rule demanding online refuses COMMAND_POSTURE_DENIED while the device is offline, and allows once it is online', async () => {
      const refused = await send(h.cp, 'EXEC_GET_PROCESS_LIST', { args: { limit: 5 } });
      assert.equal(refused.status, 403, refused.text);
      assert.equal(refused.json().error.code, 'COMMAND_POSTURE_DENIED');
      const explained = await call(h.cp, 'POST', '/v1/policy/evaluate', { token: tokens.operator, body: { device_id: device, opcode: 'EXEC_GET_PROCESS_LIST', args: { limit: 5 } } });
      assert.equal(explained.json().rules.find((r: { id: string }) => r.id === 'lab-list').posture_field, 'online');
      assert.deepEqual(explained.json().facts.posture, { online: false, complianceState: 'unknown' });
      await h.cp.context.kv.set(kvKeys.presence(device), 'gw-test', { ttlMs: 60_000 });
      const created = await send(h.cp, 'EXEC_GET_PROCESS_LIST', { args: { limit: 5 } });
      assert.equal(created.status, 201, created.text);
      await h.cp.context.kv.del(kvKeys.presence(device));
    });

    it('quiet hours: a group\'s deny rule refuses COMMAND_QUIET_HOURS inside its window only', async () => {
      assert.equal((await send(h.cp, 'EXEC_PING_KERNEL')).status, 201, 'not in the night group yet');
      await call(h.cp, 'PUT', `/v1/devices/${device}/tags`, { token: tokens.admin, body: { tags: ['group:lab', 'group:night'] } });
      assert.equal((await send(h.cp, 'EXEC_PING_KERNEL')).status, 201, 'outside the quiet window');
      const current = await h.cp.policy.current();
      const document = policyDocument(current.revision, minuteOfDay());
      assert.equal((await call(h.cp, 'PUT', '/v1/policy', { token: tokens.admin, body: document })).status, 200);
      const refused = await send(second, 'EXEC_PING_KERNEL');
      assert.equal(refused.status, 403, refused.text);
      assert.equal(refused.json().error.code, 'COMMAND_QUIET_HOURS');
      assert.match(refused.json().error.message, /night-quiet/);
    });

    it('a policy whose new condition does not parse is refused with the bad field\'s path', async () => {
      const current = await h.cp.policy.current();
      const cases: Array<[unknown, string]> = [
        [{ rateLimit: { per: ['actor', 'planet'], count: 3, windowMs } }, 'rules[6].conditions.rateLimit.per[1]'],
        [{ rateLimit: { per: ['actor'], count: 3, windowMs: 10 } }, 'rules[6].conditions.rateLimit.windowMs'],
        [{ posture: { agentVersionAtLeast: 'v1' } }, 'rules[6].conditions.posture.agentVersionAtLeast'],
        [{ quietHours: { startMinute: 0, endMinute: 60 } }, 'rules[6].conditions.quietHours'],
      ];
      for (const [conditions, path] of cases) {
        const document = policyDocument(current.revision, 0);
        document.rules.push({ id: 'extra', effect: 'allow', roles: ['operator'], opcodes: '*', devices: '*', conditions } as never);
        const refused = await call(h.cp, 'PUT', '/v1/policy', { token: tokens.admin, body: document });
        assert.equal(refused.status, 400, refused.text);
        assert.equal(refused.json().error.path, path);
      }
      assert.doesNotThrow(() => parsePolicy(policyDocument(1, 0)));
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('policy conditions on mysql + redis', { skip: skipped }, () => {});
