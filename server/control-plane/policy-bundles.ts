import { createHash } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';
import { isDeviceId } from '../../core/protocol/device-id.js';
import { CommandTtlMsMax } from '../../core/protocol/messages/command.js';
import { cutPolicyBundle, policyBundleLimits, signPolicyBundleText, type ApproverKeyEntry } from '../../core/protocol/policy-bundle.js';
import { policyRoles, type Policy, type PolicyRole } from '../../core/protocol/policy.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import type { SqlExecutor } from '../stores/sql/sql-port.js';
import { policyBundleChannels, policyBundleKeys } from '../bus-contract/policy-bundle-keys.js';
import type { ServiceContext } from './context.js';
import { latestRevisionSql, revisionOf, type PolicyRevision } from './policy-store.js';

export interface PolicyBundleSignerKey {
  readonly kid: string;
  readonly seed: Uint8Array;
}

export interface PolicyBundlePublisherOptions {
  readonly context: ServiceContext;
  /** The policy in force (PolicyStore.current). */
  readonly currentPolicy: () => Promise<PolicyRevision>;
  /** The command-signing key: agents pin it at enrollment and verify bundles with it. */
  readonly signer: PolicyBundleSignerKey;
  /** The device's tags for tag selectors; default none (the control plane's own check still sees them). */
  readonly deviceTags?: (deviceId: string) => Promise<readonly string[]>;
  /**
   * The policy in force and the device's tags read together (sqlPolicyAndDeviceTags): when given,
   * used instead of `currentPolicy` and `deviceTags` (one statement per bundle on MySQL).
   */
  readonly policyAndTags?: (deviceId: string) => Promise<PolicyAndTags>;
  /**
   * The signing keys of approvers with one of `roles`, for the approvals commands carry
   * (sqlApproverKeys); default none: a command that needs approvals is then refused on the device.
   */
  readonly approverKeys?: (roles: readonly PolicyRole[]) => Promise<readonly ApproverKeyEntry[]>;
  readonly validityMs?: number;
}

/** The tags a bundle lists at most (its schema's bound). */
const bundleTagsMax = 256;
const asciiOnly = /^[\x00-\x7f]*$/;

/** The device's tags from SQL (device_tags, migration 011), at most the 256 the bundle schema takes, in order. */
export function sqlDeviceTags(db: SqlExecutor): (deviceId: string) => Promise<readonly string[]> {
  const ordered = async (deviceId: string): Promise<string[]> =>
    (await db.query<{ tag: string }>(`SELECT tag FROM device_tags WHERE device_id = ? ORDER BY tag LIMIT ${bundleTagsMax}`, [deviceId])).map((row) => row.tag);
  if (db.dialect === 'mysql') return ordered;
  // Issue 17: in sql.js's SQLite the ORDER BY with a bound parameter cost 7.4-11.4 µs warm against
  // 2.5 for the read without it (same index search; 2026-12-06 late morning (h14) in
  // docs/benchmarks.md), once per AUTH. Sorted here as SQLite's BINARY collation sorts: byte order,
  // which is code-unit order for ASCII (every tag the API stores); any other row, or more than
  // 256 tags, is read by the ordered statement.
  return async (deviceId) => {
    const tags = (await db.query<{ tag: string }>(`SELECT tag FROM device_tags WHERE device_id = ? LIMIT ${bundleTagsMax + 1}`, [deviceId])).map((row) => row.tag);
    if (tags.length > bundleTagsMax || tags.some((tag) => typeof tag !== 'string' || !asciiOnly.test(tag))) return ordered(deviceId);
    return tags.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  };
}

/** What a bundle is cut from: the policy in force and the device's tags. */
export interface PolicyAndTags {
  readonly current: PolicyRevision;
  readonly tags: readonly string[];
}

/**
 * The current revision number and the device's tags (as sqlDeviceTags reads them), then the policy
 * of that number (`policyAt`, PolicyStore.at: cached while the number is unchanged). On MySQL in
 * one statement, a round trip less per AUTH in a reconnect storm (issue 15); on sql.js as the two
 * statements they were: in-process a statement costs about 2 µs, and the one-statement forms
 * measured cost more than the two (13-19 µs against 8.5, 2026-12-05 in docs/benchmarks.md). The
 * number is still read from the database for every bundle: a revision stored by any control
 * plane is in the next bundle cut anywhere.
 */
export function sqlPolicyAndDeviceTags(db: SqlExecutor, policyAt: (revision: number) => Promise<PolicyRevision>): (deviceId: string) => Promise<PolicyAndTags> {
  const tagsOf = sqlDeviceTags(db);
  return async (deviceId) => {
    if (db.dialect !== 'mysql') {
      const [latest] = await db.query<{ revision: number | string | null }>(latestRevisionSql);
      return { current: await policyAt(revisionOf(latest?.revision)), tags: await tagsOf(deviceId) };
    }
    // One row at least (the MAX's), with a NULL tag when the device has none.
    const rows = await db.query<{ revision: number | string | null; tag: string | null }>(
      `SELECT r.revision, t.tag FROM (${latestRevisionSql}) r
       LEFT JOIN (SELECT tag FROM device_tags WHERE device_id = ? ORDER BY tag LIMIT 256) t ON 1 = 1 ORDER BY t.tag`, [deviceId]);
    if (rows.length === 0) throw new SdcError('STORE_CONFLICT', 'the policy and tags read answered no row');
    const tags = rows.flatMap((row) => (row.tag === null ? [] : [row.tag]));
    return { current: await policyAt(revisionOf(rows[0]!.revision)), tags };
  };
}

/** The roles any rule of the policy takes approvals from: the approvers a bundle lists. */
function approvalRolesOf(policy: Policy): PolicyRole[] {
  return [...new Set(policy.rules.flatMap((rule) => rule.conditions?.approval?.roles ?? []))].sort();
}

/** The bundle's approvers list is bounded by its schema (256 entries). */
const approverKeysMax = 256;
const approverNamePattern = /^[A-Za-z0-9_.@-]{1,128}$/;

/**
 * Approver keys from SQL (user_signing_keys, migration 012, joined with users for the role):
 * current keys, and keys retired within the longest command lifetime, because a command approved
 * with a key retired since may still arrive; at most 256, by kid.
 */
export function sqlApproverKeys(db: SqlExecutor, nowMs: () => number): (roles: readonly PolicyRole[]) => Promise<readonly ApproverKeyEntry[]> {
  return async (roles) => {
    if (roles.length === 0) return [];
    const rows = await db.query<{ kid: string; user_name: string; public_key: string; role: string }>(
      'SELECT k.kid, k.user_name, k.public_key, u.role FROM user_signing_keys k JOIN users u ON u.name = k.user_name '
        + `WHERE (k.retired_at IS NULL OR k.retired_at > ?) AND u.role IN (${roles.map(() => '?').join(', ')}) ORDER BY k.kid LIMIT ${approverKeysMax}`,
      [nowMs() - CommandTtlMsMax, ...roles]);
    return rows.flatMap((row) => (policyRoles as readonly string[]).includes(row.role) && approverNamePattern.test(row.user_name)
      ? [{ approver: row.user_name, role: row.role as PolicyRole, kid: row.kid, public_key: row.public_key }] : []);
  };
}

export const policyBundlePublisherLimits = Object.freeze({
  /**
   * Device ids waiting to be signed; more are dropped (logged): the gateway asks again at the
   * device's next AUTH. A revision change asks for every connected device at once, so this is
   * sized for a large fleet's burst; each entry is a device id.
   */
  pendingMax: 20_000,
});

/**
 * The control plane's half of the bundle push: signs a device's bundle when a gateway asks
 * (policyBundleChannels.requests), stores it under policyBundleKeys.bundle and announces it
 * (policyBundleChannels.ready); announces each new policy revision it notices (checkRevision, on
 * a timer), so gateways ask for their devices' bundles. Signing is per request rather than for
 * every enrolled device at each revision, so its cost follows the devices that are connected.
 */
export class PolicyBundlePublisher {
  readonly #o: PolicyBundlePublisherOptions;
  readonly #pending = new Set<string>();
  #draining: Promise<void> | undefined;
  #unsubscribe: (() => Promise<void>) | undefined;
  #announcedRevision: number | undefined;
  /** The approver-keys digest this control plane last saw (checkApprovers). */
  #approversDigest: string | undefined;
  droppedTotal = 0;

  constructor(options: PolicyBundlePublisherOptions) {
    this.#o = options;
  }

  async start(): Promise<void> {
    this.#unsubscribe = await this.#o.context.kv.subscribe(policyBundleChannels.requests, (deviceId) => this.request(deviceId));
    await this.checkRevision();
  }

  async stop(): Promise<void> {
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    await unsubscribe?.().catch((error: unknown) => this.#o.context.logger.warn({ err: error }, 'policy bundle request unsubscribe failed'));
    await this.#draining;
  }

  /** Queues a device for signing (deduplicated, bounded); a malformed id is ignored. */
  request(deviceId: string): void {
    if (!isDeviceId(deviceId)) {
      this.#o.context.logger.warn({ deviceId: String(deviceId).slice(0, 64) }, 'policy bundle request for a malformed device id ignored');
      return;
    }
    if (!this.#pending.has(deviceId) && this.#pending.size >= policyBundlePublisherLimits.pendingMax) {
      this.droppedTotal += 1;
      return;
    }
    this.#pending.add(deviceId);
    // Started on a later tick, so a burst of requests for one device is signed once.
    this.#draining ??= Promise.resolve().then(() => this.#drain()).finally(() => { this.#draining = undefined; });
  }

  /** Resolves when every queued request has been signed (tests). */
  async idle(): Promise<void> {
    while (this.#draining !== undefined) await this.#draining;
  }

  /**
   * Publishes the revision in force when it differs from the one announced last (every control
   * plane may; a repeat is harmless); then checks the approvers' keys (checkApprovers).
   */
  async checkRevision(): Promise<void> {
    const { revision } = await this.#o.currentPolicy();
    if (revision !== this.#announcedRevision) {
      const { kv } = this.#o.context;
      await kv.set(policyBundleKeys.revision, String(revision));
      await kv.publish(policyBundleChannels.revision, String(revision));
      this.#announcedRevision = revision;
      this.#o.context.logger.info({ revision }, 'policy revision announced for bundles');
    }
    await this.checkApprovers();
  }

  /**
   * Announces a change of the approver keys bundles carry (security review finding 2): a user
   * removed, a role changed, a key registered (its predecessor retired) or a retired key aged
   * out. Devices check a command's approvals against their bundle's list, so without a re-cut a
   * removed approver's key stays trusted on the device for up to half the bundle's validity.
   * Noticed by comparing a digest of the list (sqlApproverKeys: one bounded read, every
   * checkRevision tick) with the one stored under policyBundleKeys.approversDigest, so a change
   * made through any route, or on any control plane, is seen within a tick. On a change: the time
   * under policyBundleKeys.inputsChangedAt and a notice on policyBundleChannels.inputs; gateways
   * then ask again for their devices' bundles, and treat any stored bundle issued before that time
   * as stale. The first digest stored (none before) is a baseline, not a change: the bundles were
   * cut from the same rows; after a wipe of the key/value store, this process's own last digest
   * stands in for the stored one. The digest is stored after the announcement, so a failure
   * between them repeats the announcement instead of losing it.
   */
  async checkApprovers(): Promise<void> {
    if (this.#o.approverKeys === undefined) return;
    const { policy } = await this.#o.currentPolicy();
    const keys = await this.#o.approverKeys(approvalRolesOf(policy));
    const digest = createHash('sha256').update(canonicalize(keys.map((key) => ({ ...key })))).digest('hex');
    if (digest === this.#approversDigest) return;
    const { kv, clock, logger } = this.#o.context;
    const stored = await kv.get(policyBundleKeys.approversDigest);
    // A change when it differs from a digest seen before: the stored one, or (the key/value store
    // wiped) this process's own, so a change made while the store was empty is not taken for the
    // baseline.
    if (stored !== digest && (stored !== null || this.#approversDigest !== undefined)) {
      const atMs = clock.nowMs();
      await kv.set(policyBundleKeys.inputsChangedAt, String(atMs));
      await kv.publish(policyBundleChannels.inputs, String(atMs));
      logger.info({ approverKeys: keys.length, atMs }, 'approver keys changed: bundles re-cut');
    }
    // Written only after the announcement (review finding 2, 2026-12-05): a write or publish that
    // fails, or a process that dies in between, leaves the old digest stored, so the next tick (on
    // any control plane) announces again rather than taking the change as already announced. A
    // repeated announcement only re-cuts bundles once more.
    if (stored !== digest) await kv.set(policyBundleKeys.approversDigest, digest);
    this.#approversDigest = digest;
  }

  async #drain(): Promise<void> {
    while (this.#pending.size > 0) {
      const deviceId = this.#pending.values().next().value as string;
      this.#pending.delete(deviceId);
      try {
        await this.publish(deviceId);
      } catch (error) {
        const code = SdcError.is(error) ? error.code : undefined;
        this.#o.context.logger.error({ err: error, deviceId, code }, 'policy bundle not published');
      }
    }
  }

  /** Cuts, signs, stores and announces one device's bundle from the policy in force. */
  async publish(deviceId: string): Promise<number> {
    const { context, signer } = this.#o;
    const { current, tags } = await this.#policyAndTags(deviceId);
    const issuedAtMs = context.clock.nowMs();
    const validityMs = this.#o.validityMs ?? policyBundleLimits.validityMsDefault;
    const approvers = this.#o.approverKeys === undefined ? [] : await this.#o.approverKeys(approvalRolesOf(current.policy));
    const bundle = cutPolicyBundle({ policy: current.policy, version: current.revision, device: { id: deviceId, tags }, issuedAtMs, validityMs, approvers });
    // Signed and written out with the bundle canonicalized once (core/protocol/policy-bundle.ts).
    const { text } = signPolicyBundleText({ bundle, kid: signer.kid, seed: signer.seed, provider: context.ed25519 });
    await context.kv.set(policyBundleKeys.bundle(deviceId), text, { ttlMs: validityMs });
    await context.kv.publish(policyBundleChannels.ready, deviceId);
    return current.revision;
  }

  async #policyAndTags(deviceId: string): Promise<PolicyAndTags> {
    if (this.#o.policyAndTags !== undefined) return this.#o.policyAndTags(deviceId);
    const current = await this.#o.currentPolicy();
    return { current, tags: this.#o.deviceTags === undefined ? [] : await this.#o.deviceTags(deviceId) };
  }
}
