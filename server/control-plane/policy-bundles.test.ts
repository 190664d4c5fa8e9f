import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { parseStrictJson } from '../../core/protocol/strict-json.js';
import { verifyPolicyBundle } from '../../core/protocol/policy-bundle.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import type { Policy, PolicyRule } from '../../core/protocol/policy.js';
import { defaultPolicy } from '../../core/protocol/policy.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { policyBundleChannels, policyBundleKeys } from '../bus-contract/policy-bundle-keys.js';
import { makeHarness, sqlJsTarget, type Harness } from './test-support.js';
import { PolicyBundlePublisher, policyBundlePublisherLimits, sqlApproverKeys, sqlDeviceTags } from './policy-bundles.js';

const provider = createNodeEd25519Provider();
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('the control plane signs and publishes device policy bundles', () => {
  let harness: Harness;
  let publisher: PolicyBundlePublisher;
  const ready: string[] = [];
  const revisions: string[] = [];

  before(async () => {
    harness = await makeHarness(sqlJsTarget);
    const { cp, db, clock, materials } = harness;
    publisher = new PolicyBundlePublisher({
      context: cp.context, currentPolicy: () => cp.policy.current(), signer: materials.commandSigner,
      deviceTags: sqlDeviceTags(db), approverKeys: sqlApproverKeys(db, () => clock.nowMs()),
    });
    await cp.context.kv.subscribe(policyBundleChannels.ready, (deviceId) => ready.push(deviceId));
    await cp.context.kv.subscribe(policyBundleChannels.revision, (revision) => revisions.push(revision));
    await publisher.start();
  });
  after(async () => {
    await publisher.stop();
    await harness.close();
  });

  it('announces the revision in force once, and again when it changes', async () => {
    await publisher.checkRevision();
    await settle();
    assert.deepEqual(revisions, ['0']);
    assert.equal(await harness.cp.context.kv.get(policyBundleKeys.revision), '0');
  });

  it("signs, on request, a bundle with the device's tags, its rules and the approvers' keys, verifiable with the command key", async () => {
    const { cp, db, clock, materials } = harness;
    await cp.auth.users.add({ name: 'alice', role: 'approver', password: 'correct horse battery', nowMs: clock.nowMs() });
    await cp.auth.users.add({ name: 'olga', role: 'operator', password: 'correct horse battery', nowMs: clock.nowMs() });
    const alicePublic = base64urlFromBytes(provider.publicKeyFromSeed(new Uint8Array(32).fill(3)));
    await db.execute('INSERT INTO user_signing_keys (kid, user_name, public_key, created_at, retired_at) VALUES (?, ?, ?, ?, NULL)', ['uk-alice', 'alice', alicePublic, clock.nowMs()]);
    await db.execute('INSERT INTO user_signing_keys (kid, user_name, public_key, created_at, retired_at) VALUES (?, ?, ?, ?, NULL)', ['uk-olga', 'olga', alicePublic.replace(/^./, 'B'), clock.nowMs()]);
    await db.execute('INSERT INTO device_tags (device_id, tag) VALUES (?, ?)', ['dev-7', 'kiosk']);
    await cp.policy.set({
      document: {
        version: 1, revision: 0,
        rules: [
          ...defaultPolicy.rules,
          { id: 'kiosk-no-lock', effect: 'deny', roles: '*', opcodes: ['EXEC_LOCK_SCREEN'], devices: { tags: ['kiosk'] } },
          { id: 'other-tag', effect: 'deny', roles: '*', opcodes: '*', devices: { tags: ['vault'] } },
          { id: 'updates-approved', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_STAGE_UPDATE'], devices: '*', conditions: { approval: { count: 1, roles: ['approver'] } } },
        ],
      },
      expectedRevision: 0, actor: 'user:test',
    });
    publisher.request('dev-7');
    publisher.request('dev-7');
    publisher.request('../etc');
    await publisher.idle();
    await settle();
    assert.deepEqual(ready, ['dev-7']);
    const text = await cp.context.kv.get(policyBundleKeys.bundle('dev-7'));
    assert.ok(text !== null);
    const verified = verifyPolicyBundle({
      signed: parseStrictJson(text), deviceId: 'dev-7', provider, nowMs: clock.nowMs(),
      resolveKey: (kid) => (kid === materials.commandSigner.kid ? materials.commandSigner.publicKey : undefined),
    });
    assert.equal(verified.bundle.version, 1);
    assert.deepEqual(verified.bundle.device_tags, ['kiosk']);
    assert.deepEqual(verified.policy.rules.map((rule) => rule.id), ['operate-basic', 'collect-artifacts', 'approve-updates', 'admin-all', 'kiosk-no-lock', 'updates-approved']);
    // Only approvers' keys: the rule takes approvals from role approver, so olga's key is not carried.
    assert.deepEqual(verified.bundle.approvers, [{ approver: 'alice', role: 'approver', kid: 'uk-alice', public_key: alicePublic }]);
  });

  it('canonicalizes the bundle once per publish and stores exactly its canonical text (issue 17)', async () => {
    const { cp, clock, materials } = harness;
    // Canonical JSON lists an object's own keys once per pass over it: the rule's proxy counts the passes.
    let passes = 0;
    const rule = new Proxy({ id: 'counted', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' } as PolicyRule, {
      ownKeys(target) {
        passes += 1;
        return Reflect.ownKeys(target);
      },
    });
    const policy = { version: 1, revision: 9, rules: [rule] } as unknown as Policy;
    const counted = new PolicyBundlePublisher({
      context: cp.context, signer: materials.commandSigner,
      currentPolicy: async () => ({ revision: 9, policy, documentSha256: '0'.repeat(64), createdBy: null, createdAtMs: null }),
    });
    assert.equal(await counted.publish('dev-9'), 9);
    // Signing input, size check and stored text were three passes before.
    assert.equal(passes, 1);
    const text = await cp.context.kv.get(policyBundleKeys.bundle('dev-9'));
    assert.ok(text !== null);
    const signed = parseStrictJson(text);
    assert.equal(text, canonicalize(signed));
    const verified = verifyPolicyBundle({
      signed, deviceId: 'dev-9', provider, nowMs: clock.nowMs(),
      resolveKey: (kid) => (kid === materials.commandSigner.kid ? materials.commandSigner.publicKey : undefined),
    });
    assert.deepEqual(verified.policy.rules.map((entry) => entry.id), ['counted']);
  });

  it('bounds the requests waiting to be signed', () => {
    const blocked = new PolicyBundlePublisher({
      context: harness.cp.context, currentPolicy: () => new Promise(() => {}), signer: harness.materials.commandSigner,
    });
    for (let index = 0; index < policyBundlePublisherLimits.pendingMax + 5; index += 1) blocked.request(`dev-${index}`);
    assert.equal(blocked.droppedTotal, 5);
    // A device already waiting is not a new entry: not dropped.
    blocked.request('dev-0');
    assert.equal(blocked.droppedTotal, 5);
  });
});
