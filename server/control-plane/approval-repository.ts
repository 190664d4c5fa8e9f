import { SdcError } from '../../core/errors/index.js';
import type { AuditLog } from '../../core/protocol/audit-chain.js';
import type { AuditRecord } from '../../core/protocol/command-decisions.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import type { ApprovalDecision, ApprovalSubject } from '../../core/protocol/approvals.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import type { PolicyRole } from '../../core/protocol/policy.js';
import type { SqlDatabase, SqlExecutor } from '../stores/sql/sql-port.js';
import { nextCounterValue } from './stores/counters.js';
import { deviceSeqCounterName } from './command-device-seqs.js';

/**
 * The SQL of the approval flow (migration 012): pending commands (a `commands` row in state
 * `pending_approval` with no seq and no signature yet), the approvers' signed decisions, the
 * release that signs and queues a command, and the rejection that ends it. Every change commits
 * with its history row and its audit outbox row; state changes are compare-and-set on
 * `pending_approval`, so of two control planes releasing (or one releasing, one rejecting) one wins.
 */

/** What a pending command waits for, stored as `commands.approval_json`. */
export interface PendingApproval {
  readonly rule_id: string;
  readonly count: number;
  readonly roles: readonly PolicyRole[];
  readonly requester_role: PolicyRole;
  readonly policy_revision: number;
  /** The subject approvers sign (its hash is `command_sha256`), kept as it was at creation. */
  readonly subject: ApprovalSubject;
  readonly command_sha256: string;
  /**
   * The facts admission judged the request with that release must judge it with again (absent in
   * rows stored before it was kept): the stated reason, and per rate-limit key the count before
   * this command, whose place in the window admission reserved and kept (counting it again at
   * release would count the command twice); `rate_places`, the window buckets of those places,
   * given back when the command ends without running (PolicyFacts.releasePlaces; absent in rows
   * stored before 2026-12-06, whose places lapse with their window).
   */
  readonly admission?: { readonly reason?: string; readonly rate_counts?: Readonly<Record<string, number>>; readonly rate_places?: readonly string[] };
}

/** One approver's stored decision. */
export interface ApprovalRow {
  readonly command_id: string;
  readonly approver: string;
  readonly decision: ApprovalDecision;
  readonly role: PolicyRole;
  readonly kid: string;
  readonly expires_at: number;
  readonly signature: string;
  readonly reason: string | null;
  readonly created_at: number;
}

/** Thrown inside a transaction when the command was no longer pending: rolls it back. */
class NoLongerPending extends Error {}

/** An approver and their key as committed when the release's transaction read them (absent: no such user, no such key). */
export interface ApproverNow {
  readonly role: string | undefined;
  readonly key: { readonly userName: string; readonly retiredAtMs: number | null } | undefined;
}

/**
 * Thrown by `release` (and its transaction rolled back) when an approval it was to embed no longer
 * holds, judged inside the transaction: the caller drops it (audited) and judges the release again.
 */
export class ApprovalsChanged extends Error {
  constructor(readonly approvers: readonly string[]) {
    super(`approvals by ${approvers.join(', ')} no longer hold`);
  }
}

export class ApprovalRepository {
  readonly #db: SqlDatabase;
  readonly #audit: AuditLog<SqlExecutor>;

  constructor(options: { db: SqlDatabase; audit: AuditLog<SqlExecutor> }) {
    this.#db = options.db;
    this.#audit = options.audit;
  }

  /** Stores a command that waits for approvals, its first history entry and its audit entry, in one transaction. */
  async insertPending(row: {
    subject: ApprovalSubject; pending: PendingApproval; createdBy: string; idempotencyKey: string | null; argsJson: string; atMs: number; audit: AuditRecord;
    /** The request's W3C traceparent: the release dispatches under the same trace id (migration 017). */
    traceparent?: string;
  }): Promise<void> {
    const { subject } = row;
    await this.#db.transaction(async (tx) => {
      await tx.execute(
        `INSERT INTO commands (id, device_id, opcode, args_json, state, created_by, idempotency_key, device_seq, signed_json, expires_at, attempts, created_at, updated_at, approval_json, traceparent)
         VALUES (?, ?, ?, ?, 'pending_approval', ?, ?, NULL, NULL, ?, 0, ?, ?, ?, ?)`,
        [subject.id, subject.device_id, subject.opcode, row.argsJson, row.createdBy, row.idempotencyKey, subject.expires_at, row.atMs, row.atMs, canonicalize(row.pending), row.traceparent ?? null],
      );
      await appendHistory(tx, subject.id, 'pending_approval', row.atMs, { event: 'create', by: row.createdBy, rule_id: row.pending.rule_id });
      await this.#audit.record(tx, row.audit);
    });
  }

  /** The decisions recorded for these commands, oldest first. */
  async decisionsOf(commandIds: readonly string[]): Promise<ApprovalRow[]> {
    if (commandIds.length === 0) return [];
    const rows = await this.#db.query<ApprovalRow>(
      `SELECT * FROM command_approvals WHERE command_id IN (${commandIds.map(() => '?').join(', ')}) ORDER BY created_at ASC, approver ASC`, [...commandIds]);
    return rows.map((row) => ({ ...row, expires_at: Number(row.expires_at), created_at: Number(row.created_at) }));
  }

  /** Stores an approval (the command stays pending), with its audit entry. APPROVAL_DUPLICATE when this approver decided already. */
  async recordApproval(row: ApprovalRow, audit: AuditRecord): Promise<void> {
    await this.#inTransaction(async (tx) => {
      await requirePending(tx, row.command_id);
      await insertDecision(tx, row);
      await this.#audit.record(tx, audit);
    });
  }

  /**
   * Signs and queues a pending command: takes the device's next seq, asks `sign` for the signed
   * command, stores it (compare-and-set on `pending_approval`) with its history and audit entries.
   * APPROVAL_NOT_PENDING when another control plane released, rejected or expired it first.
   */
  async release(options: {
    commandId: string; deviceId: string; atMs: number; sign: (deviceSeq: number) => SignedCommand; audit: (signed: SignedCommand) => AuditRecord; by: string;
    /** The approval that completes the count, stored in the same transaction as the release. */
    approval?: { row: ApprovalRow; audit: AuditRecord };
    /**
     * The approvals the signed command embeds, judged again inside the transaction (review finding
     * 5, 2026-12-05): the caller checked them before it, and an approver removed or demoted, or a
     * key retired, in between must not be released. `holds` answers from what is committed now;
     * any that does not hold rolls the release back with ApprovalsChanged.
     */
    approvers?: { readonly rows: readonly ApprovalRow[]; readonly holds: (row: ApprovalRow, now: ApproverNow) => boolean };
  }): Promise<SignedCommand> {
    return this.#inTransaction(async (tx) => {
      await requirePending(tx, options.commandId);
      if (options.approvers !== undefined) {
        const { rows, holds } = options.approvers;
        const failed: string[] = [];
        for (const row of rows) if (!holds(row, await approverNow(tx, row))) failed.push(row.approver);
        if (failed.length > 0) throw new ApprovalsChanged(failed);
      }
      if (options.approval !== undefined) {
        await insertDecision(tx, options.approval.row);
        await this.#audit.record(tx, options.approval.audit);
      }
      const signed = options.sign(await nextCounterValue(tx, deviceSeqCounterName(options.deviceId)));
      const updated = await tx.execute(
        "UPDATE commands SET state = 'queued', device_seq = ?, signed_json = ?, updated_at = ? WHERE id = ? AND state = 'pending_approval'",
        [signed.device_seq, canonicalize(signed), options.atMs, options.commandId],
      );
      if (updated.changes !== 1) throw new NoLongerPending();
      await appendHistory(tx, options.commandId, 'queued', options.atMs, { event: 'release', by: options.by, approvers: signed.approval?.approvals.map((a) => a.approver) ?? [] });
      await this.#audit.record(tx, options.audit(signed));
      return signed;
    });
  }

  /**
   * Removes approvals that no longer hold (their approver removed, demoted out of the roles the
   * rule accepts, or their signing key retired), each with its audit entry, in one transaction;
   * nothing when the command has left `pending_approval` meanwhile. Removed rather than flagged:
   * the audit entry keeps the signature, and the approver may approve again with a current key.
   */
  async dropApprovals(commandId: string, drops: ReadonlyArray<{ row: ApprovalRow; audit: AuditRecord }>): Promise<void> {
    if (drops.length === 0) return;
    try {
      await this.#inTransaction(async (tx) => {
        await requirePending(tx, commandId);
        for (const { row, audit } of drops) {
          const removed = await tx.execute('DELETE FROM command_approvals WHERE command_id = ? AND approver = ? AND kid = ?', [row.command_id, row.approver, row.kid]);
          // Another control plane dropped it first: audited there.
          if (removed.changes === 1) await this.#audit.record(tx, audit);
        }
      });
    } catch (error) {
      if (!SdcError.is(error, 'APPROVAL_NOT_PENDING')) throw error;
    }
  }

  /** Stores a rejection and ends the command `rejected`, in one transaction. */
  async reject(row: ApprovalRow, audit: AuditRecord): Promise<void> {
    await this.#inTransaction(async (tx) => {
      await requirePending(tx, row.command_id);
      await insertDecision(tx, row);
      const updated = await tx.execute("UPDATE commands SET state = 'rejected', updated_at = ? WHERE id = ? AND state = 'pending_approval'", [row.created_at, row.command_id]);
      if (updated.changes !== 1) throw new NoLongerPending();
      await appendHistory(tx, row.command_id, 'rejected', row.created_at, { event: 'approval_reject', by: row.approver, reason: row.reason ?? '' });
      await this.#audit.record(tx, audit);
    });
  }

  /**
   * Ends a pending command `rejected` at its requester's or an admin's word (no approver signs a
   * cancel: the caller's session authenticates it), with its history and audit entry, in one
   * transaction. `rejected` because the guarantee is the same: it never left the control plane.
   */
  async cancel(options: { commandId: string; by: string; reason: string | null; atMs: number; audit: AuditRecord }): Promise<void> {
    await this.#inTransaction(async (tx) => {
      await requirePending(tx, options.commandId);
      const updated = await tx.execute("UPDATE commands SET state = 'rejected', updated_at = ? WHERE id = ? AND state = 'pending_approval'", [options.atMs, options.commandId]);
      if (updated.changes !== 1) throw new NoLongerPending();
      await appendHistory(tx, options.commandId, 'rejected', options.atMs, { event: 'cancel', by: options.by, ...(options.reason === null ? {} : { reason: options.reason }) });
      await this.#audit.record(tx, options.audit);
    });
  }

  async #inTransaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    try {
      return await this.#db.transaction(fn);
    } catch (error) {
      if (error instanceof NoLongerPending) throw new SdcError('APPROVAL_NOT_PENDING', 'the command is no longer waiting for approvals');
      throw error;
    }
  }
}

/**
 * The approver's role and the approval's key as committed now. On MySQL a locking read (shared):
 * it sees the latest committed rows, not the transaction's snapshot, and a removal, role change or
 * retirement not yet committed waits for the release to commit, so it is either seen here or comes
 * after the release. SQLite runs one transaction at a time, so a plain read is enough.
 */
async function approverNow(tx: SqlExecutor, row: ApprovalRow): Promise<ApproverNow> {
  const lockingRead = tx.dialect === 'mysql' ? ' LOCK IN SHARE MODE' : '';
  const [user] = await tx.query<{ role: string }>(`SELECT role FROM users WHERE name = ?${lockingRead}`, [row.approver]);
  const [key] = await tx.query<{ user_name: string; retired_at: number | string | null }>(`SELECT user_name, retired_at FROM user_signing_keys WHERE kid = ?${lockingRead}`, [row.kid]);
  return {
    role: user?.role,
    key: key === undefined ? undefined : { userName: key.user_name, retiredAtMs: key.retired_at === null ? null : Number(key.retired_at) },
  };
}

async function requirePending(tx: SqlExecutor, commandId: string): Promise<void> {
  const [row] = await tx.query<{ state: string }>('SELECT state FROM commands WHERE id = ?', [commandId]);
  if (row === undefined) throw new SdcError('COMMAND_NOT_FOUND', `no command ${commandId}`);
  if (row.state !== 'pending_approval') throw new SdcError('APPROVAL_NOT_PENDING', `command ${commandId} is ${row.state}, not waiting for approvals`, { state: row.state });
}

export async function insertDecision(tx: SqlExecutor, row: ApprovalRow): Promise<void> {
  try {
    await tx.execute(
      'INSERT INTO command_approvals (command_id, approver, decision, role, kid, expires_at, signature, reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [row.command_id, row.approver, row.decision, row.role, row.kid, row.expires_at, row.signature, row.reason, row.created_at],
    );
  } catch (error) {
    // The primary key (command, approver): one decision per approver, on every control plane.
    if (SdcError.is(error, 'STORE_UNIQUE_VIOLATION')) throw new SdcError('APPROVAL_DUPLICATE', `${row.approver} has already decided on command ${row.command_id}`, { approver: row.approver });
    throw error;
  }
}

async function appendHistory(tx: SqlExecutor, commandId: string, state: string, atMs: number, detail: JsonObject): Promise<void> {
  await tx.execute('INSERT INTO command_events (command_id, state, at, detail_json) VALUES (?, ?, ?, ?)', [commandId, state, atMs, canonicalize(detail)]);
}
