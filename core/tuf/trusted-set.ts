import { SdcError } from '../errors/index.js';
import type { TufCrypto } from './crypto-port.js';
import { parseMetadata, type Envelope, type MetaFile, type Root, type Snapshot, type Targets, type Timestamp } from './metadata.js';
import { delegatedRoleKeys, hexFromBytes, verifyThreshold } from './roles.js';

/**
 * The metadata the client trusts, and the checks of specification section 5 that decide whether
 * a new file may join it. Pure: bytes and the reference time in, verdicts out. Updates run in the
 * specification's order (root, timestamp, snapshot, then targets roles); calling them out of order
 * is our bug, PROTO_INVALID_ARGUMENT.
 *
 * As in TUF's reference client, a timestamp or snapshot that verifies but has expired, or a
 * snapshot whose version the timestamp does not name, is still kept as trusted before its final
 * check throws: it is the floor for rollback checks of the next one, and the expired state makes
 * the refresh fail, so nothing downloads on it.
 */
export class TrustedSet {
  #root: Envelope<Root>;
  #timestamp: Envelope<Timestamp> | undefined;
  #snapshot: Envelope<Snapshot> | undefined;
  readonly #targets = new Map<string, Envelope<Targets>>();

  /** Trusts `rootBytes` as the first root: it must parse and be signed by a threshold of its own root keys. */
  constructor(rootBytes: Uint8Array, readonly nowMs: number, private readonly crypto: TufCrypto) {
    const root = parseMetadata(rootBytes, 'root');
    verifyThreshold({ roleName: 'root', role: root.signed.roles.root, keys: root.signed.keys, envelope: root, crypto });
    this.#root = root;
  }

  get root(): Root { return this.#root.signed; }
  get timestamp(): Timestamp | undefined { return this.#timestamp?.signed; }
  get snapshot(): Snapshot | undefined { return this.#snapshot?.signed; }
  targets(roleName: string): Targets | undefined { return this.#targets.get(roleName)?.signed; }

  /** Section 5.3: the next root, signed by a threshold of the trusted root's keys and of its own, and exactly one version up. */
  updateRoot(bytes: Uint8Array): Root {
    order(this.#timestamp === undefined, 'root cannot change once a timestamp is trusted');
    const next = parseMetadata(bytes, 'root');
    verifyThreshold({ roleName: 'root', role: this.root.roles.root, keys: this.root.keys, envelope: next, crypto: this.crypto });
    verifyThreshold({ roleName: 'root', role: next.signed.roles.root, keys: next.signed.keys, envelope: next, crypto: this.crypto });
    if (next.signed.version !== this.root.version + 1) {
      throw new SdcError('TUF_VERSION_MISMATCH', `root version ${next.signed.version} is not the next after ${this.root.version}`,
        { role: 'root', expected: this.root.version + 1, actual: next.signed.version });
    }
    this.#root = next;
    return next.signed;
  }

  /** Section 5.3.10: the final root must not have expired (freeze attack). */
  checkFinalRoot(): void {
    refuseExpired('root', this.root.expiresMs, this.nowMs);
  }

  /**
   * Section 5.4. Returns 'unchanged' for the version already trusted (nothing to store), else
   * 'updated'. Rollback of its own version or of the snapshot version it names: TUF_ROLLBACK.
   */
  updateTimestamp(bytes: Uint8Array): 'updated' | 'unchanged' {
    order(this.#snapshot === undefined, 'timestamp cannot change once a snapshot is trusted');
    this.checkFinalRoot();
    const next = parseMetadata(bytes, 'timestamp');
    verifyThreshold({ roleName: 'timestamp', role: this.root.roles.timestamp, keys: this.root.keys, envelope: next, crypto: this.crypto });
    const trusted = this.timestamp;
    if (trusted !== undefined) {
      refuseRollback('timestamp', next.signed.version, trusted.version);
      if (next.signed.version === trusted.version) return 'unchanged';
      refuseRollback('snapshot', next.signed.snapshotMeta.version, trusted.snapshotMeta.version);
    }
    this.#timestamp = next;
    this.checkFinalTimestamp();
    return 'updated';
  }

  checkFinalTimestamp(): void {
    const timestamp = this.timestamp;
    order(timestamp !== undefined, 'no timestamp is trusted');
    refuseExpired('timestamp', timestamp.expiresMs, this.nowMs);
  }

  /**
   * Section 5.5. `fromLocalStore`: the bytes were verified against the timestamp's length and
   * hashes when they were downloaded and stored, so that check is skipped (the timestamp may
   * since have moved on; the final check below still insists on the version it names).
   */
  updateSnapshot(bytes: Uint8Array, fromLocalStore: boolean): Snapshot {
    order(this.#timestamp !== undefined && this.#targets.size === 0, 'snapshot needs a timestamp and no targets yet');
    this.checkFinalTimestamp();
    const snapshotMeta = this.timestamp!.snapshotMeta;
    if (!fromLocalStore) verifyLengthAndHashes({ what: 'snapshot.json', bytes, expected: snapshotMeta, crypto: this.crypto });
    const next = parseMetadata(bytes, 'snapshot');
    verifyThreshold({ roleName: 'snapshot', role: this.root.roles.snapshot, keys: this.root.keys, envelope: next, crypto: this.crypto });
    const trusted = this.snapshot;
    if (trusted !== undefined) {
      for (const [fileName, meta] of trusted.meta) {
        const nextMeta = next.signed.meta.get(fileName);
        if (nextMeta === undefined) {
          throw new SdcError('TUF_ROLLBACK', `the new snapshot drops ${fileName}, which the trusted one lists`, { file: fileName });
        }
        refuseRollback(fileName, nextMeta.version, meta.version);
      }
    }
    this.#snapshot = next;
    this.checkFinalSnapshot();
    return next.signed;
  }

  checkFinalSnapshot(): void {
    const snapshot = this.snapshot;
    order(snapshot !== undefined, 'no snapshot is trusted');
    refuseExpired('snapshot', snapshot.expiresMs, this.nowMs);
    const expected = this.timestamp!.snapshotMeta.version;
    if (snapshot.version !== expected) {
      throw new SdcError('TUF_VERSION_MISMATCH', `snapshot version ${snapshot.version} is not the ${expected} the timestamp names`,
        { role: 'snapshot', expected, actual: snapshot.version });
    }
  }

  /** The snapshot's entry for a targets role, or TUF_METADATA_MISSING. */
  snapshotMetaFor(roleName: string): MetaFile {
    this.checkFinalSnapshot();
    const meta = this.snapshot!.meta.get(`${roleName}.json`);
    if (meta === undefined) throw new SdcError('TUF_METADATA_MISSING', `the snapshot does not list ${roleName}.json`, { role: roleName });
    return meta;
  }

  /**
   * Section 5.6 for `targets` (delegated by root) and any delegated role (delegated by a trusted
   * targets role `delegatorName`). The file must match the snapshot's length, hashes (when listed)
   * and version, be signed by the delegator's threshold and not have expired. Stored copies are
   * checked against the snapshot's hashes too (unlike the snapshot's own stored copy): a
   * repository that re-signed a role under the same version lists new hashes, and the stored
   * copy must then be fetched again, as TUF's reference client does.
   */
  updateDelegatedTargets(bytes: Uint8Array, roleName: string, delegatorName: string): Targets {
    const meta = this.snapshotMetaFor(roleName);
    verifyLengthAndHashes({ what: `${roleName}.json`, bytes, expected: meta, crypto: this.crypto });
    const next = parseMetadata(bytes, 'targets');
    this.verifyDelegation(next, roleName, delegatorName);
    if (next.signed.version !== meta.version) {
      const code = next.signed.version < meta.version ? 'TUF_ROLLBACK' : 'TUF_VERSION_MISMATCH';
      throw new SdcError(code, `${roleName} version ${next.signed.version} is not the ${meta.version} the snapshot names`,
        { role: roleName, expected: meta.version, actual: next.signed.version });
    }
    refuseExpired(roleName, next.signed.expiresMs, this.nowMs);
    this.#targets.set(roleName, next);
    return next.signed;
  }

  private verifyDelegation(next: Envelope<Targets>, roleName: string, delegatorName: string): void {
    if (delegatorName === 'root') {
      order(roleName === 'targets', 'only targets is delegated by root');
      verifyThreshold({ roleName, role: this.root.roles.targets, keys: this.root.keys, envelope: next, crypto: this.crypto });
      return;
    }
    const delegations = this.targets(delegatorName)?.delegations;
    order(delegations !== undefined, `${delegatorName} is not trusted or delegates nothing`);
    const role = delegatedRoleKeys(delegations, roleName);
    if (role === undefined) throw new SdcError('TUF_METADATA_MISSING', `${delegatorName} does not delegate to ${roleName}`, { role: roleName });
    verifyThreshold({ roleName, role, keys: delegations.keys, envelope: next, crypto: this.crypto });
  }
}

/** Length and every listed hash, when the referencing metadata lists them (mix-and-match, arbitrary software). */
export function verifyLengthAndHashes(options: {
  what: string; bytes: Uint8Array; expected: { length?: number; hashes?: Readonly<Record<string, string>> | ReadonlyArray<readonly [string, string]> }; crypto: TufCrypto;
}): void {
  const { what, bytes, expected, crypto } = options;
  if (expected.length !== undefined && bytes.byteLength !== expected.length) {
    throw new SdcError('TUF_LENGTH_OR_HASH_MISMATCH', `${what} is ${bytes.byteLength} bytes, signed metadata says ${expected.length}`,
      { file: what, expected: expected.length, actual: bytes.byteLength });
  }
  const hashes = expected.hashes === undefined ? [] : Array.isArray(expected.hashes) ? expected.hashes : Object.entries(expected.hashes);
  for (const [algorithm, hexDigest] of hashes as ReadonlyArray<readonly [string, string]>) {
    const digest = crypto.digest(algorithm, bytes);
    // An algorithm we cannot compute cannot vouch for the bytes: refuse rather than skip it.
    if (digest === undefined) throw new SdcError('TUF_LENGTH_OR_HASH_MISMATCH', `${what}: unsupported hash algorithm ${algorithm}`, { file: what, algorithm });
    if (hexFromBytes(digest) !== hexDigest.toLowerCase()) {
      throw new SdcError('TUF_LENGTH_OR_HASH_MISMATCH', `${what}: ${algorithm} differs from signed metadata`, { file: what, algorithm });
    }
  }
}

function refuseRollback(what: string, version: number, trustedVersion: number): void {
  if (version < trustedVersion) {
    throw new SdcError('TUF_ROLLBACK', `${what} version ${version} is below the trusted ${trustedVersion}`,
      { role: what, version, trustedVersion });
  }
}

function refuseExpired(role: string, expiresMs: number, nowMs: number): void {
  if (expiresMs <= nowMs) {
    throw new SdcError('TUF_EXPIRED', `${role} metadata expired at ${new Date(expiresMs).toISOString()}`, { role, expiresMs, nowMs });
  }
}

function order(condition: boolean, message: string): asserts condition {
  if (!condition) throw new SdcError('PROTO_INVALID_ARGUMENT', `TUF update out of order: ${message}`);
}
