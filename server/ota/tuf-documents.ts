import { createHash } from 'node:crypto';
import { encodeCanonical, type TufJsonObject } from '../../core/tuf/olpc-json.js';
import type { TopLevelRole } from '../../core/tuf/metadata.js';
import type { TufSigningKey } from './tuf-keys.js';

/**
 * The signed parts of the repository's metadata files, built as plain OLPC JSON, and the file
 * bytes: `{"signatures":[...],"signed":{...}}` in OLPC canonical form (so the bytes served are the
 * bytes stored, and the first listed hash of a target is sha256: keys sort). Expiries are TUF's
 * `YYYY-MM-DDTHH:MM:SSZ`, rounded down to the second.
 */

/** The spec_version we write: the TUF 1.0 line our client and python-tuf accept. */
export const specVersion = '1.0.31';

export interface SignatureJson {
  readonly keyid: string;
  readonly sig: string;
}

export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function common(type: TopLevelRole, version: number, expiresMs: number): TufJsonObject {
  return { _type: type, spec_version: specVersion, version, expires: isoSeconds(expiresMs) };
}

export interface RoleKeysJson {
  readonly keys: readonly TufJsonObject[];
  readonly threshold: number;
}

/** Root: the keys and threshold of every role, consistent snapshots on. */
export function rootSigned(options: { version: number; expiresMs: number; roles: Readonly<Record<TopLevelRole, RoleKeysJson>>; keyid: (key: TufJsonObject) => string }): TufJsonObject {
  const keys: TufJsonObject = {};
  const roles: TufJsonObject = {};
  for (const [role, { keys: roleKeys, threshold }] of Object.entries(options.roles)) {
    const keyids = roleKeys.map((key) => {
      const keyid = options.keyid(key);
      keys[keyid] = key;
      return keyid;
    });
    roles[role] = { keyids, threshold };
  }
  return { ...common('root', options.version, options.expiresMs), consistent_snapshot: true, keys, roles };
}

/** One target as the targets role lists it: length, sha256 and sha512, and our custom data under `sdc`. */
export interface TargetEntry {
  readonly path: string;
  readonly length: number;
  readonly sha256: string;
  readonly sha512: string;
  readonly custom: TufJsonObject;
}

export function targetsSigned(options: { version: number; expiresMs: number; targets: readonly TargetEntry[] }): TufJsonObject {
  const targets: TufJsonObject = {};
  for (const target of options.targets) {
    targets[target.path] = { length: target.length, hashes: { sha256: target.sha256, sha512: target.sha512 }, custom: target.custom };
  }
  return { ...common('targets', options.version, options.expiresMs), targets };
}

/** A reference to a metadata file with its length and sha256, so a client bounds and checks what it fetches. */
export function metaReference(version: number, fileBytes: Uint8Array): TufJsonObject {
  return { version, length: fileBytes.length, hashes: { sha256: createHash('sha256').update(fileBytes).digest('hex') } };
}

export function snapshotSigned(options: { version: number; expiresMs: number; targetsVersion: number; targetsBytes: Uint8Array }): TufJsonObject {
  return { ...common('snapshot', options.version, options.expiresMs), meta: { 'targets.json': metaReference(options.targetsVersion, options.targetsBytes) } };
}

export function timestampSigned(options: { version: number; expiresMs: number; snapshotVersion: number; snapshotBytes: Uint8Array }): TufJsonObject {
  return { ...common('timestamp', options.version, options.expiresMs), meta: { 'snapshot.json': metaReference(options.snapshotVersion, options.snapshotBytes) } };
}

/** The file: signed part and signatures, OLPC canonical, as UTF-8 text. */
export function envelopeText(signed: TufJsonObject, signatures: readonly SignatureJson[]): string {
  return encodeCanonical({ signatures: signatures.map((signature) => ({ keyid: signature.keyid, sig: signature.sig })), signed });
}

/** Signs `signed`'s canonical bytes with each key. */
export function signEnvelope(signed: TufJsonObject, keys: readonly TufSigningKey[]): string {
  const message = new TextEncoder().encode(encodeCanonical(signed));
  return envelopeText(signed, keys.map((key) => ({ keyid: key.keyid, sig: key.sign(message) })));
}
