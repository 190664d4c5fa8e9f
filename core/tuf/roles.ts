import { SdcError } from '../errors/index.js';
import type { TufCrypto, TufPublicKey } from './crypto-port.js';
import type { DelegatedRole, Delegations, Envelope, RoleKeys, SuccinctRoles } from './metadata.js';

/**
 * Signature thresholds and delegation matching: who may sign a role, and which roles are trusted
 * for a target path (specification sections 5.3-5.6 and 4.5).
 */

const textEncoder = new TextEncoder();

/**
 * Throws TUF_SIGNATURE_THRESHOLD unless at least `role.threshold` distinct keys of `role.keyids`
 * that `keys` knows signed `envelope.signedBytes`. A key id listed without a key, a signature by
 * a key the role does not list, a malformed signature: each counts for nothing, so a single
 * compromised or broken key can never reach a threshold above one (key compromise below threshold).
 */
export function verifyThreshold(options: {
  roleName: string; role: RoleKeys; keys: ReadonlyMap<string, TufPublicKey>; envelope: Envelope<unknown>; crypto: TufCrypto;
}): void {
  const { roleName, role, keys, envelope, crypto } = options;
  const signatures = new Map(envelope.signatures.map((signature) => [signature.keyid, signature.sig]));
  let valid = 0;
  for (const keyid of new Set(role.keyids)) {
    const key = keys.get(keyid);
    const sigHex = signatures.get(keyid);
    if (key === undefined || sigHex === undefined) continue;
    const signature = bytesFromHexOrUndefined(sigHex);
    if (signature !== undefined && crypto.verify(key, envelope.signedBytes, signature)) valid++;
  }
  if (valid < role.threshold) {
    throw new SdcError('TUF_SIGNATURE_THRESHOLD', `${roleName} has ${valid} valid signature(s) of the ${role.threshold} required`,
      { role: roleName, valid, threshold: role.threshold });
  }
}

function bytesFromHexOrUndefined(hex: string): Uint8Array | undefined {
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) return undefined;
  const bytes = new Uint8Array(hex.length / 2);
  for (let index = 0; index < bytes.length; index++) bytes[index] = parseInt(hex.slice(index * 2, index * 2 + 2), 16);
  return bytes;
}

export function hexFromBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/** A role a delegator trusts for a target path, and whether the search stops below it. */
export interface RoleForTarget {
  readonly name: string;
  readonly terminating: boolean;
}

/** The delegated roles trusted for `targetPath`, in the delegator's order (section 5.6.7.2). */
export function rolesForTarget(delegations: Delegations, targetPath: string, sha256: (bytes: Uint8Array) => Uint8Array): RoleForTarget[] {
  if (delegations.succinctRoles !== undefined) {
    return [{ name: succinctRoleForTarget(delegations.succinctRoles, targetPath, sha256), terminating: false }];
  }
  return (delegations.roles ?? [])
    .filter((role) => isDelegatedPath(role, targetPath, sha256))
    .map((role) => ({ name: role.name, terminating: role.terminating }));
}

/** The keys and threshold the delegator sets for `roleName`, or undefined when it does not delegate that name. */
export function delegatedRoleKeys(delegations: Delegations, roleName: string): RoleKeys | undefined {
  if (delegations.succinctRoles !== undefined) {
    return isSuccinctRoleName(delegations.succinctRoles, roleName) ? delegations.succinctRoles : undefined;
  }
  return delegations.roles?.find((role) => role.name === roleName);
}

function isDelegatedPath(role: DelegatedRole, targetPath: string, sha256: (bytes: Uint8Array) => Uint8Array): boolean {
  if (role.paths !== undefined) return role.paths.some((pattern) => matchesPathPattern(targetPath, pattern));
  if (role.pathHashPrefixes !== undefined) {
    const digest = hexFromBytes(sha256(textEncoder.encode(targetPath)));
    return role.pathHashPrefixes.some((prefix) => digest.startsWith(prefix));
  }
  return false;
}

/**
 * Section 4.5's path patterns, as the reference client matches them: the pattern and the path
 * must have the same number of `/`-separated parts, and each part matches as a shell glob
 * (fnmatch: `*`, `?`, `[seq]`, `[!seq]`), so `*` never crosses a `/`.
 */
export function matchesPathPattern(targetPath: string, pattern: string): boolean {
  const targetParts = targetPath.split('/');
  const patternParts = pattern.split('/');
  if (targetParts.length !== patternParts.length) return false;
  return targetParts.every((part, index) => globToRegExp(patternParts[index]!).test(part));
}

/** Bounded: patterns come from signed metadata, but a cache of every pattern ever seen would still grow. */
const globCacheSizeMax = 1_024;
const globCache = new Map<string, RegExp>();

function globToRegExp(glob: string): RegExp {
  const cached = globCache.get(glob);
  if (cached !== undefined) return cached;
  let source = '';
  for (let index = 0; index < glob.length; index++) {
    const character = glob[index]!;
    if (character === '*') source += '[\\s\\S]*';
    else if (character === '?') source += '[\\s\\S]';
    else if (character === '[') {
      const end = classEnd(glob, index);
      if (end === -1) source += '\\[';
      else {
        source += characterClass(glob.slice(index + 1, end));
        index = end;
      }
    } else source += escapeRegExp(character);
  }
  const regExp = compileOrNever(`^${source}$`);
  if (globCache.size >= globCacheSizeMax) globCache.clear();
  globCache.set(glob, regExp);
  return regExp;
}

/** A class fnmatch would also refuse ([z-a]) matches nothing here rather than throwing out of the search. */
function compileOrNever(source: string): RegExp {
  try {
    return new RegExp(source, 'u');
  } catch {
    return /(?!)/;
  }
}

/** Index of the `]` closing the class opened at `start`, or -1 (then `[` is literal, as in fnmatch). */
function classEnd(glob: string, start: number): number {
  let index = start + 1;
  if (glob[index] === '!') index++;
  if (glob[index] === ']') index++; // a leading ] is a member, not the end
  const end = glob.indexOf(']', index);
  return end;
}

function characterClass(body: string): string {
  const negated = body.startsWith('!');
  const members = negated ? body.slice(1) : body;
  // Keep ranges (a-z) but escape everything a JS class would read specially.
  const escaped = Array.from(members, (character) => (character === '-' ? '-' : escapeRegExp(character))).join('');
  return `[${negated ? '^' : ''}${escaped}]`;
}

function escapeRegExp(character: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(character) ? `\\${character}` : character;
}

/** TAP 15: the bin is the first bitLength bits of SHA-256(path), named `<prefix>-<bin in hex, zero-padded>`. */
export function succinctRoleForTarget(succinct: SuccinctRoles, targetPath: string, sha256: (bytes: Uint8Array) => Uint8Array): string {
  const digest = sha256(textEncoder.encode(targetPath));
  const firstWord = ((digest[0]! << 24) | (digest[1]! << 16) | (digest[2]! << 8) | digest[3]!) >>> 0;
  const bin = Math.floor(firstWord / 2 ** (32 - succinct.bitLength));
  return succinctRoleName(succinct, bin);
}

function succinctRoleName(succinct: SuccinctRoles, bin: number): string {
  const suffixLength = (2 ** succinct.bitLength - 1).toString(16).length;
  return `${succinct.namePrefix}-${bin.toString(16).padStart(suffixLength, '0')}`;
}

function isSuccinctRoleName(succinct: SuccinctRoles, roleName: string): boolean {
  const prefix = `${succinct.namePrefix}-`;
  if (!roleName.startsWith(prefix)) return false;
  const suffix = roleName.slice(prefix.length);
  const suffixLength = (2 ** succinct.bitLength - 1).toString(16).length;
  if (suffix.length !== suffixLength || !/^[0-9a-f]+$/.test(suffix)) return false;
  return parseInt(suffix, 16) < 2 ** succinct.bitLength;
}
