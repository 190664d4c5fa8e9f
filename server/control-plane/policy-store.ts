import { createHash } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { defaultPolicy, parsePolicy, type Policy } from '../../core/protocol/policy.js';
import type { SqlExecutor } from '../stores/sql/sql-port.js';
import { actors, type ServiceContext } from './context.js';

/** The revision number of the built-in default policy, in force while the database holds none. */
export const builtinPolicyRevision = 0;

/** One policy revision as stored (or the built-in default, revision 0, never stored). */
export interface PolicyRevision {
  readonly revision: number;
  /** The parsed, frozen document; its `revision` field equals `revision`. */
  readonly policy: Policy;
  /** SHA-256 of the RFC 8785 canonical document, hex: what the audit entry binds. */
  readonly documentSha256: string;
  /** `user:NAME` or `system`; null for the built-in default. */
  readonly createdBy: string | null;
  readonly createdAtMs: number | null;
}

interface PolicyRow {
  readonly revision: number | string;
  readonly document_json: string;
  readonly document_sha256: string;
  readonly created_by: string;
  readonly created_at: number | string;
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The document as stored: its `revision` field set to the stored revision, so a decision recorded with it names the same number. */
function withRevision(policy: Policy, revision: number): Policy {
  return parsePolicy({ ...policy, revision });
}

const builtin: PolicyRevision = Object.freeze({
  revision: builtinPolicyRevision, policy: withRevision(defaultPolicy, builtinPolicyRevision),
  documentSha256: sha256Hex(canonicalize(withRevision(defaultPolicy, builtinPolicyRevision))), createdBy: null, createdAtMs: null,
});

/**
 * The policy in SQL (migration 009), versioned and audited. Every control plane sharing the
 * database reads the current revision number on each admission (a primary-key MAX, in the same
 * statement as the device's status since issue 17: `latestRevisionSql`, then `at()`), and the
 * document is re-read and re-parsed only when that number changed. A cache with a time to live
 * would be cheaper still, but would let a revoked permission keep working for that long on the
 * other control planes; checking the number makes a new revision apply to the very next command
 * everywhere.
 */
export class PolicyStore {
  readonly #ctx: ServiceContext;
  #cached: PolicyRevision = builtin;

  constructor(context: ServiceContext) {
    this.#ctx = context;
  }

  /** The policy in force now: the highest stored revision, or the built-in default when none is stored. */
  async current(): Promise<PolicyRevision> {
    return this.at(await latestRevision(this.#ctx.db));
  }

  /**
   * The policy of a revision number the caller just read with `latestRevisionSql` (command
   * admission reads it in the same statement as the device's status, issue 17): the cached
   * document when the number is unchanged, else read and parsed once.
   */
  async at(latest: number): Promise<PolicyRevision> {
    if (latest === this.#cached.revision) return this.#cached;
    if (latest === builtinPolicyRevision) return builtin;
    const loaded = await this.#read(this.#ctx.db, latest);
    // Only ever move forward: a slower concurrent read must not put back an older revision.
    if (loaded.revision > this.#cached.revision) this.#cached = loaded;
    return loaded;
  }

  /**
   * Stores `document` as the next revision, if `expectedRevision` is still the current one
   * (POLICY_REVISION_STALE otherwise), with its `policy.revised` audit entry in the same
   * transaction. A document that does not parse is refused by parsePolicy with the bad field's path.
   */
  async set(input: { readonly document: unknown; readonly expectedRevision: number; readonly actor: string }): Promise<PolicyRevision> {
    const parsed = parsePolicy(input.document);
    const stored = await this.#insertNext(parsed, input.expectedRevision, input.actor);
    await this.#ctx.settleAudit();
    return stored;
  }

  /** `sdc serve --policy FILE`: stores the policy as revision 1 only when no revision is stored; answers whether it did. */
  async seed(policy: Policy): Promise<boolean> {
    try {
      await this.#insertNext(policy, builtinPolicyRevision, actors.system);
    } catch (error) {
      // Another control plane seeded first, or an admin already stored one: theirs stands.
      if (SdcError.is(error, 'POLICY_REVISION_STALE')) return false;
      throw error;
    }
    await this.#ctx.settleAudit();
    return true;
  }

  async #insertNext(policy: Policy, expectedRevision: number, actor: string): Promise<PolicyRevision> {
    const nowMs = this.#ctx.clock.nowMs();
    try {
      return await this.#ctx.db.transaction(async (tx) => {
        const current = await latestRevision(tx);
        if (current !== expectedRevision) throw stale(current, expectedRevision);
        const revision = current + 1;
        const document = withRevision(policy, revision);
        const documentJson = canonicalize(document);
        const documentSha256 = sha256Hex(documentJson);
        await tx.execute(
          'INSERT INTO policy_revisions (revision, document_json, document_sha256, created_by, created_at) VALUES (?, ?, ?, ?, ?)',
          [revision, documentJson, documentSha256, actor, nowMs],
        );
        await this.#ctx.audit.record(tx, {
          kind: 'policy.revised', actor, subject: 'policy',
          payload: { revision, previous_revision: current, document_sha256: documentSha256, rules: document.rules.length },
        });
        return { revision, policy: document, documentSha256, createdBy: actor, createdAtMs: nowMs };
      });
    } catch (error) {
      // Two control planes read the same current revision and both inserted the next one: the
      // primary key let one through, and the other is as stale as if it had read later.
      if (SdcError.is(error, 'STORE_UNIQUE_VIOLATION')) throw stale(await latestRevision(this.#ctx.db), expectedRevision);
      throw error;
    }
  }

  async #read(executor: SqlExecutor, revision: number): Promise<PolicyRevision> {
    const [row] = await executor.query<PolicyRow>(
      'SELECT revision, document_json, document_sha256, created_by, created_at FROM policy_revisions WHERE revision = ?', [revision],
    );
    if (row === undefined) throw new SdcError('STORE_CORRUPT', `policy revision ${revision} vanished`, { revision });
    let policy: Policy;
    try {
      policy = parsePolicy(row.document_json);
    } catch (error) {
      // Fail closed: a stored document that no longer parses admits nothing rather than something.
      throw new SdcError('STORE_CORRUPT', `stored policy revision ${revision} does not parse`, { revision }, { cause: error });
    }
    if (policy.revision !== revision || sha256Hex(row.document_json) !== row.document_sha256) {
      throw new SdcError('STORE_CORRUPT', `stored policy revision ${revision} does not match its revision number or hash`, { revision });
    }
    return { revision, policy, documentSha256: row.document_sha256, createdBy: row.created_by, createdAtMs: Number(row.created_at) };
  }
}

/** The current revision number as a one-row, one-column (`revision`) query, for a statement that reads it with other facts. */
export const latestRevisionSql = 'SELECT MAX(revision) AS revision FROM policy_revisions';

/** The `revision` that latestRevisionSql answered, as a revision number (NULL: none stored, the built-in default). */
export function revisionOf(value: unknown): number {
  return value === null || value === undefined ? builtinPolicyRevision : Number(value);
}

/**
 * The current revision number, read inside `tx` so that no newer revision can commit before `tx`
 * does: on MySQL a shared locking read of the newest row (a next-key lock on it and the gap
 * after), which the next revision's INSERT waits for; SQLite runs one transaction at a time. For a
 * change judged against the policy (a tag change, decision 0013) that must not commit beside a
 * revision it was not judged against (review finding 4, 2026-12-05).
 */
export async function latestRevisionLocked(tx: SqlExecutor): Promise<number> {
  const lockingRead = tx.dialect === 'mysql' ? ' LOCK IN SHARE MODE' : '';
  const [row] = await tx.query<{ revision: number | string | null }>(`SELECT revision FROM policy_revisions ORDER BY revision DESC LIMIT 1${lockingRead}`);
  return revisionOf(row?.revision);
}

async function latestRevision(executor: SqlExecutor): Promise<number> {
  const [row] = await executor.query<{ revision: number | string | null }>(latestRevisionSql);
  return revisionOf(row?.revision);
}

function stale(current: number, given: number): SdcError {
  return new SdcError('POLICY_REVISION_STALE', `policy revision ${given} is not the current one (${current}); read it again and re-apply the change`, { current, given });
}
