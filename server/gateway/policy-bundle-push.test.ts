import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { validateMessageBody } from '../../core/protocol/messages/validate.js';
import { MemoryKeyValueStore } from '../stores/kv/memory-key-value-store.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import type { GatewayContext } from './gateway-context.js';
import type { BusEntryData } from '../bus-contract/entries.js';
import { policyBundleChannels, policyBundleKeys } from '../bus-contract/policy-bundle-keys.js';
import { PolicyBundlePush, reportPolicyBundle } from './policy-bundle-push.js';
import { policyBundlePushWorld as world, policyWorldNowMs as nowMs, testPolicyBundle as bundle } from './test-support.js';

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('the gateway pushes policy bundles', () => {
  it('after AUTH: sends a current stored bundle; asks for one when none is stored', async () => {
    const w = world();
    await w.start();
    w.connected.add('dev-a').add('dev-b');
    await w.kv.set(policyBundleKeys.bundle('dev-a'), canonicalize(bundle('dev-a', 3)));
    await w.kv.set(policyBundleKeys.revision, '3');
    await w.push.onAuthenticated('dev-a');
    await w.push.onAuthenticated('dev-b');
    await settle();
    assert.deepEqual(w.sent, [{ deviceId: 'dev-a', version: 3 }]);
    assert.deepEqual(w.requests, ['dev-b']);
  });

  it('after AUTH: a stored bundle older than the revision, past half its validity, or malformed is replaced (sent meanwhile unless malformed)', async () => {
    const w = world();
    await w.start();
    w.connected.add('dev-old').add('dev-aging').add('dev-bad');
    await w.kv.set(policyBundleKeys.revision, '4');
    await w.kv.set(policyBundleKeys.bundle('dev-old'), canonicalize(bundle('dev-old', 3)));
    await w.kv.set(policyBundleKeys.bundle('dev-aging'), canonicalize(bundle('dev-aging', 4, nowMs - 50_001)));
    await w.kv.set(policyBundleKeys.bundle('dev-bad'), '{"bundle": {"device_id": "someone-else"}}');
    for (const deviceId of ['dev-old', 'dev-aging', 'dev-bad']) await w.push.onAuthenticated(deviceId);
    await settle();
    assert.deepEqual(w.sent, [{ deviceId: 'dev-old', version: 3 }, { deviceId: 'dev-aging', version: 4 }]);
    assert.deepEqual(w.requests, ['dev-old', 'dev-aging', 'dev-bad']);
  });

  it('after AUTH: a stored value the session cannot put in a frame (wrong shape, no canonical form) is not sent, and a new one is asked for', async () => {
    const w = world();
    await w.start();
    const encoded: string[] = [];
    // As the session's encodeMessage does: the POLICY_BUNDLE body's schema check, then its canonical form.
    const push = new PolicyBundlePush({
      context: w.context, connectedDevices: () => ['dev-shape', 'dev-lone', 'dev-good'],
      targetOf: () => (signed) => {
        encoded.push(canonicalize(validateMessageBody('POLICY_BUNDLE', { signed })));
        return true;
      },
    });
    await push.start();
    await w.kv.set(policyBundleKeys.revision, '3');
    const good = bundle('dev-good', 3);
    await w.kv.set(policyBundleKeys.bundle('dev-good'), canonicalize(good));
    // Parses, names the device, but is not a signed bundle (no sig).
    await w.kv.set(policyBundleKeys.bundle('dev-shape'), JSON.stringify({ bundle: bundle('dev-shape', 3).bundle }));
    // A lone surrogate (escaped): JSON, but no canonical form.
    const lone = JSON.stringify(bundle('dev-lone', 3)).replace('"Everyday diagnostics', '"\\ud800Everyday diagnostics');
    assert.notEqual(lone, JSON.stringify(bundle('dev-lone', 3)));
    await w.kv.set(policyBundleKeys.bundle('dev-lone'), lone);
    for (const deviceId of ['dev-shape', 'dev-lone', 'dev-good']) assert.equal(await push.onAuthenticated(deviceId), true);
    await settle();
    // Before, the wrong shape made onAuthenticated fail (false) at every try and never asked for a new bundle.
    assert.deepEqual(w.requests, ['dev-shape', 'dev-lone']);
    assert.deepEqual(encoded, [canonicalize({ signed: good })]);
  });

  it('a ready notice sends the new bundle to a device held here; a revision notice asks for every device held here, once', async () => {
    const w = world();
    await w.start();
    w.connected.add('dev-a').add('dev-b');
    await w.kv.set(policyBundleKeys.bundle('dev-a'), canonicalize(bundle('dev-a', 5)));
    await w.kv.publish(policyBundleChannels.ready, 'dev-a');
    await w.kv.publish(policyBundleChannels.ready, 'dev-elsewhere');
    await settle();
    assert.deepEqual(w.sent, [{ deviceId: 'dev-a', version: 5 }]);
    await w.kv.publish(policyBundleChannels.revision, '6');
    await settle();
    await w.kv.publish(policyBundleChannels.revision, '6');
    await w.kv.publish(policyBundleChannels.revision, 'junk');
    await settle();
    assert.deepEqual(w.requests.sort(), ['dev-a', 'dev-b']);
    await w.push.stop();
  });

  it('a device that stays connected is asked a fresh bundle past half its validity, on the sweep timer (virtual time), and never holds an expired one', async () => {
    const time = new VirtualTime(nowMs);
    const kv = new MemoryKeyValueStore({ clock: time });
    const context = {
      options: { stores: { kv }, logger: pino({ level: 'silent' }), gatewayId: 'gw-1', scheduler: time },
      nowMs: () => time.nowMs(), schedule: (delayMs: number, run: () => void) => time.schedule(delayMs, run),
      report: async () => undefined, traceId: () => 't',
    } as unknown as GatewayContext;
    const connected = new Set(['dev-long', 'dev-gone']);
    const sent: Array<{ deviceId: string; issuedAtMs: number; atMs: number }> = [];
    const push = new PolicyBundlePush({
      context, connectedDevices: () => connected, refreshSweepIntervalMs: 5_000,
      targetOf: (deviceId) => (connected.has(deviceId) ? (signed) => { sent.push({ deviceId, issuedAtMs: signed.bundle.issued_at, atMs: time.nowMs() }); return true; } : undefined),
    });
    const requests: Array<{ deviceId: string; atMs: number }> = [];
    // Stands in for the control plane: each request is signed at once (validity 100 s) and announced.
    await kv.subscribe(policyBundleChannels.requests, (deviceId) => {
      requests.push({ deviceId, atMs: time.nowMs() });
      void kv.set(policyBundleKeys.bundle(deviceId), canonicalize(bundle(deviceId, 1, time.nowMs()))).then(() => kv.publish(policyBundleChannels.ready, deviceId));
    });
    await kv.set(policyBundleKeys.bundle('dev-long'), canonicalize(bundle('dev-long', 1, nowMs)));
    await kv.set(policyBundleKeys.bundle('dev-gone'), canonicalize(bundle('dev-gone', 1, nowMs)));
    await push.start();
    await push.onAuthenticated('dev-long');
    await push.onAuthenticated('dev-gone');
    connected.delete('dev-gone');
    await time.runUntil(nowMs + 400_000, settle);
    await push.stop();
    const long = sent.filter((s) => s.deviceId === 'dev-long');
    // Re-signed every half validity (50 s), found within one sweep (5 s): never older than 55 s when held.
    assert.ok(long.length >= 7, `re-sent ${long.length} times in 400 s`);
    for (let i = 1; i < long.length; i += 1) assert.ok(long[i]!.issuedAtMs - long[i - 1]!.issuedAtMs <= 55_000, `gap ${long[i]!.issuedAtMs - long[i - 1]!.issuedAtMs} ms`);
    assert.ok(long.every((s) => s.atMs < s.issuedAtMs + 100_000), 'every bundle sent was still valid');
    assert.ok(nowMs + 400_000 - long.at(-1)!.issuedAtMs < 100_000, 'the bundle held at the end has not expired');
    assert.deepEqual(requests.filter((r) => r.deviceId === 'dev-gone'), [], 'a device no longer here is not asked for');
    const timersAfterStop = time.nextDueMs();
    assert.equal(timersAfterStop, undefined, 'stop cancels the sweep');
  });

  it("a device's report goes to the events stream with its signed frame (the control plane audits it); an acceptance records the held version", async () => {
    const w = world();
    await reportPolicyBundle(w.context, 'dev-a', { version: 2, status: 'refused', held_version: 5, error: { code: 'POLICY_BUNDLE_VERSION_STALE', message: 'older' } }, 'frame-1');
    await reportPolicyBundle(w.context, 'dev-a', { version: 6, status: 'accepted', held_version: 6 }, 'frame-2');
    assert.deepEqual(w.reports.map((r) => r.kind), ['policy_bundle_report', 'policy_bundle_report']);
    assert.deepEqual(w.reports.map((r) => (r.data as BusEntryData<'policy_bundle_report'>).frame), ['frame-1', 'frame-2']);
    assert.equal((w.reports[0]!.data as BusEntryData<'policy_bundle_report'>).device_id, 'dev-a');
    assert.equal(await w.kv.get(policyBundleKeys.held('dev-a')), '6');
  });
});
