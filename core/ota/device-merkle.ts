import { concatBytes, hexFromBytes } from '../crypto/bytes.js';
import type { Sha256 } from '../ports/ports.js';

/**
 * A Merkle tree over one rollout wave's device ids (docs/ota.md "Rollouts that need approvals",
 * decision 0015 "Since 2026-12-06"): approvers sign a rollout subject in which each wave's device
 * list stands as this tree's root, and each kernel command of the rollout carries its device's
 * path, so a device checks that it is in the approved wave without the wave's other devices.
 *
 * - Members: the wave's device ids, sorted by UTF-16 code unit (device ids are ASCII, so this is
 *   byte order), each once (a repeated id counts once).
 * - Leaf: SHA-256("sdc-devices-leaf-v1\n" || UTF-8 device id). Node: SHA-256("sdc-devices-node-v1\n"
 *   || left || right). The two prefixes keep a leaf from ever hashing like a node, and both from
 *   any other hash of the project (the audit chain's, a command's, an approval's).
 * - Odd node: a level's last node without a sibling goes up unchanged (it is not hashed with
 *   itself, so no two member lists share a root by repeating their last id).
 * - Empty list: the root is SHA-256("sdc-devices-empty-v1\n").
 * - Path: the siblings from the leaf up, one per level where the node has one. Its shape follows
 *   from the position and the member count, both of which the verifier knows (the count is
 *   signed with the root), so a path of the wrong length never verifies. At most
 *   ceil(log2(count)) hashes: 20 for the largest fleet a rollout takes (rolloutLimits.fleetDevicesMax).
 *
 * Pure: the hash function comes in. Hashes are lower-case hex.
 */

const encoder = new TextEncoder();
const leafPrefix = encoder.encode('sdc-devices-leaf-v1\n');
const nodePrefix = encoder.encode('sdc-devices-node-v1\n');
const emptyTag = encoder.encode('sdc-devices-empty-v1\n');

export const deviceMerkleLimits = Object.freeze({
  /** Siblings a path may have: ceil(log2(1,000,000)) = 20 (rolloutLimits.fleetDevicesMax). */
  pathHashesMax: 20,
  /** Members a tree may have: a path of pathHashesMax hashes reaches 2^20. */
  membersMax: 1 << 20,
});

/** A device's place in the tree: its position among the sorted members and the siblings on its way up. */
export interface DeviceMerklePath {
  readonly position: number;
  readonly siblings: readonly string[];
}

/** The members as the tree orders them: sorted by code unit, each once. */
export function sortedDeviceIds(deviceIds: readonly string[]): string[] {
  return [...new Set(deviceIds)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A built tree: its root, member count, and each member's path. */
export interface DeviceMerkleTree {
  readonly root: string;
  readonly count: number;
  /** The member's path, or undefined for a device that is not a member. */
  pathOf(deviceId: string): DeviceMerklePath | undefined;
}

export function deviceMerkleTree(deviceIds: readonly string[], sha256: Sha256): DeviceMerkleTree {
  const members = sortedDeviceIds(deviceIds);
  if (members.length > deviceMerkleLimits.membersMax) throw new RangeError(`${members.length} devices is more than a wave's tree takes (${deviceMerkleLimits.membersMax})`);
  // Each level one buffer of 32-byte hashes: a wave of a million devices keeps 64 MB, not two million small arrays.
  const levels: Uint8Array[] = [new Uint8Array(members.length * 32)];
  members.forEach((id, i) => levels[0]!.set(leafHash(id, sha256), i * 32));
  const at = (level: Uint8Array, i: number) => level.subarray(i * 32, i * 32 + 32);
  while (levels[levels.length - 1]!.length > 32) {
    const below = levels[levels.length - 1]!;
    const size = below.length / 32;
    const above = new Uint8Array(Math.ceil(size / 2) * 32);
    for (let i = 0; i < size; i += 2) above.set(i + 1 < size ? sha256(concatBytes(nodePrefix, at(below, i), at(below, i + 1))) : at(below, i), (i / 2) * 32);
    levels.push(above);
  }
  const top = levels[levels.length - 1]!;
  const root = hexFromBytes(top.length === 0 ? sha256(emptyTag) : top);
  return {
    root, count: members.length,
    pathOf(deviceId) {
      const position = indexOf(members, deviceId);
      if (position === undefined) return undefined;
      const siblings: string[] = [];
      let index = position;
      for (const level of levels.slice(0, -1)) {
        const sibling = index ^ 1;
        if (sibling < level.length / 32) siblings.push(hexFromBytes(at(level, sibling)));
        index >>= 1;
      }
      return { position, siblings };
    },
  };
}

/** Binary search in the sorted members. */
function indexOf(members: readonly string[], deviceId: string): number | undefined {
  let low = 0;
  let high = members.length - 1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    const id = members[mid]!;
    if (id === deviceId) return mid;
    if (id < deviceId) low = mid + 1;
    else high = mid - 1;
  }
  return undefined;
}

/** The root of a device list (sorted and made unique first) and its member count. */
export function deviceMerkleRoot(deviceIds: readonly string[], sha256: Sha256): { root: string; count: number } {
  const { root, count } = deviceMerkleTree(deviceIds, sha256);
  return { root, count };
}

/**
 * The root a path leads to from `deviceId` at `path.position` in a tree of `count` members; undefined
 * when the path cannot be one of such a tree (position outside 0..count-1, too few or too many
 * siblings, a sibling that is not 64 lower-case hex digits). The caller compares it with the root
 * it trusts.
 */
export function deviceMerkleRootOf(deviceId: string, path: DeviceMerklePath, count: number, sha256: Sha256): string | undefined {
  const { position, siblings } = path;
  if (!Number.isSafeInteger(count) || count < 1 || count > deviceMerkleLimits.membersMax) return undefined;
  if (!Number.isSafeInteger(position) || position < 0 || position >= count) return undefined;
  if (siblings.length > deviceMerkleLimits.pathHashesMax) return undefined;
  let node = leafHash(deviceId, sha256);
  let index = position;
  let size = count;
  let used = 0;
  while (size > 1) {
    const sibling = index ^ 1;
    if (sibling < size) {
      const hex = siblings[used++];
      if (hex === undefined) return undefined;
      const bytes = bytesOfHash(hex);
      if (bytes === undefined) return undefined;
      node = sha256(index % 2 === 0 ? concatBytes(nodePrefix, node, bytes) : concatBytes(nodePrefix, bytes, node));
    }
    index >>= 1;
    size = Math.ceil(size / 2);
  }
  return used === siblings.length ? hexFromBytes(node) : undefined;
}

/** Whether `path` proves `deviceId` a member of the tree with this root and member count. */
export function verifyDeviceMerklePath(deviceId: string, path: DeviceMerklePath, expected: { root: string; count: number }, sha256: Sha256): boolean {
  return deviceMerkleRootOf(deviceId, path, expected.count, sha256) === expected.root;
}

function leafHash(deviceId: string, sha256: Sha256): Uint8Array {
  return sha256(concatBytes(leafPrefix, encoder.encode(deviceId)));
}

const hashPattern = /^[0-9a-f]{64}$/;

function bytesOfHash(hex: string): Uint8Array | undefined {
  if (typeof hex !== 'string' || !hashPattern.test(hex)) return undefined;
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i += 1) bytes[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}
