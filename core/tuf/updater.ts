import { SdcError } from '../errors/index.js';
import type { TufCrypto } from './crypto-port.js';
import type { Delegations, MetaFile, Root, TargetFile } from './metadata.js';
import { rolesForTarget } from './roles.js';
import { TrustedSet, verifyLengthAndHashes } from './trusted-set.js';

/**
 * The TUF client workflow (specification section 5) as a sans-IO state machine: a generator that
 * yields each I/O step it needs (read or write a local file, fetch a URL) and is resumed with the
 * step's result. The driver (agent/tuf/driver.ts) performs the steps; tests drive it with an
 * in-memory repository and no I/O at all. Every refusal is thrown out of the generator as an
 * SdcError TUF_*; steps only ever ask for what the workflow needs (no speculative requests).
 */

/** What the workflow asks its driver to do. */
export type TufStep =
  | { readonly kind: 'read-metadata'; readonly fileName: string }
  | { readonly kind: 'write-metadata'; readonly fileName: string; readonly bytes: Uint8Array }
  | { readonly kind: 'delete-metadata'; readonly fileName: string }
  | { readonly kind: 'read-target'; readonly fileName: string }
  | { readonly kind: 'write-target'; readonly fileName: string; readonly bytes: Uint8Array }
  | { readonly kind: 'fetch'; readonly url: string; readonly bytesMax: number; readonly purpose: string };

/**
 * A fetch's outcome. The driver enforces `bytesMax` (TUF_TOO_LARGE) and its time limit
 * (TUF_DOWNLOAD_TIMEOUT) while reading, and reports HTTP errors with their status, because the
 * workflow treats 403 and 404 on the next root as "no newer root" and every other failure as fatal.
 */
export type FetchOutcome =
  | { readonly ok: true; readonly bytes: Uint8Array }
  | { readonly ok: false; readonly status?: number; readonly error: SdcError };

/** Local reads answer the bytes or undefined (no such file); writes and deletes answer undefined. */
export type StepResult = FetchOutcome | Uint8Array | undefined;

export type Workflow<T> = Generator<TufStep, T, StepResult>;

/** Byte limits and counts; the defaults are TUF's reference client's (python-tuf UpdaterConfig). */
export interface UpdaterLimits {
  /** Root versions fetched in one refresh: bounds the loop against an endless chain of roots. */
  readonly rootRotationsMax: number;
  /** Roles visited in one target search: bounds the walk of a cyclic or huge delegation graph. */
  readonly delegationsMax: number;
  readonly rootBytesMax: number;
  readonly timestampBytesMax: number;
  /** Used when the timestamp does not give the snapshot's length. */
  readonly snapshotBytesMax: number;
  /** Used when the snapshot does not give a targets role's length. */
  readonly targetsBytesMax: number;
}

export const defaultUpdaterLimits: UpdaterLimits = {
  rootRotationsMax: 256,
  delegationsMax: 32,
  rootBytesMax: 512_000,
  timestampBytesMax: 16_384,
  snapshotBytesMax: 2_000_000,
  targetsBytesMax: 5_000_000,
};

export interface UpdaterOptions {
  readonly metadataBaseUrl: string;
  readonly targetBaseUrl?: string;
  /** The reference time for every expiry check, from the caller's clock. */
  readonly nowMs: number;
  readonly crypto: TufCrypto;
  readonly limits?: Partial<UpdaterLimits>;
}

export interface TargetInfo extends TargetFile {
  /** The role that listed the target. */
  readonly role: string;
}

/** Metadata file names in the local store: top-level roles by name, delegated roles URL-quoted so no name can make a path. */
export function metadataFileName(roleName: string): string {
  return `${quoteRoleName(roleName)}.json`;
}

/** Python's urllib.parse.quote(name, safe=''): what TUF's reference client puts in URLs, and the conformance suite expects. */
export function quoteRoleName(roleName: string): string {
  return encodeURIComponent(roleName).replace(/[!'()*]/g, (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`);
}

export class Updater {
  readonly limits: UpdaterLimits;
  #trusted: TrustedSet | undefined;

  constructor(private readonly options: UpdaterOptions) {
    this.limits = { ...defaultUpdaterLimits, ...options.limits };
  }

  /** The trusted metadata after a refresh (for reports and tests). */
  get trusted(): TrustedSet | undefined {
    return this.#trusted;
  }

  /** Sections 5.2-5.6 for the top-level roles: root rotation, timestamp, snapshot, targets. */
  *refresh(): Workflow<void> {
    const rootBytes = yield { kind: 'read-metadata', fileName: 'root.json' };
    if (!(rootBytes instanceof Uint8Array)) throw new SdcError('TUF_NO_TRUSTED_ROOT', 'no root.json in the metadata directory');
    this.#trusted = trustInitialRoot(rootBytes, this.options);
    yield* this.loadRoot(this.#trusted);
    yield* this.loadTimestamp(this.#trusted);
    yield* this.loadSnapshot(this.#trusted);
    yield* this.loadTargets(this.#trusted, 'targets', 'root');
  }

  /** Refreshes, then finds the target by pre-order depth-first search of the delegations (section 5.6.7). */
  *targetInfo(targetPath: string): Workflow<TargetInfo> {
    if (this.#trusted === undefined) yield* this.refresh();
    const trusted = this.#trusted!;
    const toVisit: Array<readonly [role: string, delegator: string]> = [['targets', 'root']];
    const visited = new Set<string>();
    let budget = this.limits.delegationsMax;
    while (budget > 0 && toVisit.length > 0) {
      const [role, delegator] = toVisit.pop()!;
      const key = `${role}\u0000${delegator}`;
      if (visited.has(key)) continue; // a cycle in the delegation graph is visited once
      const targets = yield* this.loadTargets(trusted, role, delegator);
      const target = targets.targets.get(targetPath);
      if (target !== undefined) return { ...target, role };
      visited.add(key);
      budget--;
      if (targets.delegations === undefined) continue;
      const { children, terminated } = this.childrenToVisit(targets.delegations, role, targetPath);
      if (terminated) toVisit.length = 0;
      toVisit.push(...children.reverse());
    }
    throw new SdcError('TUF_TARGET_NOT_FOUND', `no trusted role lists ${targetPath}`, { target: targetPath });
  }

  /**
   * The delegated roles of `role` trusted for the path, in order, up to and including the first
   * terminating one: a terminating delegation ends the search below it, so no role after it, nor
   * any still queued from higher up, is asked.
   */
  private childrenToVisit(delegations: Delegations, role: string, targetPath: string): { children: Array<readonly [string, string]>; terminated: boolean } {
    const children: Array<readonly [string, string]> = [];
    for (const child of rolesForTarget(delegations, targetPath, (bytes) => sha256(this.options.crypto, bytes))) {
      children.push([child.name, role]);
      if (child.terminating) return { children, terminated: true };
    }
    return { children, terminated: false };
  }

  /**
   * Section 5.7: the target's bytes, checked for length and every listed hash. A copy already in
   * the target directory that still matches is used without a download (the conformance suite's
   * artifact cache). Under consistent snapshots the file is fetched under its hash-prefixed name.
   */
  *downloadTarget(targetPath: string): Workflow<{ fileName: string; downloaded: boolean }> {
    const info = yield* this.targetInfo(targetPath);
    const fileName = quoteRoleName(info.path);
    const cached = yield { kind: 'read-target', fileName };
    if (cached instanceof Uint8Array && matchesTarget(cached, info, this.options.crypto)) return { fileName, downloaded: false };
    const outcome = yield { kind: 'fetch', url: this.targetUrl(info), bytesMax: info.length, purpose: `target ${info.path}` };
    const bytes = fetched(outcome);
    verifyLengthAndHashes({ what: info.path, bytes, expected: info, crypto: this.options.crypto });
    yield { kind: 'write-target', fileName, bytes };
    return { fileName, downloaded: true };
  }

  private *loadRoot(trusted: TrustedSet): Workflow<void> {
    const firstVersion = trusted.root.version + 1;
    for (let version = firstVersion; version < firstVersion + this.limits.rootRotationsMax; version++) {
      const outcome = yield this.fetchStep(this.metadataUrl('root', version), this.limits.rootBytesMax, `root version ${version}`);
      if (isNotFound(outcome)) break; // no newer root
      const bytes = fetched(outcome);
      const before = trusted.root;
      const after = trusted.updateRoot(bytes);
      yield { kind: 'write-metadata', fileName: 'root.json', bytes };
      // Section 5.3.11: after a timestamp or snapshot key rotation the old files may carry versions
      // the new keys never signed (a fast-forward attack's leftovers); drop both so they are not
      // a rollback floor, and the repository can recover with lower versions. A rotation here is
      // a key removed from the role: that is how a repository revokes a compromised key. Keys only
      // added, or a threshold changed, delete nothing (the stored files must still verify under
      // the new root to count, and the conformance suite expects them kept after such a change).
      if (keysRevoked(before, after, 'timestamp') || keysRevoked(before, after, 'snapshot')) {
        yield { kind: 'delete-metadata', fileName: 'timestamp.json' };
        yield { kind: 'delete-metadata', fileName: 'snapshot.json' };
      }
    }
    trusted.checkFinalRoot();
  }

  private *loadTimestamp(trusted: TrustedSet): Workflow<void> {
    const local = yield { kind: 'read-metadata', fileName: 'timestamp.json' };
    // A local file that no longer verifies (keys rotated, damaged) is no floor: ignore it. An
    // expired one is kept by the trusted set as the floor for rollback checks, then ignored here.
    if (local instanceof Uint8Array) ignoreRefusal(() => trusted.updateTimestamp(local));
    const outcome = yield this.fetchStep(this.metadataUrl('timestamp'), this.limits.timestampBytesMax, 'timestamp');
    const bytes = fetched(outcome);
    if (trusted.updateTimestamp(bytes) === 'unchanged') return;
    yield { kind: 'write-metadata', fileName: 'timestamp.json', bytes };
  }

  private *loadSnapshot(trusted: TrustedSet): Workflow<void> {
    const local = yield { kind: 'read-metadata', fileName: 'snapshot.json' };
    if (local instanceof Uint8Array && ignoreRefusal(() => trusted.updateSnapshot(local, true))) return;
    const meta = trusted.timestamp!.snapshotMeta;
    const url = this.metadataUrl('snapshot', trusted.root.consistentSnapshot ? meta.version : undefined);
    const outcome = yield this.fetchStep(url, meta.length ?? this.limits.snapshotBytesMax, 'snapshot');
    const bytes = fetched(outcome);
    trusted.updateSnapshot(bytes, false);
    yield { kind: 'write-metadata', fileName: 'snapshot.json', bytes };
  }

  private *loadTargets(trusted: TrustedSet, role: string, delegator: string): Workflow<ReturnType<TrustedSet['updateDelegatedTargets']>> {
    const already = trusted.targets(role);
    if (already !== undefined) return already;
    const fileName = metadataFileName(role);
    const local = yield { kind: 'read-metadata', fileName };
    if (local instanceof Uint8Array) {
      const fromLocal = ignoreRefusal(() => trusted.updateDelegatedTargets(local, role, delegator));
      if (fromLocal !== undefined) return fromLocal;
    }
    const meta: MetaFile = trusted.snapshotMetaFor(role);
    const url = this.metadataUrl(role, trusted.root.consistentSnapshot ? meta.version : undefined);
    const outcome = yield this.fetchStep(url, meta.length ?? this.limits.targetsBytesMax, role);
    const bytes = fetched(outcome);
    const targets = trusted.updateDelegatedTargets(bytes, role, delegator);
    yield { kind: 'write-metadata', fileName, bytes };
    return targets;
  }

  private fetchStep(url: string, bytesMax: number, purpose: string): TufStep {
    return { kind: 'fetch', url, bytesMax, purpose };
  }

  private metadataUrl(role: string, version?: number): string {
    const prefix = version === undefined ? '' : `${version}.`;
    return `${withTrailingSlash(this.options.metadataBaseUrl)}${prefix}${quoteRoleName(role)}.json`;
  }

  private targetUrl(info: TargetInfo): string {
    if (this.options.targetBaseUrl === undefined) throw new SdcError('PROTO_INVALID_ARGUMENT', 'downloading a target needs a target base URL');
    let path = info.path;
    if (this.#trusted!.root.consistentSnapshot) {
      // Section 5.7.3: consistent snapshots name a target <dir>/<hash>.<basename>, by its first listed hash.
      const slash = path.lastIndexOf('/');
      path = `${path.slice(0, slash + 1)}${info.hashes[0]![1]}.${path.slice(slash + 1)}`;
    }
    return `${withTrailingSlash(this.options.targetBaseUrl)}${path}`;
  }
}

function trustInitialRoot(rootBytes: Uint8Array, options: UpdaterOptions): TrustedSet {
  try {
    return new TrustedSet(rootBytes, options.nowMs, options.crypto);
  } catch (error) {
    if (!(error instanceof SdcError)) throw error;
    throw new SdcError('TUF_NO_TRUSTED_ROOT', `the local root.json is not trusted: ${error.code}: ${error.message}`, {}, { cause: error });
  }
}

function isNotFound(outcome: StepResult): boolean {
  if (outcome === undefined || outcome instanceof Uint8Array || outcome.ok) return false;
  return outcome.status === 404 || outcome.status === 403;
}

function fetched(outcome: StepResult): Uint8Array {
  if (outcome === undefined || outcome instanceof Uint8Array) throw new SdcError('PROTO_INVALID_ARGUMENT', 'a fetch step must be answered with a FetchOutcome');
  if (!outcome.ok) throw outcome.error;
  return outcome.bytes;
}

/** Runs `update` and answers its result, or undefined when it refused (an SdcError); anything else is a bug and propagates. */
function ignoreRefusal<T>(update: () => T): T | undefined {
  try {
    return update();
  } catch (error) {
    if (error instanceof SdcError && error.code !== 'PROTO_INVALID_ARGUMENT') return undefined;
    throw error;
  }
}

function keysRevoked(before: Root, after: Root, role: 'timestamp' | 'snapshot'): boolean {
  const kept = new Set(after.roles[role].keyids);
  return before.roles[role].keyids.some((keyid) => !kept.has(keyid));
}

function matchesTarget(bytes: Uint8Array, info: TargetInfo, crypto: TufCrypto): boolean {
  return ignoreRefusal(() => {
    verifyLengthAndHashes({ what: info.path, bytes, expected: info, crypto });
    return true;
  }) === true;
}

function sha256(crypto: TufCrypto, bytes: Uint8Array): Uint8Array {
  const digest = crypto.digest('sha256', bytes);
  if (digest === undefined) throw new SdcError('PROTO_INVALID_ARGUMENT', 'the TUF crypto port must compute sha256');
  return digest;
}

function withTrailingSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}
