import { SdcError } from '../../core/errors/index.js';
import { executionStates, type ExecutionState } from '../../core/ota/execution-machine.js';
import type { ExecutionRecord } from '../../core/ota/execution-decisions.js';
import type { RolloutRecord, RolloutStatus } from '../../core/ota/rollout-decisions.js';
import { parseStrictJson } from '../../core/protocol/strict-json.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import type { RolloutApprovalSubject } from '../../core/ota/rollout-approval.js';
import type { RolloutResumeSubject } from '../../core/ota/rollout-resume-approval.js';
import type { PolicyRole } from '../../core/protocol/policy.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import type { SqlExecutor } from '../stores/sql/sql-port.js';

/**
 * Every SQL statement about rollouts and their executions (migrations 016, 019, 023), and the checks on
 * what is read back: a row that does not match is STORE_CORRUPT, never a cast.
 */

export interface StoredRollout {
  readonly id: string;
  readonly releaseId: string;
  readonly platform: string;
  readonly record: RolloutRecord;
  readonly createdBy: string;
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
  /** What the rollout waits for, or waited for (migration 023); null when it needed no approvals. */
  readonly approval: RolloutApproval | null;
  /** The resume request waiting for approvals (migration 025), or null when none waits. */
  readonly resumeRequestId: string | null;
  /** The latest resume request past a safety stop, waiting or ended (migration 025); null when none was ever asked. */
  readonly resumeApproval: RolloutResumeApproval | null;
}

/**
 * A request to resume past a safety stop as stored in `ota_rollouts.resume_approval_json`
 * (decision 0019): what it waits for, the subject approvers sign and its hash, how it ended.
 */
export interface RolloutResumeApproval {
  readonly rule_id: string;
  readonly count: number;
  readonly roles: readonly PolicyRole[];
  readonly policy_revision: number;
  readonly subject: RolloutResumeSubject;
  readonly subject_sha256: string;
  /**
   * Set when the wait ended: `resumed` (with the approvals), `rejected` (an approver's signed
   * word), `expired`, `aborted` (the rollout was), `superseded` (resumed by someone the policy
   * lets resume without approvals), `stale` (the stop changed: figures, a resume, a pause),
   * `denied` (the policy, judged again at the last approval, no longer allows it).
   */
  readonly outcome?: {
    readonly state: 'resumed' | 'rejected' | 'expired' | 'aborted' | 'superseded' | 'stale' | 'denied';
    readonly at_ms: number;
    readonly by: string;
    readonly code?: string;
    readonly why?: string;
    readonly approvals?: ReadonlyArray<{ readonly approver: string; readonly role: PolicyRole; readonly kid: string; readonly expires_at: number; readonly signature: string }>;
  };
}

/** A rollout's approval wait as stored in `ota_rollouts.approval_json` (docs/ota.md, "Rollouts that need approvals"). */
export interface RolloutApproval {
  readonly rule_id: string;
  /** The most approvals any device's rule asks for; the policy decides when they suffice (every device judged with them). */
  readonly count: number;
  /** Roles any of those rules takes approvals from: an approver in none of them is refused at once. */
  readonly roles: readonly PolicyRole[];
  readonly policy_revision: number;
  readonly subject: RolloutApprovalSubject;
  /** The subject's hash (core rolloutApprovalSubjectHash): what each approval statement's `command_sha256` must be. */
  readonly subject_sha256: string;
  /** Set when the wait ended. `approvals`: those the rollout started with, which its executions are judged with. */
  readonly outcome?: {
    readonly state: 'started' | 'rejected' | 'expired' | 'aborted';
    readonly at_ms: number;
    readonly by: string;
    readonly code?: string;
    readonly approvals?: ReadonlyArray<{ readonly approver: string; readonly role: PolicyRole; readonly kid: string; readonly expires_at: number; readonly signature: string }>;
  };
}

export interface StoredExecution extends ExecutionRecord {
  readonly rolloutId: string;
  readonly wave: number;
  readonly endedAtMs: number | null;
  /** The OTA_NOTICE body (canonical JSON) the device gets, without the health nonce and cancel flag. */
  readonly noticeJson: string;
  readonly lastErrorCode: string | null;
  readonly updatedAtMs: number;
  /**
   * When an operator's cancel was applied (null: never). After the commit a cancel moves the
   * execution to rolling_back, as a failed health check does; this says which, so a missed cancel
   * can be pushed again (RolloutService #repushIfMissed).
   */
  readonly canceledAtMs: number | null;
}

interface RolloutRow {
  id: string; release_id: string; platform: string; status: string; record_json: string; created_by: string; created_at: number; updated_at: number; approval_json: string | null;
  resume_request_id: string | null; resume_approval_json: string | null;
}
interface ExecutionRow {
  id: string; rollout_id: string; device_id: string; wave: number; state: string; created_at: number; state_entered_at: number; ended_at: number | null;
  health_nonce: string | null; target_release_counter: number; previous_release_counter: number; notice_json: string; last_error_code: string | null; updated_at: number;
  canceled_at: number | null;
}

const insertColumns = 'id, release_id, platform, status, record_json, created_by, created_at, updated_at, approval_json';
const rolloutColumns = `${insertColumns}, resume_request_id, resume_approval_json`;
const executionColumns = 'id, rollout_id, device_id, wave, state, created_at, state_entered_at, ended_at, health_nonce, target_release_counter, previous_release_counter, notice_json, last_error_code, updated_at, canceled_at';
const rolloutStatuses: readonly RolloutStatus[] = ['pending_approval', 'running', 'paused', 'completed', 'aborted', 'rejected', 'expired'];

export const rolloutStoreLimits = {
  /** Rollouts listed per request. */
  listMax: 200,
  /** Executions read for one rollout: a rollout's fleet is at most this (rolloutLimits.fleetDevicesMax is the plan's bound). */
  executionsPerRolloutMax: 100_000,
} as const;

/** A new rollout: no resume request yet (those columns stay NULL). */
export async function insertRollout(tx: SqlExecutor, rollout: Omit<StoredRollout, 'resumeRequestId' | 'resumeApproval'>): Promise<void> {
  await tx.execute(`INSERT INTO ota_rollouts (${insertColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, [
    rollout.id, rollout.releaseId, rollout.platform, rollout.record.status, canonicalize(rollout.record),
    rollout.createdBy, rollout.createdAtMs, rollout.updatedAtMs, rollout.approval === null ? null : canonicalize(rollout.approval as unknown as JsonObject),
  ]);
}

/**
 * Ends a rollout's approval wait: compare-and-set from `pending_approval` to `record.status` with
 * the approval's outcome; false when it had left that state already (another control plane
 * started, rejected, expired or aborted it first), so of two such writers exactly one wins.
 */
export async function endApprovalWait(tx: SqlExecutor, id: string, record: RolloutRecord, approval: RolloutApproval, nowMs: number): Promise<boolean> {
  const result = await tx.execute("UPDATE ota_rollouts SET status = ?, record_json = ?, approval_json = ?, updated_at = ? WHERE id = ? AND status = 'pending_approval'", [
    record.status, canonicalize(record), canonicalize(approval as unknown as JsonObject), nowMs, id,
  ]);
  return result.changes === 1;
}

/**
 * Starts or ends a resume request's wait (migration 025), compare-and-set on the waiting request's
 * id: starting needs none waiting (`from` null) and the rollout paused with exactly the record the
 * request binds (`recordJson`); ending needs `from` still waiting. False when another writer came
 * first. `resume`: the rollout's record moves too (the approvals resumed it), from `recordJson`.
 */
export async function moveResumeRequest(tx: SqlExecutor, id: string, move: {
  readonly from: string | null; readonly to: string | null; readonly approval: RolloutResumeApproval; readonly recordJson?: string;
  readonly resume?: { readonly record: RolloutRecord; readonly nowMs: number };
}): Promise<boolean> {
  const sets = ['resume_request_id = ?', 'resume_approval_json = ?'];
  const values: Array<string | number | null> = [move.to, canonicalize(move.approval as unknown as JsonObject)];
  if (move.resume !== undefined) {
    sets.push('status = ?', 'record_json = ?', 'updated_at = ?');
    values.push(move.resume.record.status, canonicalize(move.resume.record), move.resume.nowMs);
  }
  const where = [`id = ?`, move.from === null ? 'resume_request_id IS NULL' : 'resume_request_id = ?'];
  values.push(id);
  if (move.from !== null) values.push(move.from);
  if (move.recordJson !== undefined) {
    where.push("status = 'paused'", 'record_json = ?');
    values.push(move.recordJson);
  }
  const result = await tx.execute(`UPDATE ota_rollouts SET ${sets.join(', ')} WHERE ${where.join(' AND ')}`, values);
  return result.changes === 1;
}

/** Rollouts with a resume request waiting for approvals, newest first (the Approvals inbox). */
export async function rolloutsAwaitingResume(tx: SqlExecutor, limit: number): Promise<StoredRollout[]> {
  const rows = await tx.query<RolloutRow>(`SELECT ${rolloutColumns} FROM ota_rollouts WHERE resume_request_id IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT ?`,
    [Math.min(limit, rolloutStoreLimits.listMax)]);
  return rows.map(rolloutOf);
}

/** The stored form of a record: what a resume request's compare-and-set compares. */
export function recordJsonOf(record: RolloutRecord): string {
  return canonicalize(record);
}

/** Ids of rollouts waiting for approvals, oldest first (the sweep ends those past their window). */
export async function pendingApprovalRolloutIds(tx: SqlExecutor): Promise<string[]> {
  const rows = await tx.query<{ id: string }>("SELECT id FROM ota_rollouts WHERE status = 'pending_approval' ORDER BY created_at ASC LIMIT ?", [rolloutStoreLimits.listMax]);
  return rows.map((row) => row.id);
}

export async function updateRolloutRecord(tx: SqlExecutor, id: string, record: RolloutRecord, nowMs: number): Promise<void> {
  await tx.execute('UPDATE ota_rollouts SET status = ?, record_json = ?, updated_at = ? WHERE id = ?', [
    record.status, canonicalize(record), nowMs, id,
  ]);
}

export async function readRollout(tx: SqlExecutor, id: string): Promise<StoredRollout> {
  const [row] = await tx.query<RolloutRow>(`SELECT ${rolloutColumns} FROM ota_rollouts WHERE id = ?`, [id]);
  if (row === undefined) throw new SdcError('OTA_ROLLOUT_NOT_FOUND', `no rollout ${id}`, { rolloutId: id });
  return rolloutOf(row);
}

export async function listRollouts(tx: SqlExecutor, options: { status?: RolloutStatus; limit: number }): Promise<StoredRollout[]> {
  const where = options.status === undefined ? '' : 'WHERE status = ?';
  const rows = await tx.query<RolloutRow>(`SELECT ${rolloutColumns} FROM ota_rollouts ${where} ORDER BY created_at DESC, id DESC LIMIT ?`,
    [...(options.status === undefined ? [] : [options.status]), Math.min(options.limit, rolloutStoreLimits.listMax)]);
  return rows.map(rolloutOf);
}

/** Ids of rollouts that are running: the coordinator's sweep ticks each. */
export async function runningRolloutIds(tx: SqlExecutor): Promise<string[]> {
  const rows = await tx.query<{ id: string }>("SELECT id FROM ota_rollouts WHERE status = 'running' ORDER BY created_at ASC LIMIT ?", [rolloutStoreLimits.listMax]);
  return rows.map((row) => row.id);
}

export async function insertExecution(tx: SqlExecutor, execution: StoredExecution): Promise<void> {
  await tx.execute(`INSERT INTO ota_executions (${executionColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, [
    execution.executionId, execution.rolloutId, execution.deviceId, execution.wave, execution.state, execution.createdAtMs, execution.stateEnteredAtMs,
    execution.endedAtMs, execution.healthNonce, execution.targetReleaseCounter, execution.previousReleaseCounter, execution.noticeJson,
    execution.lastErrorCode, execution.updatedAtMs, execution.canceledAtMs,
  ]);
}

/**
 * Moves an execution from `from` to `to`; false when its state was no longer `from` (another
 * report or a sweep moved it first), so two writers never both apply a transition. `canceled`:
 * the move is an operator's cancel, recorded in canceled_at (never cleared).
 */
export async function moveExecution(tx: SqlExecutor, move: {
  executionId: string; from: ExecutionState; to: ExecutionState; atMs: number; terminal: boolean; healthNonce: string | null; errorCode: string | null; canceled?: boolean;
}): Promise<boolean> {
  const result = await tx.execute(
    `UPDATE ota_executions SET state = ?, state_entered_at = ?, ended_at = ?, health_nonce = ?, last_error_code = COALESCE(?, last_error_code), updated_at = ?,
      canceled_at = COALESCE(?, canceled_at) WHERE id = ? AND state = ?`,
    [move.to, move.atMs, move.terminal ? move.atMs : null, move.healthNonce, move.errorCode, move.atMs, move.canceled === true ? move.atMs : null, move.executionId, move.from],
  );
  return result.changes === 1;
}

export async function readExecution(tx: SqlExecutor, executionId: string): Promise<StoredExecution | undefined> {
  const [row] = await tx.query<ExecutionRow>(`SELECT ${executionColumns} FROM ota_executions WHERE id = ?`, [executionId]);
  return row === undefined ? undefined : executionOf(row);
}

export async function executionsOfRollout(tx: SqlExecutor, rolloutId: string): Promise<StoredExecution[]> {
  const rows = await tx.query<ExecutionRow>(`SELECT ${executionColumns} FROM ota_executions WHERE rollout_id = ? ORDER BY created_at ASC, id ASC LIMIT ?`,
    [rolloutId, rolloutStoreLimits.executionsPerRolloutMax]);
  return rows.map(executionOf);
}

/** The highest release counter a device ran to success: the "previous" of its next execution. */
export async function installedReleaseCounter(tx: SqlExecutor, deviceId: string): Promise<number> {
  const [row] = await tx.query<{ n: number | null }>("SELECT MAX(target_release_counter) AS n FROM ota_executions WHERE device_id = ? AND state = 'succeeded'", [deviceId]);
  return Number(row?.n ?? 0);
}

function rolloutOf(row: RolloutRow): StoredRollout {
  if (!rolloutStatuses.includes(row.status as RolloutStatus)) corrupt(`rollout ${row.id} has status ${row.status}`);
  let record: RolloutRecord;
  try {
    record = parseStrictJson(row.record_json, { frameBytesMax: 64 * 1024 * 1024 }) as unknown as RolloutRecord;
  } catch (error) {
    corrupt(`rollout ${row.id} record is not JSON: ${(error as Error).message}`);
  }
  if (record.rolloutId !== row.id || record.status !== row.status || !Array.isArray(record.waves)) corrupt(`rollout ${row.id} record does not match its row`);
  let approval: RolloutApproval | null = null;
  if (row.approval_json !== null) {
    try {
      approval = parseStrictJson(row.approval_json, { frameBytesMax: 64 * 1024 * 1024 }) as unknown as RolloutApproval;
    } catch (error) {
      corrupt(`rollout ${row.id} approval is not JSON: ${(error as Error).message}`);
    }
    if (approval.subject?.id !== row.id || typeof approval.subject_sha256 !== 'string') corrupt(`rollout ${row.id} approval does not match its row`);
  }
  if (row.status === 'pending_approval' && approval === null) corrupt(`rollout ${row.id} waits for approvals but has none recorded`);
  let resumeApproval: RolloutResumeApproval | null = null;
  if (row.resume_approval_json !== null && row.resume_approval_json !== undefined) {
    try {
      resumeApproval = parseStrictJson(row.resume_approval_json, { frameBytesMax: 1024 * 1024 }) as unknown as RolloutResumeApproval;
    } catch (error) {
      corrupt(`rollout ${row.id} resume request is not JSON: ${(error as Error).message}`);
    }
    if (resumeApproval.subject?.rollout_id !== row.id || typeof resumeApproval.subject_sha256 !== 'string') corrupt(`rollout ${row.id} resume request does not match its row`);
  }
  const resumeRequestId = row.resume_request_id ?? null;
  if (resumeRequestId !== null && resumeApproval?.subject.request_id !== resumeRequestId) corrupt(`rollout ${row.id} waits on resume request ${resumeRequestId} but has another recorded`);
  return {
    id: row.id, releaseId: row.release_id, platform: row.platform, record, createdBy: row.created_by, createdAtMs: Number(row.created_at), updatedAtMs: Number(row.updated_at), approval,
    resumeRequestId, resumeApproval,
  };
}

function executionOf(row: ExecutionRow): StoredExecution {
  if (!(executionStates as readonly string[]).includes(row.state)) corrupt(`execution ${row.id} has state ${row.state}`);
  return {
    executionId: row.id, rolloutId: row.rollout_id, deviceId: row.device_id, wave: Number(row.wave), state: row.state as ExecutionState,
    createdAtMs: Number(row.created_at), stateEnteredAtMs: Number(row.state_entered_at), endedAtMs: row.ended_at === null ? null : Number(row.ended_at),
    healthNonce: row.health_nonce, targetReleaseCounter: Number(row.target_release_counter), previousReleaseCounter: Number(row.previous_release_counter),
    noticeJson: row.notice_json, lastErrorCode: row.last_error_code, updatedAtMs: Number(row.updated_at),
    canceledAtMs: row.canceled_at === null ? null : Number(row.canceled_at),
  };
}

function corrupt(message: string): never {
  throw new SdcError('STORE_CORRUPT', message);
}
