import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nobleSha256 } from '../crypto/sha256-noble.js';
import { hexFromBytes } from '../crypto/bytes.js';
import { rolloutLimits } from './rollout-decisions.js';
import { deviceMerkleLimits, deviceMerkleRoot, deviceMerkleRootOf, deviceMerkleTree, sortedDeviceIds, verifyDeviceMerklePath } from './device-merkle.js';

const sha256 = nobleSha256;
const deviceId = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,15}$/);
const deviceIds = fc.uniqueArray(deviceId, { minLength: 1, maxLength: 70 });

test('every member\'s path leads to the root, at its own position only', () => {
  fc.assert(fc.property(deviceIds, (ids) => {
    const tree = deviceMerkleTree(ids, sha256);
    assert.equal(tree.count, ids.length);
    const sorted = sortedDeviceIds(ids);
    for (const id of ids) {
      const path = tree.pathOf(id)!;
      assert.equal(sorted[path.position], id);
      assert.ok(path.siblings.length <= Math.ceil(Math.log2(ids.length)));
      assert.ok(verifyDeviceMerklePath(id, path, tree, sha256));
    }
  }), { numRuns: 150 });
});

test('a non-member has no path, and no member\'s path proves it', () => {
  fc.assert(fc.property(deviceIds, deviceId, (ids, stranger) => {
    fc.pre(!ids.includes(stranger));
    const tree = deviceMerkleTree(ids, sha256);
    assert.equal(tree.pathOf(stranger), undefined);
    for (const id of ids) assert.equal(verifyDeviceMerklePath(stranger, tree.pathOf(id)!, tree, sha256), false);
  }), { numRuns: 150 });
});

test('a member\'s path given at another position does not verify', () => {
  fc.assert(fc.property(deviceIds, fc.nat(), fc.nat(), (ids, pick, other) => {
    fc.pre(ids.length >= 2);
    const tree = deviceMerkleTree(ids, sha256);
    const id = ids[pick % ids.length]!;
    const path = tree.pathOf(id)!;
    const position = other % ids.length;
    fc.pre(position !== path.position);
    assert.equal(verifyDeviceMerklePath(id, { ...path, position }, tree, sha256), false);
    // Another member's siblings at this member's position do not verify either.
    const neighbour = tree.pathOf(sortedDeviceIds(ids)[position]!)!;
    assert.equal(verifyDeviceMerklePath(id, { position: path.position, siblings: neighbour.siblings }, tree, sha256), neighbour.siblings.join() === path.siblings.join());
  }), { numRuns: 150 });
});

test('a path with a sibling changed, dropped or added does not verify', () => {
  fc.assert(fc.property(deviceIds, fc.nat(), (ids, pick) => {
    const tree = deviceMerkleTree(ids, sha256);
    const id = ids[pick % ids.length]!;
    const path = tree.pathOf(id)!;
    const extra = 'ab'.repeat(32);
    assert.equal(verifyDeviceMerklePath(id, { ...path, siblings: [...path.siblings, extra] }, tree, sha256), false);
    if (path.siblings.length > 0) {
      assert.equal(verifyDeviceMerklePath(id, { ...path, siblings: path.siblings.slice(1) }, tree, sha256), false);
      const flipped = path.siblings.map((s, i) => (i === 0 ? (s[0] === '0' ? '1' : '0') + s.slice(1) : s));
      assert.equal(verifyDeviceMerklePath(id, { ...path, siblings: flipped }, tree, sha256), false);
      assert.equal(verifyDeviceMerklePath(id, { ...path, siblings: [path.siblings[0]!.toUpperCase(), ...path.siblings.slice(1)] }, tree, sha256), path.siblings[0] === path.siblings[0]!.toUpperCase());
    }
  }), { numRuns: 150 });
});

test('the root is the sorted set\'s: order and repeats do not change it; any other set does', () => {
  fc.assert(fc.property(deviceIds, fc.nat(), (ids, pick) => {
    const root = deviceMerkleRoot(ids, sha256);
    assert.deepEqual(deviceMerkleRoot([...ids].reverse().concat(ids[0]!), sha256), root);
    if (ids.length > 1) assert.notEqual(deviceMerkleRoot(ids.filter((_, i) => i !== pick % ids.length), sha256).root, root.root);
  }), { numRuns: 100 });
});

test('fixed vectors: one, two and three members; the empty list; the odd node goes up unchanged', () => {
  const enc = new TextEncoder();
  const h = (...parts: Array<string | Uint8Array>) => sha256(concat(parts.map((p) => (typeof p === 'string' ? enc.encode(p) : p))));
  const leaf = (id: string) => h('sdc-devices-leaf-v1\n', id);
  const node = (a: Uint8Array, b: Uint8Array) => h('sdc-devices-node-v1\n', a, b);
  assert.equal(deviceMerkleRoot([], sha256).root, hexFromBytes(h('sdc-devices-empty-v1\n')));
  assert.equal(deviceMerkleRoot(['a'], sha256).root, hexFromBytes(leaf('a')));
  assert.equal(deviceMerkleRoot(['b', 'a'], sha256).root, hexFromBytes(node(leaf('a'), leaf('b'))));
  assert.equal(deviceMerkleRoot(['c', 'b', 'a'], sha256).root, hexFromBytes(node(node(leaf('a'), leaf('b')), leaf('c'))));
  const tree = deviceMerkleTree(['a', 'b', 'c'], sha256);
  assert.deepEqual(tree.pathOf('c'), { position: 2, siblings: [hexFromBytes(node(leaf('a'), leaf('b')))] });
  // A tree of [a, b, c, c] is the tree of [a, b, c]: repeats count once (the last node is never paired with itself).
  assert.equal(deviceMerkleRoot(['a', 'b', 'c', 'c'], sha256).root, tree.root);
  assert.notEqual(tree.root, hexFromBytes(node(node(leaf('a'), leaf('b')), node(leaf('c'), leaf('c')))));
});

test('a path is at most pathHashesMax hashes for the largest fleet, and a longer one is refused', () => {
  assert.ok(2 ** deviceMerkleLimits.pathHashesMax >= rolloutLimits.fleetDevicesMax);
  assert.equal(deviceMerkleLimits.membersMax, 2 ** deviceMerkleLimits.pathHashesMax);
  const siblings = Array.from({ length: deviceMerkleLimits.pathHashesMax + 1 }, () => 'ab'.repeat(32));
  assert.equal(deviceMerkleRootOf('a', { position: 0, siblings }, deviceMerkleLimits.membersMax, sha256), undefined);
  assert.equal(deviceMerkleRootOf('a', { position: 0, siblings: [] }, 0, sha256), undefined);
  assert.equal(deviceMerkleRootOf('a', { position: -1, siblings: [] }, 1, sha256), undefined);
});

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
