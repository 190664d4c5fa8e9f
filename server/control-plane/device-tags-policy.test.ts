import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { policyBundleChannels, policyBundleKeys } from '../bus-contract/policy-bundle-keys.js';
import { latestRevisionLocked } from './policy-store.js';
import { makeDeviceKey, makeHarness, openSecondControlPlane, storePairs, type Harness, type SecondControlPlane, type StorePair } from './test-support.js';

/**
 * Security review finding 1 (2026-12-05, decision 0013): tags a policy rule selects on are
 * security attributes. An operator may not remove (or add) such a tag, so an admin's deny rule on
 * `prod` holds after the operator's attempt; tags no rule names stay the operator's. A tag change
 * asks for a fresh policy bundle, so the device's own check judges with the new tags. On the
 * embedded pair and on MySQL + Redis.
 */

const password = 'correct horse battery staple';
const device = 'tags-dev-1';

const policyDocument = {
  version: 1, revision: 0,
  rules: [
    { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: ['EXEC_GET_STATUS'], devices: '*' },
    { id: 'ops-ping', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_PING_KERNEL'], devices: '*' },
    { id: 'freeze-prod', effect: 'deny', roles: '*', opcodes: ['EXEC_PING_KERNEL'], devices: { tags: ['prod'] } },
  ],
};

/** Waits (bounded: pub/sub and the publisher's drain are asynchronous) until `check` holds. */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt += 1) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`never: ${what}`);
}

function suite(pair: StorePair): void {
  describe(`device tags a policy selects on (decision 0013) on ${pair.name}`, () => {
    let h: Harness;
    let second: SecondControlPlane | undefined;
    const tokens: Record<string, string> = {};
    const requests: string[] = [];

    const call = async (method: 'GET' | 'POST' | 'PUT', url: string, options: { token?: string; body?: unknown } = {}) => {
      const response = await h.cp.app.inject({
        method, url, headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
        ...(options.body === undefined ? {} : { payload: options.body as object }),
      });
      return { status: response.statusCode, json: () => response.json() as Record<string, any>, text: response.body };
    };
    const ping = () => call('POST', '/v1/commands', { token: tokens.operator!, body: { device_id: device, opcode: 'EXEC_PING_KERNEL', args: {} } });
    const putTags = (role: 'admin' | 'operator', tags: string[]) => call('PUT', `/v1/devices/${device}/tags`, { token: tokens[role]!, body: { tags } });
    const tagsNow = async () => (await call('GET', `/v1/devices/${device}`, { token: tokens.operator! })).json().tags as string[];
    const tagAudits = async () => ((await h.cp.auditStore.scan(1, 10_000)) as Array<{ kind: string; actor: string; payload: Record<string, any> }>).filter((e) => e.kind === 'device.tags_set');
    const bundleTags = async (): Promise<string[] | undefined> => {
      const text = await h.cp.context.kv.get(policyBundleKeys.bundle(device));
      return text === null ? undefined : (JSON.parse(text) as { bundle: { device_tags?: string[] } }).bundle.device_tags;
    };

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }) });
      for (const role of ['admin', 'operator'] as const) {
        await h.cp.auth.users.add({ name: role, role, password, nowMs: h.clock.nowMs() });
        tokens[role] = (await call('POST', '/v1/auth/login', { body: { name: role, password } })).json().token as string;
      }
      const { csrPem } = await makeDeviceKey(device);
      const pairing = await call('POST', `/v1/devices/${device}/pairing-tokens`, { token: tokens.admin!, body: {} });
      const enrolled = await call('POST', '/v1/enroll', { body: { device_id: device, token: pairing.json().token, csr_pem: csrPem } });
      assert.equal(enrolled.status, 201, enrolled.text);
      const stored = await call('PUT', '/v1/policy', { token: tokens.admin!, body: policyDocument });
      assert.equal(stored.status, 200, stored.text);
      await h.cp.context.kv.subscribe(policyBundleChannels.requests, (deviceId) => requests.push(deviceId));
      // The bundle publisher listens for requests once the control plane runs.
      await h.cp.start();
      // A second control plane on the same stores, so the refusal is not one process's memory.
      second = await openSecondControlPlane(h, pair);
    });
    after(async () => {
      await second?.close();
      await h.close();
      await pair.sql.cleanup();
    });

    it("the reviewer's scenario: the operator cannot drop `prod` to get around the admin's deny rule; the command stays refused", async () => {
      assert.equal((await putTags('admin', ['prod'])).status, 200);
      const refused = await ping();
      assert.equal(refused.status, 403, refused.text);
      assert.equal(refused.json().error.code, 'COMMAND_POLICY_DENIED');
      const auditsBefore = (await tagAudits()).length;

      const dropped = await putTags('operator', []);
      assert.equal(dropped.status, 403, dropped.text);
      assert.equal(dropped.json().error.code, 'API_DEVICE_TAG_POLICY_NAMED');
      assert.match(dropped.json().error.message, /prod/);
      assert.deepEqual(await tagsNow(), ['prod'], 'the refused change changed nothing');
      assert.equal((await tagAudits()).length, auditsBefore, 'and recorded no tag change');

      const still = await ping();
      assert.equal(still.status, 403, still.text);
      assert.equal(still.json().error.code, 'COMMAND_POLICY_DENIED');
    });

    it('adding a tag the policy names is refused to an operator too; tags no rule names are the operator\'s to change, keeping the named ones', async () => {
      await putTags('admin', []);
      const added = await putTags('operator', ['prod']);
      assert.equal(added.status, 403, added.text);
      assert.equal(added.json().error.code, 'API_DEVICE_TAG_POLICY_NAMED');
      assert.deepEqual(await tagsNow(), []);

      await putTags('admin', ['prod']);
      const own = await putTags('operator', ['prod', 'site-2']);
      assert.equal(own.status, 200, own.text);
      assert.deepEqual(own.json().tags, ['prod', 'site-2']);
      const entry = (await tagAudits()).at(-1);
      assert.equal(entry?.actor, 'user:operator');
      assert.deepEqual(entry?.payload, { tags: ['prod', 'site-2'], previous: ['prod'] });
      assert.equal((await putTags('operator', ['prod'])).status, 200, 'and to remove');
    });

    it('an admin may remove a tag the policy names (audited); the deny rule no longer selects the device', async () => {
      const removed = await putTags('admin', []);
      assert.equal(removed.status, 200, removed.text);
      const entry = (await tagAudits()).at(-1);
      assert.equal(entry?.actor, 'user:admin');
      assert.deepEqual(entry?.payload, { tags: [], previous: ['prod'] });
      assert.equal((await ping()).status, 201);
    });

    it('a tag change asks for a fresh policy bundle, signed with the new tags (the device does not keep judging with the old ones)', async () => {
      await putTags('admin', ['prod']);
      await eventually('the bundle carries prod', async () => JSON.stringify(await bundleTags()) === JSON.stringify(['prod']));
      const asked = requests.length;
      assert.ok(asked > 0 && requests.every((id) => id === device));
      await putTags('admin', ['prod', 'site-9']);
      await eventually('the bundle carries the new tags', async () => JSON.stringify(await bundleTags()) === JSON.stringify(['prod', 'site-9']));
      assert.ok(requests.length > asked);
    });

    it('judged against the revision in force at the commit (review finding 4): a revision naming the tag, stored between the guard\'s read and the commit, refuses the change', async () => {
      await putTags('admin', ['prod']);
      const policy = h.cp.policy;
      const current = policy.current.bind(policy);
      let stored: number | undefined;
      policy.current = async () => {
        const answer = await current();
        // Only the tag route's read (the bundle publisher reads the policy too, on its own ticks).
        if (stored === undefined && (new Error().stack ?? '').includes('policyTagGuard')) {
          const canary = { ...policyDocument, rules: [...policyDocument.rules, { id: 'freeze-canary', effect: 'deny', roles: '*', opcodes: ['EXEC_PING_KERNEL'], devices: { tags: ['canary'] } }] };
          stored = (await policy.set({ document: { ...canary, revision: answer.revision }, expectedRevision: answer.revision, actor: 'admin' })).revision;
        }
        return answer;
      };
      let added;
      try {
        added = await putTags('operator', ['canary', 'prod']);
      } finally {
        policy.current = current;
      }
      assert.ok(stored !== undefined, 'a revision was stored between the guard\'s read and the commit');
      assert.equal(added.status, 403, added.text);
      assert.equal(added.json().error.code, 'API_DEVICE_TAG_POLICY_NAMED');
      assert.match(added.json().error.message, new RegExp(`canary.*revision ${stored}`));
      assert.deepEqual(await tagsNow(), ['prod'], 'nothing changed');
    });

    it('on MySQL the guard\'s in-transaction read holds a new revision back until the tag change commits (SQLite: one transaction at a time)', { skip: pair.sql.name !== 'mysql' ? 'MySQL only' : false }, async () => {
      const { revision } = await h.cp.policy.current();
      let committed = false;
      let storedBeforeCommit: boolean | undefined;
      let revising: Promise<void> | undefined;
      await h.db.transaction(async (tx) => {
        assert.equal(await latestRevisionLocked(tx), revision);
        revising = h.cp.policy.set({ document: { ...policyDocument, revision }, expectedRevision: revision, actor: 'admin' }).then(() => { storedBeforeCommit = !committed; });
        // Round trips on this transaction while the revision's insert is on its way (it waits for the lock).
        for (let i = 0; i < 50; i += 1) await tx.query('SELECT 1 AS one');
        assert.equal(storedBeforeCommit, undefined, 'the new revision did not commit while the lock was held');
      });
      committed = true;
      await revising;
      assert.equal(storedBeforeCommit, false);
      assert.equal((await h.cp.policy.current()).revision, revision + 1);
    });
  });
}

const { pairs, skipped } = storePairs();
if (skipped !== undefined) console.log(`# ${skipped}`);
for (const pair of pairs) suite(pair);
