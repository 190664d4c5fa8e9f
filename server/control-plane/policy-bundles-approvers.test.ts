import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { CommandTtlMsMax } from '../../core/protocol/messages/command.js';
import { parsePolicy } from '../../core/protocol/policy.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { policyBundleChannels, policyBundleKeys } from '../bus-contract/policy-bundle-keys.js';
import { PolicyBundlePublisher, sqlApproverKeys, sqlDeviceTags } from './policy-bundles.js';
import { signingKid } from './signing-keys.js';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

/**
 * Security review finding 2 (2026-12-05), the device's half: a removed or demoted approver, or a
 * new approval signing key, changes the approver keys bundles carry, so the control plane
 * announces the change (policyBundleChannels.inputs, policyBundleKeys.inputsChangedAt) and
 * gateways ask for fresh bundles; the next bundle no longer lists the removed approver's key.
 * A retired key stays listed (a command released with it may still be on its way) until it ages
 * out past the longest command lifetime, which is a change too. On both store pairs.
 */

const provider = createNodeEd25519Provider();
const password = 'correct horse battery staple';
const policy = parsePolicy({
  version: 1,
  rules: [
    { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
    { id: 'lock-approved', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_LOCK_SCREEN'], devices: '*', conditions: { approval: { count: 1, roles: ['approver'] } } },
  ],
});

function suite(pair: StorePair): void {
  describe(`approver changes re-cut policy bundles on ${pair.name}`, () => {
    let h: Harness;
    let publisher: PolicyBundlePublisher;
    const notices: string[] = [];
    const tag = randomBytes(3).toString('hex');
    const device = `pb-${tag}`;
    const [ap1, ap2, ap3] = ['apa', 'apb', 'apc'].map((name) => `${name}${tag}`) as [string, string, string];
    const kids: Record<string, string> = {};

    const addKey = async (user: string): Promise<string> => {
      const publicKey = provider.publicKeyFromSeed(new Uint8Array(randomBytes(32)));
      const kid = signingKid(publicKey);
      await h.db.execute('INSERT INTO user_signing_keys (kid, user_name, public_key, created_at, retired_at) VALUES (?, ?, ?, ?, NULL)', [kid, user, base64urlFromBytes(publicKey), h.clock.nowMs()]);
      return kid;
    };
    const bundleApprovers = async (): Promise<string[]> => {
      await publisher.publish(device);
      const text = await h.cp.context.kv.get(policyBundleKeys.bundle(device));
      assert.ok(text !== null);
      return ((JSON.parse(text) as { bundle: { approvers?: Array<{ approver: string }> } }).bundle.approvers ?? []).map((entry) => entry.approver).sort();
    };
    /** One check, then (bounded: Redis pub/sub is asynchronous) the notices it published. */
    const check = async (expected: number): Promise<void> => {
      await publisher.checkRevision();
      for (let attempt = 0; attempt < 200 && notices.length < expected; attempt += 1) await new Promise((resolve) => setTimeout(resolve, 10));
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(notices.length, expected, JSON.stringify(notices));
    };

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }), controlPlane: { policy } });
      for (const name of [ap1, ap2, ap3]) {
        await h.cp.auth.users.add({ name, role: 'approver', password, nowMs: h.clock.nowMs() });
      }
      kids[ap1] = await addKey(ap1);
      kids[ap2] = await addKey(ap2);
      publisher = new PolicyBundlePublisher({
        context: h.cp.context, currentPolicy: () => h.cp.policy.current(), signer: h.materials.commandSigner,
        deviceTags: sqlDeviceTags(h.db), approverKeys: sqlApproverKeys(h.db, () => h.clock.nowMs()),
      });
      await h.cp.context.kv.subscribe(policyBundleChannels.inputs, (text) => notices.push(text));
    });
    after(async () => {
      await publisher.stop();
      await h.close();
      await pair.sql.cleanup();
    });

    it('the first look is a baseline, and nothing changed is nothing announced', async () => {
      await check(0);
      await check(0);
      assert.equal(await h.cp.context.kv.get(policyBundleKeys.inputsChangedAt), null);
      assert.deepEqual(await bundleApprovers(), [ap1, ap2].sort());
    });

    it('a removed approver: announced (time stored for gateways), and the next bundle no longer lists their key', async () => {
      await h.cp.auth.users.remove({ name: ap1 });
      h.clock.advance(1_000);
      await check(1);
      assert.equal(notices[0], String(h.clock.nowMs()));
      assert.equal(await h.cp.context.kv.get(policyBundleKeys.inputsChangedAt), String(h.clock.nowMs()));
      assert.deepEqual(await bundleApprovers(), [ap2]);
      await check(1);
    });

    it('a demoted approver and a newly registered key are announced too', async () => {
      await h.cp.auth.users.setRole({ name: ap2, role: 'viewer' });
      h.clock.advance(1_000);
      await check(2);
      assert.deepEqual(await bundleApprovers(), []);
      kids[ap3] = await addKey(ap3);
      h.clock.advance(1_000);
      await check(3);
      assert.deepEqual(await bundleApprovers(), [ap3]);
    });

    it('a retired key stays listed while a command approved with it may be on its way; its aging out is announced', async () => {
      const replacement = await addKey(ap3);
      await h.db.execute('UPDATE user_signing_keys SET retired_at = ? WHERE kid = ?', [h.clock.nowMs(), kids[ap3]!]);
      await check(4); // the new key
      h.clock.advance(CommandTtlMsMax + 1);
      await check(5); // the retired one aged out
      const text = await (async () => { await publisher.publish(device); return h.cp.context.kv.get(policyBundleKeys.bundle(device)); })();
      assert.deepEqual((JSON.parse(text!) as { bundle: { approvers: Array<{ kid: string }> } }).bundle.approvers.map((entry) => entry.kid), [replacement]);
    });

    it('a failed announcement is repeated on the next tick (the digest is stored only after it)', async () => {
      const kv = h.cp.context.kv;
      const publish = kv.publish.bind(kv);
      let failures = 0;
      kv.publish = async (channel, message) => {
        if (channel === policyBundleChannels.inputs && failures === 0) {
          failures += 1;
          throw new Error('publish lost (test)');
        }
        return publish(channel, message);
      };
      try {
        await addKey(ap3);
        h.clock.advance(1_000);
        await assert.rejects(publisher.checkRevision(), /publish lost/);
        await check(6);
        await check(6);
      } finally {
        kv.publish = publish;
      }
      assert.equal(failures, 1);
    });

    it('a change made while the key/value store was wiped is announced, not taken for a baseline', async () => {
      await h.cp.context.kv.del(policyBundleKeys.approversDigest);
      await addKey(ap3);
      h.clock.advance(1_000);
      await check(7);
      assert.equal(await h.cp.context.kv.get(policyBundleKeys.approversDigest) !== null, true);
      await check(7);
    });
  });
}

const { pairs, skipped } = storePairs();
if (skipped !== undefined) console.log(`# ${skipped}`);
for (const pair of pairs) suite(pair);
