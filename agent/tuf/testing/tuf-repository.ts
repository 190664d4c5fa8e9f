import { constants, createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { canonicalBytes, type TufJson, type TufJsonObject } from '../../../core/tuf/olpc-json.js';
import { quoteRoleName } from '../../../core/tuf/updater.js';
import type { TufFileStore } from '../driver.js';

/**
 * A small in-process TUF repository for tests (after the conformance suite's RepositorySimulator):
 * top-level and delegated roles signed with test keys of the three types the client verifies,
 * every published version kept and served by path (`metadata/2.root.json`, `metadata/timestamp.json`,
 * `targets/<sha256>.<name>`), and a log of every path asked for. Tests change the plain JSON of a
 * role, publish, and let a client refresh; attacks are served by replacing what a path answers.
 */

export type TestKeyType = 'ed25519' | 'ecdsa' | 'rsa';

export interface TestKey {
  readonly keyid: string;
  readonly type: TestKeyType;
  readonly publicJson: TufJsonObject;
  sign(message: Uint8Array): Uint8Array;
}

const keyPool = new Map<string, TestKey>();

/** The `index`th test key of a type, generated once per process (RSA generation is slow). */
export function testKey(type: TestKeyType, index: number): TestKey {
  const cacheKey = `${type}:${index}`;
  const cached = keyPool.get(cacheKey);
  if (cached !== undefined) return cached;
  const key = generateTestKey(type);
  keyPool.set(cacheKey, key);
  return key;
}

function generateTestKey(type: TestKeyType): TestKey {
  if (type === 'ed25519') {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url').toString('hex');
    return makeKey(type, { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: raw } }, (m) => sign(null, m, privateKey));
  }
  if (type === 'ecdsa') {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    return makeKey(type, { keytype: 'ecdsa', scheme: 'ecdsa-sha2-nistp256', keyval: { public: pem(publicKey) } },
      (m) => sign('sha256', m, { key: privateKey, dsaEncoding: 'der' }));
  }
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return makeKey(type, { keytype: 'rsa', scheme: 'rsassa-pss-sha256', keyval: { public: pem(publicKey) } },
    (m) => sign('sha256', m, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }));
}

function pem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'spki' }).toString();
}

function makeKey(type: TestKeyType, publicJson: TufJsonObject, signer: (message: Uint8Array) => Buffer): TestKey {
  const keyid = createHash('sha256').update(canonicalBytes(publicJson)).digest('hex');
  return { keyid, type, publicJson, sign: (message) => new Uint8Array(signer(message)) };
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Signs `signed` with each key; `extraSignatures` lets a test add forged or duplicate entries. */
export function signEnvelope(signed: TufJsonObject, keys: readonly TestKey[], extraSignatures: readonly TufJsonObject[] = []): Uint8Array {
  const message = canonicalBytes(signed);
  const signatures = [...keys.map((key) => ({ keyid: key.keyid, sig: hex(key.sign(message)) })), ...extraSignatures];
  return new TextEncoder().encode(JSON.stringify({ signatures, signed }, null, 1));
}

export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** What a path answers: bytes with 200, or a status alone. */
export type Served = { readonly status: 200; readonly bytes: Uint8Array } | { readonly status: number; readonly bytes?: undefined };

type Role = 'root' | 'timestamp' | 'snapshot' | 'targets';

export interface TestRepositoryOptions {
  readonly nowMs: number;
  readonly keyType?: TestKeyType;
  readonly consistentSnapshot?: boolean;
  /** Expiry of every role, from nowMs; tests move it to expire a role. */
  readonly lifetimeMs?: number;
}

const dayMs = 86_400_000;

export class TestTufRepository {
  readonly root: TufJsonObject;
  readonly timestamp: TufJsonObject;
  readonly snapshot: TufJsonObject;
  /** Every targets role by name, `targets` included. */
  readonly targetsRoles = new Map<string, TufJsonObject>();
  /** Signing keys per role (top-level and delegated). */
  readonly signers = new Map<string, TestKey[]>();
  /** Published bytes per role name, by version (index version - 1 for root; the latest last for the rest). */
  readonly published = new Map<string, Map<number, Uint8Array>>();
  /** The bytes published last per role: what an unversioned request gets, even when a test published a lower version last. */
  readonly current = new Map<string, Uint8Array>();
  readonly artifacts = new Map<string, Uint8Array>();
  /** Every path asked for, in order. */
  readonly requests: string[] = [];
  /** Replaces what a path answers (attacks): checked before the published files. */
  readonly overrides = new Map<string, () => Served>();
  private keyIndex = 0;
  readonly keyType: TestKeyType;

  constructor(readonly options: TestRepositoryOptions) {
    this.keyType = options.keyType ?? 'ed25519';
    const expires = isoSeconds(options.nowMs + (options.lifetimeMs ?? 30 * dayMs));
    const common = (type: string): TufJsonObject => ({ _type: type, spec_version: '1.0.31', version: 1, expires });
    this.root = { ...common('root'), consistent_snapshot: options.consistentSnapshot ?? true, keys: {}, roles: {} };
    for (const role of ['root', 'timestamp', 'snapshot', 'targets'] as const) {
      (this.root['roles'] as TufJsonObject)[role] = { keyids: [], threshold: 1 };
      this.addKey(role, this.newKey());
    }
    this.timestamp = { ...common('timestamp'), meta: { 'snapshot.json': { version: 1 } } };
    this.snapshot = { ...common('snapshot'), meta: { 'targets.json': { version: 1 } } };
    this.targetsRoles.set('targets', { ...common('targets'), targets: {} });
    this.publishRoot();
    this.publishAll();
  }

  /** A fresh key of the repository's type, never used before in this repository. */
  newKey(type: TestKeyType = this.keyType): TestKey {
    return testKey(type, this.keyIndex++);
  }

  get targets(): TufJsonObject {
    return this.targetsRoles.get('targets')!;
  }

  /** Adds a key to a top-level role in root (not yet published) and as a signer. */
  addKey(role: Role, key: TestKey): void {
    (this.root['keys'] as TufJsonObject)[key.keyid] = key.publicJson;
    const roleJson = (this.root['roles'] as TufJsonObject)[role] as TufJsonObject;
    (roleJson['keyids'] as string[]).push(key.keyid);
    this.signers.set(role, [...(this.signers.get(role) ?? []), key]);
  }

  /** Removes a key from a top-level role in root (not yet published) and from its signers: a revocation. */
  removeKey(role: Role, keyid: string): void {
    const roleJson = (this.root['roles'] as TufJsonObject)[role] as TufJsonObject;
    roleJson['keyids'] = (roleJson['keyids'] as string[]).filter((id) => id !== keyid);
    this.signers.set(role, this.signers.get(role)!.filter((key) => key.keyid !== keyid));
  }

  /** Replaces a top-level role's keys with `count` fresh ones (in root, not yet published). */
  rotateKeys(role: Role, count = 1): void {
    const roleJson = (this.root['roles'] as TufJsonObject)[role] as TufJsonObject;
    roleJson['keyids'] = [];
    this.signers.set(role, []);
    for (let index = 0; index < count; index++) this.addKey(role, this.newKey());
  }

  setThreshold(role: Role, threshold: number): void {
    ((this.root['roles'] as TufJsonObject)[role] as TufJsonObject)['threshold'] = threshold;
  }

  /** Publishes root as the next version (the first call publishes version 1), signed by `signers` or the root keys. */
  publishRoot(signers?: readonly TestKey[]): Uint8Array {
    const versions = this.versions('root');
    if (versions.size > 0) this.root['version'] = versions.size + 1;
    const bytes = signEnvelope(this.root, signers ?? this.signers.get('root')!);
    versions.set(this.root['version'] as number, bytes);
    this.current.set('root', bytes);
    return bytes;
  }

  /** Adds an artifact to a targets role's metadata (not yet published). */
  addTarget(role: string, path: string, bytes: Uint8Array, extra: TufJsonObject = {}): void {
    const targets = this.targetsRoles.get(role)!['targets'] as TufJsonObject;
    targets[path] = { length: bytes.byteLength, hashes: { sha256: sha256Hex(bytes) }, ...extra };
    this.artifacts.set(path, bytes);
  }

  /** Delegates from `delegator` to a new role with one fresh key (not yet published). */
  addDelegation(delegator: string, role: { name: string; terminating?: boolean; paths?: string[]; path_hash_prefixes?: string[]; threshold?: number }): TestKey {
    const key = this.newKey();
    const delegatorJson = this.targetsRoles.get(delegator)!;
    const delegations = (delegatorJson['delegations'] ??= { keys: {}, roles: [] }) as TufJsonObject;
    (delegations['keys'] as TufJsonObject)[key.keyid] = key.publicJson;
    const { name, terminating = false, threshold = 1, ...paths } = role;
    (delegations['roles'] as TufJson[]).push({ name, keyids: [key.keyid], threshold, terminating, ...paths } as TufJsonObject);
    this.signers.set(name, [key]);
    this.targetsRoles.set(name, { _type: 'targets', spec_version: '1.0.31', version: 1, expires: this.targets['expires']!, targets: {} });
    return key;
  }

  /** Hash-bin delegation (TAP 15) from `delegator`: 2^bitLength roles `<prefix>-<bin>` sharing one fresh key; returns their names. */
  addSuccinctDelegation(delegator: string, bitLength: number, namePrefix: string): string[] {
    const key = this.newKey();
    const delegatorJson = this.targetsRoles.get(delegator)!;
    delegatorJson['delegations'] = {
      keys: { [key.keyid]: key.publicJson },
      succinct_roles: { keyids: [key.keyid], threshold: 1, bit_length: bitLength, name_prefix: namePrefix },
    };
    const width = (2 ** bitLength - 1).toString(16).length;
    const names = Array.from({ length: 2 ** bitLength }, (_, bin) => `${namePrefix}-${bin.toString(16).padStart(width, '0')}`);
    for (const name of names) {
      this.signers.set(name, [key]);
      this.targetsRoles.set(name, { _type: 'targets', spec_version: '1.0.31', version: 1, expires: this.targets['expires']!, targets: {} });
    }
    return names;
  }

  /** Signs and publishes a targets role at its current version and lists it in the snapshot. */
  publishTargets(role: string, options: { bump?: boolean; withHashes?: boolean } = {}): void {
    const json = this.targetsRoles.get(role)!;
    if (options.bump === true) json['version'] = (json['version'] as number) + 1;
    const bytes = signEnvelope(json, this.signers.get(role)!);
    this.versions(role).set(json['version'] as number, bytes);
    this.current.set(role, bytes);
    const meta: TufJsonObject = { version: json['version']! };
    if (options.withHashes === true) Object.assign(meta, { length: bytes.byteLength, hashes: { sha256: sha256Hex(bytes) } });
    (this.snapshot['meta'] as TufJsonObject)[`${role}.json`] = meta;
  }

  publishSnapshot(options: { bump?: boolean; withHashes?: boolean } = {}): void {
    if (options.bump === true) this.snapshot['version'] = (this.snapshot['version'] as number) + 1;
    const bytes = signEnvelope(this.snapshot, this.signers.get('snapshot')!);
    this.versions('snapshot').set(this.snapshot['version'] as number, bytes);
    this.current.set('snapshot', bytes);
    const meta: TufJsonObject = { version: this.snapshot['version']! };
    if (options.withHashes === true) Object.assign(meta, { length: bytes.byteLength, hashes: { sha256: sha256Hex(bytes) } });
    (this.timestamp['meta'] as TufJsonObject)['snapshot.json'] = meta;
  }

  publishTimestamp(options: { bump?: boolean } = {}): void {
    if (options.bump === true) this.timestamp['version'] = (this.timestamp['version'] as number) + 1;
    const bytes = signEnvelope(this.timestamp, this.signers.get('timestamp')!);
    this.versions('timestamp').set(this.timestamp['version'] as number, bytes);
    this.current.set('timestamp', bytes);
  }

  /** Publishes every targets role, the snapshot and the timestamp at their current versions. */
  publishAll(): void {
    for (const role of this.targetsRoles.keys()) this.publishTargets(role);
    this.publishSnapshot();
    this.publishTimestamp();
  }

  /** A new release: bumps and publishes `role` (targets or a delegated role), then snapshot and timestamp. */
  release(role = 'targets'): void {
    this.publishTargets(role, { bump: true });
    this.publishSnapshot({ bump: true });
    this.publishTimestamp({ bump: true });
  }

  /** The bytes of a role's latest (or given) published version. */
  latest(role: string, version?: number): Uint8Array {
    const bytes = version === undefined ? this.current.get(role) : this.versions(role).get(version);
    if (bytes === undefined) throw new Error(`no ${role} version ${version}`);
    return bytes;
  }

  /** Answers a request path relative to the repository (`metadata/...`, `targets/...`), logging it. */
  serve(path: string): Served {
    this.requests.push(path);
    const override = this.overrides.get(path);
    if (override !== undefined) return override();
    if (path.startsWith('metadata/') && path.endsWith('.json')) return this.serveMetadata(path.slice('metadata/'.length, -'.json'.length));
    if (path.startsWith('targets/')) return this.serveTarget(path.slice('targets/'.length));
    return { status: 404 };
  }

  private serveMetadata(name: string): Served {
    const match = /^(\d+)\.(.+)$/.exec(name);
    const consistent = this.root['consistent_snapshot'] === true;
    if (match !== null && (match[2] === 'root' || (consistent && match[2] !== 'timestamp'))) {
      const bytes = this.versions(decodeURIComponent(match[2]!)).get(Number(match[1]));
      return bytes === undefined ? { status: 404 } : { status: 200, bytes };
    }
    if (name === 'root' || (consistent && name !== 'timestamp')) return { status: 404 };
    const role = decodeURIComponent(name);
    return this.versions(role).size === 0 ? { status: 404 } : { status: 200, bytes: this.latest(role) };
  }

  private serveTarget(name: string): Served {
    let path = name;
    if (this.root['consistent_snapshot'] === true) {
      // As the conformance suite's simulator: the prefix must be a hash the metadata lists for the
      // path; the bytes served are whatever the artifact holds now (a test may have replaced them).
      const slash = name.lastIndexOf('/');
      const base = name.slice(slash + 1);
      const dot = base.indexOf('.');
      if (dot === -1) return { status: 404 };
      path = name.slice(0, slash + 1) + base.slice(dot + 1);
      if (!this.listedHashes(path).includes(base.slice(0, dot))) return { status: 404 };
    }
    const bytes = this.artifacts.get(path);
    return bytes === undefined ? { status: 404 } : { status: 200, bytes };
  }

  private listedHashes(path: string): string[] {
    const out: string[] = [];
    for (const json of this.targetsRoles.values()) {
      const entry = (json['targets'] as TufJsonObject)[path] as TufJsonObject | undefined;
      if (entry !== undefined) out.push(String((entry['hashes'] as TufJsonObject)['sha256']));
    }
    return out;
  }

  private versions(role: string): Map<number, Uint8Array> {
    let versions = this.published.get(role);
    if (versions === undefined) {
      versions = new Map();
      this.published.set(role, versions);
    }
    return versions;
  }

  /** The metadata request path for a role, as the client should ask for it. */
  metadataPath(role: string, version?: number): string {
    return `metadata/${version === undefined ? '' : `${version}.`}${quoteRoleName(role)}.json`;
  }
}

/** A TufFileStore in memory, for tests; `files` shows exactly what the client stored. */
export function memoryStore(initial: Iterable<readonly [string, Uint8Array]> = []): TufFileStore & { files: Map<string, Uint8Array> } {
  const files = new Map(initial);
  return {
    files,
    read: async (name) => files.get(name),
    write: async (name, bytes) => {
      files.set(name, bytes);
    },
    delete: async (name) => {
      files.delete(name);
    },
  };
}
