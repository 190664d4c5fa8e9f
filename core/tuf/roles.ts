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
 * Distinct means distinct key material, not distinct key ids: the same public key listed under two
 * ids (the id is only a name the metadata gives it) counts once, else one private key met a
 * threshold of two (review h1 of the OTA path, finding 5). The material is the public value
 * normalised (keyMaterial), without the key type: the crypto port verifies `ecdsa` and
 * `ecdsa-sha2-nistp256` keys alike, so the same bytes under both types are still one key.
 */
export function verifyThreshold(options: {
  roleName: string; role: RoleKeys; keys: ReadonlyMap<string, TufPublicKey>; envelope: Envelope<unknown>; crypto: TufCrypto;
}): void {
  const { roleName, role, keys, envelope, crypto } = options;
  const signatures = new Map(envelope.signatures.map((signature) => [signature.keyid, signature.sig]));
  const counted = new Set<string>();
  for (const keyid of new Set(role.keyids)) {
    const key = keys.get(keyid);
    const sigHex = signatures.get(keyid);
    if (key === undefined || sigHex === undefined) continue;
    const material = keyMaterial(key.publicValue);
    if (counted.has(material)) continue;
    const signature = bytesFromHexOrUndefined(sigHex);
    if (signature !== undefined && crypto.verify(key, envelope.signedBytes, signature)) counted.add(material);
  }
  const valid = counted.size;
  if (valid < role.threshold) {
    throw new SdcError('TUF_SIGNATURE_THRESHOLD', `${roleName} has ${valid} valid signature(s) of the ${role.threshold} required`,
      { role: roleName, valid, threshold: role.threshold });
  }
}

/**
 * A key's public value in one form per key: hex (ed25519's keyval) lower-cased; PEM (ECDSA, RSA)
 * as the hex of its DER bytes, so line breaks, header spacing and base64 padding make no second key.
 * Anything else as it is (the crypto port verifies no such key, so it never counts anyway).
 */
export function keyMaterial(publicValue: string): string {
  const trimmed = publicValue.trim();
  if (/^[0-9a-fA-F]+$/.test(trimmed)) return `hex:${trimmed.toLowerCase()}`;
  const pem = /^-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----$/.exec(trimmed);
  if (pem !== null) {
    const der = bytesFromBase64OrUndefined(pem[2]!.replace(/\s+/g, ''));
    if (der !== undefined) return `der:${hexFromBytes(der)}`;
  }
  return `raw:${publicValue}`;
}

const base64Alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard base64 (padding optional); bits past the last whole byte are dropped, as decoders do. */
function bytesFromBase64OrUndefined(text: string): Uint8Array | undefined {
  const body = text.replace(/=+$/, '');
  if (!/^[A-Za-z0-9+/]*$/.test(body) || body.length % 4 === 1) return undefined;
  const bytes = new Uint8Array(Math.floor((body.length * 6) / 8));
  let bits = 0;
  let value = 0;
  let index = 0;
  for (const character of body) {
    value = (value << 6) | base64Alphabet.indexOf(character);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[index++] = (value >> bits) & 0xff;
    }
  }
  return bytes;
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

/**
 * The delegated roles trusted for `targetPath`, in the delegator's order (section 5.6.7.2). A hash
 * bin (succinct roles, TAP 15) is terminating: the path belongs to that one bin, so a bin that does
 * not list it ends the search, as python-tuf's get_roles_for_target and go-tuf answer (review h1 of
 * the OTA path, finding 6: roles queued higher up were asked after the bin).
 */
export function rolesForTarget(delegations: Delegations, targetPath: string, sha256: (bytes: Uint8Array) => Uint8Array): RoleForTarget[] {
  if (delegations.succinctRoles !== undefined) {
    return [{ name: succinctRoleForTarget(delegations.succinctRoles, targetPath, sha256), terminating: true }];
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
