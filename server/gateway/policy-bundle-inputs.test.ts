import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { policyBundleChannels, policyBundleKeys } from '../bus-contract/policy-bundle-keys.js';
import { policyBundlePushWorld as world, policyWorldNowMs as nowMs, testPolicyBundle as bundle } from './test-support.js';

/**
 * Security review finding 2 (2026-12-05), the gateway's half: when the approvers' keys or roles
 * change (a control plane announces the time on policyBundleChannels.inputs and stores it under
 * policyBundleKeys.inputsChangedAt), every device held here is asked for again, and a stored
 * bundle issued before that time is stale at AUTH; a missed notice is caught at the next sweep.
 */

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('the gateway re-asks for bundles when the approvers change', () => {
  it('an inputs notice asks for every device held here; a stale one (not later than known) asks for nothing', async () => {
    const w = world();
    await w.start();
    w.connected.add('dev-a').add('dev-b');
    await w.kv.publish(policyBundleChannels.inputs, String(nowMs));
    await settle();
    assert.deepEqual(w.requests.sort(), ['dev-a', 'dev-b']);
    await w.kv.publish(policyBundleChannels.inputs, String(nowMs));
    await w.kv.publish(policyBundleChannels.inputs, 'not a time');
    await settle();
    assert.equal(w.requests.length, 2);
  });

  it('after AUTH: a stored bundle issued before the approvers changed is sent meanwhile and a new one asked for; one issued since is current', async () => {
    const w = world();
    await w.kv.set(policyBundleKeys.inputsChangedAt, String(nowMs - 1_000));
    await w.start();
    w.connected.add('dev-before').add('dev-after');
    await w.kv.set(policyBundleKeys.revision, '3');
    await w.kv.set(policyBundleKeys.bundle('dev-before'), canonicalize(bundle('dev-before', 3, nowMs - 1_001)));
    await w.kv.set(policyBundleKeys.bundle('dev-after'), canonicalize(bundle('dev-after', 3, nowMs - 1_000)));
    await w.push.onAuthenticated('dev-before');
    await w.push.onAuthenticated('dev-after');
    await settle();
    assert.deepEqual(w.sent.map((s) => s.deviceId), ['dev-before', 'dev-after']);
    assert.deepEqual(w.requests, ['dev-before']);
  });

  it('a missed notice is caught by the next sweep: every device held here is asked for, once', async () => {
    const w = world();
    await w.start();
    w.connected.add('dev-a').add('dev-b');
    await w.kv.set(policyBundleKeys.revision, '3');
    for (const id of ['dev-a', 'dev-b']) await w.kv.set(policyBundleKeys.bundle(id), canonicalize(bundle(id, 3, nowMs)));
    for (const id of ['dev-a', 'dev-b']) await w.push.onAuthenticated(id);
    assert.deepEqual(await w.push.refreshDue(), [], 'nothing due: both bundles are fresh');
    w.advance(10);
    await w.kv.set(policyBundleKeys.inputsChangedAt, String(nowMs + 5));
    assert.deepEqual((await w.push.refreshDue()).sort(), ['dev-a', 'dev-b']);
    await settle();
    assert.deepEqual(w.requests.sort(), ['dev-a', 'dev-b']);
    assert.deepEqual(await w.push.refreshDue(), [], 'asked once for that change');
  });
});
