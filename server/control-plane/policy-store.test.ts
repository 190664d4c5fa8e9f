import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { systemRandom, systemScheduler } from '../../runtime/system.js';
import { createControlPlane, type ControlPlane } from './control-plane.js';
import { makeDeviceKey, makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

/**
 * The stored policy (issue 12): revisions and their audit, optimistic concurrency, a new revision
 * deciding the next command on another control plane sharing the database, the dry run, bad
 * documents refused with the field's path, and the roles of the three routes.
 */

const adminPassword = 'correct horse battery staple';
const device = 'pol-dev-1';

/** Everyday opcodes for operators, everything for admins, and a deny rule for EXEC_LOCK_SCREEN. */
function policyDocument(revision: number, extraRules: unknown[] = []) {
  return {
    version: 1, revision,
    rules: [
      { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
      { id: 'ops-basic', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_GET_STATUS', 'EXEC_PING_KERNEL', 'EXEC_LOCK_SCREEN'], devices: '*' },
      ...extraRules,
    ],
  };
}

function suite(pair: StorePair): void {
  describe(`stored policy on ${pair.name}`, () => {
    let h: Harness;
    let second: ControlPlane;
    let closeSecondDb: () => Promise<void> = async () => undefined;
    const tokens: Record<string, string> = {};

    const call = async (cp: ControlPlane, method: 'GET' | 'POST' | 'PUT', url: string, options: { token?: string | undefined; body?: unknown; headers?: Record<string, string> } = {}) => {
      const response = await cp.app.inject({
        method, url,
        headers: { ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }), ...(options.headers ?? {}) },
        ...(options.body === undefined ? {} : { payload: options.body as object }),
      });
      return { status: response.statusCode, json: () => response.json() as Record<string, any>, text: response.body, headers: response.headers };
    };
    const send = (cp: ControlPlane, token: string | undefined, opcode: string) =>
      call(cp, 'POST', '/v1/commands', { token, body: { device_id: device, opcode, args: {} } });
    const auditKinds = async () => (await h.cp.auditStore.scan(1, 10_000)) as Array<{ kind: string; actor: string; payload: Record<string, any> }>;

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }), controlPlane: { policy: (await import('../../core/protocol/policy.js')).parsePolicy(policyDocument(7)) } });
      for (const role of ['admin', 'operator', 'viewer'] as const) {
        await h.cp.auth.users.add({ name: role, role, password: adminPassword, nowMs: h.clock.nowMs() });
        tokens[role] = (await call(h.cp, 'POST', '/v1/auth/login', { body: { name: role, password: adminPassword } })).json().token as string;
      }
      const { csrPem } = await makeDeviceKey(device);
      const pairing = await call(h.cp, 'POST', `/v1/devices/${device}/pairing-tokens`, { token: tokens.admin, body: {} });
      const enrolled = await call(h.cp, 'POST', '/v1/enroll', { body: { device_id: device, token: pairing.json().token, csr_pem: csrPem } });
      assert.equal(enrolled.status, 201, enrolled.text);
      // A second control plane on the same database (its own connection pool on MySQL; sql.js is
      // one file one process may open, so it shares the handle) with its own policy cache.
      const sql = pair.sql.name === 'mysql' ? await pair.sql.open(h.dir) : h.db;
      if (sql !== h.db) closeSecondDb = () => sql.close();
      second = await createControlPlane({
        materials: h.materials, stores: { sql, bus: h.bus, kv: h.cp.context.kv }, clock: h.clock, random: systemRandom, scheduler: systemScheduler,
        gatewayUrls: ['wss://127.0.0.1:9443/v1/agent'], scryptParams: { N: 1024, r: 8, p: 1 },
        // Its own --policy is ignored: a revision is stored already.
        policy: (await import('../../core/protocol/policy.js')).defaultPolicy,
      });
    });
    after(async () => {
      await second?.stop();
      await closeSecondDb();
      await h.close();
      await pair.sql.cleanup();
    });

    it('stores the serve-time policy as revision 1 only once, audited; a second control plane\'s policy does not replace it', async () => {
      for (const cp of [h.cp, second]) {
        const got = await call(cp, 'GET', '/v1/policy', { token: tokens.operator });
        assert.equal(got.status, 200, got.text);
        assert.equal(got.json().revision, 1);
        assert.equal(got.json().source, 'stored');
        assert.equal(got.json().created_by, 'system');
        assert.equal(got.headers.etag, '"1"');
        assert.equal(got.json().document.revision, 1, 'the stored document carries the stored revision, not the author\'s 7');
        assert.deepEqual(got.json().document.rules.map((r: { id: string }) => r.id), ['admin-all', 'ops-basic']);
      }
      const revised = (await auditKinds()).filter((e) => e.kind === 'policy.revised');
      assert.equal(revised.length, 1);
      assert.equal(revised[0]!.payload.revision, 1);
      assert.equal(revised[0]!.payload.previous_revision, 0);
    });

    it('roles: a viewer reads nothing, an operator reads and evaluates but may not set', async () => {
      assert.equal((await call(h.cp, 'GET', '/v1/policy', { token: tokens.viewer })).status, 403);
      assert.equal((await call(h.cp, 'GET', '/v1/policy')).status, 401);
      const put = await call(h.cp, 'PUT', '/v1/policy', { token: tokens.operator, body: policyDocument(1) });
      assert.equal(put.status, 403);
      assert.equal(put.json().error.code, 'API_FORBIDDEN');
      const evaluate = await call(h.cp, 'POST', '/v1/policy/evaluate', { token: tokens.viewer, body: { device_id: device, opcode: 'EXEC_GET_STATUS', args: {} } });
      assert.equal(evaluate.status, 403);
    });

    it('refuses a document that does not parse with the bad field\'s path, and stores nothing', async () => {
      const bad = policyDocument(1, [{ id: 'w', effect: 'allow', roles: ['operator'], opcodes: '*', devices: '*', conditions: { timeWindow: { startMinute: 60, endMinute: 1441 } } }]);
      const refused = await call(h.cp, 'PUT', '/v1/policy', { token: tokens.admin, body: bad });
      assert.equal(refused.status, 400, refused.text);
      assert.equal(refused.json().error.code, 'POLICY_INVALID');
      assert.equal(refused.json().error.path, 'rules[2].conditions.timeWindow.endMinute');
      const unknownField = await call(h.cp, 'PUT', '/v1/policy', { token: tokens.admin, body: { ...policyDocument(1), owner: 'x' } });
      assert.equal(unknownField.json().error.path, 'owner');
      const noRevision = await call(h.cp, 'PUT', '/v1/policy', { token: tokens.admin, body: { version: 1, rules: [] } });
      assert.equal(noRevision.status, 428);
      assert.equal(noRevision.json().error.code, 'POLICY_REVISION_REQUIRED');
      assert.equal((await call(h.cp, 'GET', '/v1/policy', { token: tokens.admin })).json().revision, 1);
    });

    it('a document over the usual 64 KiB body limit is stored; evaluate keeps the usual limit', async () => {
      const current = (await h.cp.policy.current()).revision;
      const description = 'x'.repeat(500);
      const many = Array.from({ length: 200 }, (_, i) => ({ id: `bulk-${i}`, description, effect: 'allow', roles: ['admin'], opcodes: '*', devices: { ids: [`bulk-${i}-*`] } }));
      const body = { ...policyDocument(current), rules: [...policyDocument(current).rules, ...many] };
      assert.ok(JSON.stringify(body).length > 100_000);
      const stored = await call(h.cp, 'PUT', '/v1/policy', { token: tokens.admin, body });
      assert.equal(stored.status, 200, stored.text);
      assert.equal(stored.json().document.rules.length, 202);
      const restored = await call(h.cp, 'PUT', '/v1/policy', { token: tokens.admin, body: policyDocument(current + 1) });
      assert.equal(restored.status, 200, restored.text);
      const big = await call(h.cp, 'POST', '/v1/policy/evaluate', { token: tokens.admin, body: { device_id: device, opcode: 'EXEC_GET_STATUS', args: { pad: 'y'.repeat(70_000) } } });
      assert.equal(big.status, 413, big.text);
      assert.equal(big.json().error.code, 'API_BODY_TOO_LARGE');
    });

    it('a new revision denies the next command on the other control plane at once; a stale revision is refused', async () => {
      assert.equal((await send(second, tokens.operator, 'EXEC_LOCK_SCREEN')).status, 201, 'allowed under revision 3');
      const denyLock = { id: 'no-lock', effect: 'deny', roles: '*', opcodes: ['EXEC_LOCK_SCREEN'], devices: { ids: ['pol-*'] } };
      const set = await call(h.cp, 'PUT', '/v1/policy', { token: tokens.admin, body: policyDocument(3, [denyLock]) });
      assert.equal(set.status, 200, set.text);
      assert.equal(set.json().revision, 4);
      const denied = await send(second, tokens.operator, 'EXEC_LOCK_SCREEN');
      assert.equal(denied.status, 403, denied.text);
      assert.equal(denied.json().error.code, 'COMMAND_POLICY_DENIED');
      assert.match(denied.json().error.message, /no-lock/);
      const deniedEntry = (await auditKinds()).filter((e) => e.kind === 'command.denied').at(-1);
      assert.equal(deniedEntry?.payload.policy.revision, 4, 'the denial names the revision that decided');
      // An edit made from revision 3 (If-Match wins over the document's field, which names 4): stale.
      const stale = await call(second, 'PUT', '/v1/policy', { token: tokens.admin, body: policyDocument(4), headers: { 'if-match': '"3"' } });
      assert.equal(stale.status, 409, stale.text);
      assert.equal(stale.json().error.code, 'POLICY_REVISION_STALE');
      assert.equal(stale.json().error.current_revision, 4);
      const viaIfMatch = await call(second, 'PUT', '/v1/policy', { token: tokens.admin, body: { version: 1, rules: policyDocument(0).rules }, headers: { 'if-match': '"4"' } });
      assert.equal(viaIfMatch.status, 200, viaIfMatch.text);
      assert.equal(viaIfMatch.json().revision, 5);
      assert.equal((await send(h.cp, tokens.operator, 'EXEC_LOCK_SCREEN')).status, 201, 'revision 5 allows it again, here too');
      const revisions = (await auditKinds()).filter((e) => e.kind === 'policy.revised');
      assert.deepEqual(revisions.map((e) => [e.payload.revision, e.actor]), [[1, 'system'], [2, 'user:admin'], [3, 'user:admin'], [4, 'user:admin'], [5, 'user:admin']]);
    });

    it('two control planes storing the next revision at once: exactly one wins, the other is stale, one audit entry', async () => {
      const current = (await h.cp.policy.current()).revision;
      const attempts = await Promise.allSettled([h.cp, second].map((cp, index) => cp.policy.set({
        document: policyDocument(current, [{ id: `race-${index}`, effect: 'deny', roles: '*', opcodes: ['EXEC_GET_STATUS'], devices: '*' }]),
        expectedRevision: current, actor: `user:racer-${index}`,
      })));
      const won = attempts.filter((a) => a.status === 'fulfilled');
      const lost = attempts.filter((a): a is PromiseRejectedResult => a.status === 'rejected');
      assert.equal(won.length, 1);
      assert.equal(lost.length, 1);
      assert.equal((lost[0]!.reason as { code?: string }).code, 'POLICY_REVISION_STALE');
      assert.equal((await second.policy.current()).revision, current + 1);
      const raced = (await auditKinds()).filter((e) => e.kind === 'policy.revised' && e.actor.startsWith('user:racer-'));
      assert.equal(raced.length, 1);
    });

    it('evaluate explains a denial (the rule, the window, the missing approvals) and creates nothing', async () => {
      const current = (await call(h.cp, 'GET', '/v1/policy', { token: tokens.admin })).json().revision as number;
      const hour = 60;
      const nowMinute = Math.floor((h.clock.nowMs() % 86_400_000) / 60_000);
      const later = (nowMinute + 2 * hour) % 1440;
      const rules = [
        ...policyDocument(0).rules,
        { id: 'reboot-window', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_GET_PROCESS_LIST'], devices: '*', conditions: { timeWindow: { startMinute: later, endMinute: (later + hour) % 1440 } } },
        { id: 'update-2eyes', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_STAGE_UPDATE'], devices: '*', conditions: { approval: { count: 2, roles: ['approver', 'admin'] } } },
      ];
      assert.equal((await call(h.cp, 'PUT', '/v1/policy', { token: tokens.admin, body: { version: 1, revision: current, rules } })).status, 200);
      const commandsBefore = (await h.db.query<{ n: number }>('SELECT COUNT(*) AS n FROM commands'))[0]!.n;
      const auditBefore = (await auditKinds()).length;

      const windowed = await call(second, 'POST', '/v1/policy/evaluate', { token: tokens.operator, body: { device_id: device, opcode: 'EXEC_GET_PROCESS_LIST', args: {} } });
      assert.equal(windowed.status, 200, windowed.text);
      assert.equal(windowed.json().decision, 'deny');
      assert.equal(windowed.json().reason, 'no rule allows');
      assert.equal(windowed.json().policy_revision, current + 1);
      assert.deepEqual(windowed.json().rules, [{ id: 'reboot-window', effect: 'allow', fate: 'outside_time_window', time_window: { startMinute: later, endMinute: (later + hour) % 1440 } }]);
      const inWindow = await call(second, 'POST', '/v1/policy/evaluate', { token: tokens.operator, body: { device_id: device, opcode: 'EXEC_GET_PROCESS_LIST', args: {}, at_ms: h.clock.nowMs() + 2 * 3_600_000 + 60_000 } });
      assert.equal(inWindow.json().decision, 'allow');
      assert.equal(inWindow.json().rule_id, 'reboot-window');

      const stage = { device_id: device, opcode: 'EXEC_STAGE_UPDATE', args: { version: '1.2.3', sha256: 'a'.repeat(64), size_bytes: 10 } };
      const approvals = await call(h.cp, 'POST', '/v1/policy/evaluate', { token: tokens.operator, body: stage });
      assert.equal(approvals.status, 200, approvals.text);
      assert.equal(approvals.json().decision, 'deny');
      assert.deepEqual(approvals.json().missing_approval, { rule_id: 'update-2eyes', count: 2, roles: ['approver', 'admin'] });
      assert.equal(approvals.json().rules[0].fate, 'approval_missing');

      const unknownDevice = await call(h.cp, 'POST', '/v1/policy/evaluate', { token: tokens.admin, body: { device_id: 'nobody', opcode: 'EXEC_GET_STATUS', args: {} } });
      assert.equal(unknownDevice.json().decision, 'allow');
      assert.equal(unknownDevice.json().device_refusal.code, 'API_DEVICE_NOT_FOUND');

      assert.equal((await h.db.query<{ n: number }>('SELECT COUNT(*) AS n FROM commands'))[0]!.n, commandsBefore, 'no command stored');
      assert.equal((await auditKinds()).length, auditBefore, 'nothing audited');
    });
  });
}

const { pairs } = storePairs();
for (const pair of pairs) suite(pair);
