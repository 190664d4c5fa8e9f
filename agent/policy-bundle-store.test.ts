import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createNodeEd25519Provider } from '../runtime/ed25519-node.js';
import { defaultPolicy } from '../core/protocol/policy.js';
import { cutPolicyBundle, signPolicyBundle, verifyPolicyBundle, type SignedPolicyBundle } from '../core/protocol/policy-bundle.js';
import { canonicalize } from '../core/protocol/canonical-json.js';
import { parseStrictJson } from '../core/protocol/strict-json.js';
import { createMemoryPolicyBundleStore, PolicyBundleGuard, type PolicyBundleStore } from './policy-bundle-guard.js';
import { nobleSha256 } from '../core/crypto/sha256-noble.js';

const provider = createNodeEd25519Provider();
const seed = new Uint8Array(32).fill(7);

function signedFor(deviceId: string): SignedPolicyBundle {
  const bundle = cutPolicyBundle({ policy: defaultPolicy, version: 3, device: { id: deviceId }, issuedAtMs: 1_800_000_000_000 });
  return signPolicyBundle({ bundle, kid: 'cp-test', seed, provider });
}

test('the memory store keeps what was saved: later changes to the object do not reach it, and each load is a fresh copy', async () => {
  const store = createMemoryPolicyBundleStore();
  assert.equal(await store.load(), undefined);
  const signed = signedFor('dev-1');
  const expected = JSON.parse(JSON.stringify(signed)) as SignedPolicyBundle;
  await store.save(signed);
  (signed.bundle as { version: number }).version = 99;
  const first = await store.load();
  assert.deepEqual(first, expected);
  assert.notEqual(await store.load(), first);
  assert.deepEqual(store.saved, expected);
  assert.deepEqual(await createMemoryPolicyBundleStore(expected).load(), expected);
});

test('a saved bundle costs the heap about its JSON text, not a copy of its object tree (one store per simulated agent)', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const count = 2_000;
  // As an agent gets it: parsed from its own POLICY_BUNDLE frame by the strict parser.
  const encoder = new TextEncoder();
  const frames = Array.from({ length: count }, (_, i) => encoder.encode(JSON.stringify({ signed: signedFor(`dev-${String(i).padStart(5, '0')}`) })));
  const received = (i: number) => (parseStrictJson(frames[i]!) as unknown as { signed: SignedPolicyBundle }).signed;
  const heapPerItem = async (keep: (signed: SignedPolicyBundle) => Promise<unknown>): Promise<number> => {
    gc();
    const before = getHeapStatistics().used_heap_size;
    const kept: unknown[] = [];
    for (let i = 0; i < count; i += 1) kept.push(await keep(received(i)));
    gc();
    const perItem = (getHeapStatistics().used_heap_size - before) / count;
    kept.length = 0;
    return perItem;
  };
  const inStore = async (signed: SignedPolicyBundle) => {
    const store = createMemoryPolicyBundleStore();
    await store.save(signed);
    return store;
  };
  const cloned = async (signed: SignedPolicyBundle) => structuredClone(signed);
  // A warm-up round of each first (compiled code, caches).
  await heapPerItem(inStore);
  await heapPerItem(cloned);
  const storeBytes = await heapPerItem(inStore);
  const cloneBytes = await heapPerItem(cloned);
  // Measured: about 1,400 B per store with the text, 2,330 B per cloned tree (what the store kept before).
  assert.ok(storeBytes < cloneBytes * 0.8, `${storeBytes.toFixed(0)} B per store against ${cloneBytes.toFixed(0)} B per cloned copy`);
});

test('the guard hands the store the canonical text its signature check wrote, and that text keeps no frame alive (issue 17)', async () => {
  const saves: Array<{ signed: SignedPolicyBundle; text: string | undefined }> = [];
  const memory = createMemoryPolicyBundleStore();
  const store: PolicyBundleStore = {
    load: () => memory.load(),
    save: async (signed, text) => {
      saves.push({ signed, text });
      await memory.save(signed, text);
    },
  };
  const publicKey = provider.publicKeyFromSeed(seed);
  const guard = new PolicyBundleGuard({ deviceId: 'dev-1', resolveKey: (kid) => (kid === 'cp-test' ? publicKey : undefined), provider, sha256: nobleSha256, store });
  const signed = signedFor('dev-1');
  const report = await guard.accept(parseStrictJson(new TextEncoder().encode(JSON.stringify(signed))), 1_800_000_001_000);
  assert.equal(report.status, 'accepted');
  // Before, the store wrote the bundle out again (JSON.stringify in memory, canonicalize on disk).
  assert.equal(saves.length, 1);
  assert.equal(saves[0]!.text, canonicalize(signed));
  assert.deepEqual(memory.saved, signed);

  // The text is a new string: a rope of the members would keep the parser's slices of each frame, and so each frame, alive.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const count = 2_000;
  const encoder = new TextEncoder();
  const frames = Array.from({ length: count }, (_, i) => encoder.encode(JSON.stringify({ signed: signedFor(`dev-${String(i).padStart(5, '0')}`), pad: 'x'.repeat(4_096) })));
  const received = (i: number) => (parseStrictJson(frames[i]!) as unknown as { signed: SignedPolicyBundle }).signed;
  const heapPerItem = async (textOf: (signed: SignedPolicyBundle, i: number) => string | undefined): Promise<number> => {
    gc();
    const before = getHeapStatistics().used_heap_size;
    const kept: unknown[] = [];
    for (let i = 0; i < count; i += 1) {
      const store = createMemoryPolicyBundleStore();
      const signedNow = received(i);
      await store.save(signedNow, textOf(signedNow, i));
      kept.push(store);
    }
    gc();
    const perItem = (getHeapStatistics().used_heap_size - before) / count;
    kept.length = 0;
    return perItem;
  };
  const verifiedText = (signedNow: SignedPolicyBundle, i: number) =>
    verifyPolicyBundle({ signed: signedNow, deviceId: `dev-${String(i).padStart(5, '0')}`, resolveKey: () => publicKey, provider, nowMs: 1_800_000_001_000 }).signedText;
  await heapPerItem(verifiedText);
  await heapPerItem(() => undefined);
  const withText = await heapPerItem(verifiedText);
  const stringified = await heapPerItem(() => undefined);
  // Each frame carries 4 KiB of padding: a kept frame would add about that much per store.
  assert.ok(withText < stringified + 1_024, `${withText.toFixed(0)} B per store with the verified text against ${stringified.toFixed(0)} B stringified`);
});
