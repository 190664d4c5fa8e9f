import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { SdcError } from '../../core/errors/index.js';
import type { AuditLog } from '../../core/protocol/audit-chain.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import type { CommandRecord, TransactionEffect } from '../../core/protocol/command-decisions.js';
import { commandStates, commandTerminalStates, type CommandState } from '../../core/protocol/command-machine.js';
import type { JsonObject, JsonValue } from '../../core/protocol/json-value.js';
import { SignedCommandSchema, type SignedCommand } from '../../core/protocol/messages/command.js';
import { formatTraceparent, parseTraceparent } from '../../core/trace/trace-context.js';
import type { SqlDatabase, SqlDialect, SqlExecutor, SqlStatement, SqlTransaction, SqlValue } from '../stores/sql/sql-port.js';
import { DeferredStatements, executeInBatches, whenPreviousChanged } from '../stores/sql/sql-batch.js';
import { nextCounterValue } from './stores/counters.js';
import { deviceSeqCounterName, takeDeviceSeqs } from './command-device-seqs.js';
import { readOpenEpisode, type OpenEpisode } from './alert-episodes.js';
import { Batched } from './batched-reads.js';
import { latestRevisionSql, revisionOf } from './policy-store.js';

/**
 * The `commands` and `command_events` tables behind CommandService: every SQL statement about a
 * command is here. It performs the effects core/protocol/command-decisions.ts decides, the
 * transactional ones in one transaction with the audit outbox row (AuditLog.record(tx)), and
 * validates every row it reads back against a schema compiled once: a row that does not match
 * (a damaged or hand-edited database) is STORE_CORRUPT naming the row and field, never a cast
 * that fails later somewhere else.
 */

/** The states a command is still unfinished in (not terminal). */
export const unfinishedStates: readonly CommandState[] = commandStates.filter((state) => !commandTerminalStates.includes(state));
const unfinishedList = unfinishedStates.map((state) => `'${state}'`).join(', ');
/**
 * Unfinished states a command may be delivered in: all but `pending_approval`, which is not signed
 * yet (no seq, no signed_json) and must never leave the control plane. Its expiry is still swept.
 */
export const deliverableStates: readonly CommandState[] = unfinishedStates.filter((state) => state !== 'pending_approval');
const deliverableList = deliverableStates.map((state) => `'${state}'`).join(', ');

// BIGINT columns come back as JS numbers on both adapters (sql-port.ts).
const EpochMsColumn = Type.Integer({ minimum: 0 });
const NullableMs = Type.Union([EpochMsColumn, Type.Null()]);
const StateColumn = Type.Union(commandStates.map((state) => Type.Literal(state)));
const Text = (maxLength: number) => Type.String({ maxLength });
const NullableText = (maxLength: number) => Type.Union([Text(maxLength), Type.Null()]);
// JSON columns are LONGTEXT on MySQL; the bound is the API's body limit with room to spare, not a column limit.
const JsonTextMax = 16 * 1024 * 1024;

/**
 * A `commands` row as `SELECT *` returns it (migrations 001, 002, 003, 008, 012). Later columns are
 * allowed. `device_seq` and `signed_json` are NULL only while the command is `pending_approval`.
 */
const CommandRowSchema = Type.Object({
  id: Text(64), device_id: Text(64), opcode: Text(64), args_json: Text(JsonTextMax), state: StateColumn, created_by: Text(128),
  idempotency_key: NullableText(128), device_seq: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]), signed_json: NullableText(JsonTextMax), expires_at: EpochMsColumn,
  attempts: Type.Integer({ minimum: 0 }), created_at: EpochMsColumn, updated_at: EpochMsColumn, gateway_id: NullableText(64),
  result_json: NullableText(JsonTextMax), dispatched_at: NullableMs,
  /** NULL: no gateway stream ever held the command (migration 008). */
  first_dispatched_at: NullableMs,
  /** What a pending command waits for (migration 012); NULL for a command that needed no approval. */
  approval_json: Type.Optional(NullableText(JsonTextMax)),
  /** The W3C traceparent it was created under (migration 017); NULL without one. */
  traceparent: Type.Optional(NullableText(64)),
});
export type CommandRow = Static<typeof CommandRowSchema>;

const HistoryRowSchema = Type.Object({ state: StateColumn, at: EpochMsColumn, detail_json: NullableText(JsonTextMax) });
const ExpiryRowSchema = Type.Pick(CommandRowSchema, ['id', 'first_dispatched_at']);
// Rows read for delivery are never pending, so their signed command is there.
const DueRowSchema = Type.Object({ id: Text(64), device_id: Text(64), signed_json: Text(JsonTextMax), traceparent: Type.Optional(NullableText(64)) });
const SignedRowSchema = Type.Object({ id: Text(64), signed_json: Text(JsonTextMax), traceparent: Type.Optional(NullableText(64)) });
const RedispatchRowSchema = Type.Object({ ...DueRowSchema.properties, dispatched_at: NullableMs });
const StateRowSchema = Type.Pick(CommandRowSchema, ['state']);
const DeviceStatusRowSchema = Type.Object({ status: Text(32) });
const OwnerRowSchema = Type.Object({ device_id: Text(64), device_seq: Type.Integer({ minimum: 0 }), status: NullableText(32), traceparent: Type.Optional(NullableText(64)) });

// Compiled once at load.
const checks = {
  command: TypeCompiler.Compile(CommandRowSchema),
  history: TypeCompiler.Compile(HistoryRowSchema),
  expiry: TypeCompiler.Compile(ExpiryRowSchema),
  due: TypeCompiler.Compile(DueRowSchema),
  redispatch: TypeCompiler.Compile(RedispatchRowSchema),
  signed: TypeCompiler.Compile(SignedRowSchema),
  state: TypeCompiler.Compile(StateRowSchema),
  deviceStatus: TypeCompiler.Compile(DeviceStatusRowSchema),
  owner: TypeCompiler.Compile(OwnerRowSchema),
  signedCommand: TypeCompiler.Compile(SignedCommandSchema),
};

/** A stored row that does not match its schema: STORE_CORRUPT with the table and the first bad field. */
function validRow<T extends TSchema>(check: TypeCheck<T>, row: unknown, table: string): Static<T> {
  if (check.Check(row)) return row;
  const first = check.Errors(row).First();
  const id = typeof (row as { id?: unknown } | null)?.id === 'string' ? (row as { id: string }).id : null;
  throw new SdcError('STORE_CORRUPT', `${table} row${id === null ? '' : ` ${id}`} ${first?.path ?? ''}: ${first?.message ?? 'invalid'}`, {
    table, id, path: first?.path ?? null,
  });
}

function validRows<T extends TSchema>(check: TypeCheck<T>, rows: readonly unknown[], table: string): Static<T>[] {
  return rows.map((row) => validRow(check, row, table));
}

/** A JSON column's text parsed; text that is not JSON (or not the JSON type expected) is STORE_CORRUPT. */
function parseJsonColumn(text: string, where: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (error) {
    throw new SdcError('STORE_CORRUPT', `${where} is not JSON`, { where }, { cause: error });
  }
}

export function jsonObjectColumn(text: string, where: string): JsonObject {
  const value = parseJsonColumn(text, where);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new SdcError('STORE_CORRUPT', `${where} is not a JSON object`, { where });
  return value;
}

/**
 * The signed command stored with a row, checked against the signed-command schema; null for a
 * command created to wait for approvals that was never released (pending, rejected or expired).
 */
export function signedCommandOrNull(row: { id: string; state: CommandState; signed_json: string | null; approval_json?: string | null | undefined }): SignedCommand | null {
  if (row.signed_json === null && (row.state === 'pending_approval' || (row.approval_json !== undefined && row.approval_json !== null))) return null;
  return signedCommandOf(row);
}

/** The signed command stored with a row, checked against the signed-command schema (NULL, a pending command's, is STORE_CORRUPT here). */
export function signedCommandOf(row: { id: string; signed_json: string | null }): SignedCommand {
  const where = `commands row ${row.id} signed_json`;
  if (row.signed_json === null) throw new SdcError('STORE_CORRUPT', `${where} is NULL: the command was never signed`, { where, path: null });
  const value = parseJsonColumn(row.signed_json, where);
  if (checks.signedCommand.Check(value)) return value as SignedCommand;
  const first = checks.signedCommand.Errors(value).First();
  throw new SdcError('STORE_CORRUPT', `${where} is not a signed command: ${first?.path ?? ''}: ${first?.message ?? 'invalid'}`, { where, path: first?.path ?? null });
}

/**
 * A stored command to dispatch, its signed form decoded one row at a time: a row whose signed
 * command does not decode carries the STORE_CORRUPT error instead, so one damaged row costs only
 * itself (and the commands of its device ordered after it), never the whole sweep.
 */
export interface StoredCommand {
  readonly id: string;
  readonly deviceId: string;
  readonly command: SignedCommand | SdcError;
  /** The trace it was created under, carried by every dispatch of it. */
  readonly traceparent?: string;
}

/** A command the redelivery sweep found due, with the dispatch time it read (what its claim compares). */
export interface RedispatchCandidate extends StoredCommand {
  readonly dispatchedAtMs: number | null;
}

/**
 * The redelivery sweep's wait between sends of one unfinished command: the time since its last
 * state change, at least `baseMs` and at most `maxMs`. So it doubles while re-sending brings no
 * progress (30, 30, 60, 120, 120 s ... by default) and is back at `baseMs` after any transition.
 */
export interface RedispatchWait {
  readonly baseMs: number;
  readonly maxMs: number;
}

/**
 * The sweep's due condition on a `commands` row at `nowMs`: never dispatched, or dispatched at
 * least the wait ago, the wait being min(maxMs, max(baseMs, dispatched_at - updated_at))
 * (RedispatchWait), written without LEAST/GREATEST so that both dialects read it alike.
 * Both the sweep's read and its claim use it: the claim is this condition checked again, in the
 * UPDATE that moves dispatched_at to now, so only one control plane's claim of a send matches.
 */
function redispatchDueCondition(nowMs: number, wait: RedispatchWait): { sql: string; params: number[] } {
  return {
    sql: '(dispatched_at IS NULL OR (dispatched_at <= ? AND (dispatched_at <= ? OR 2 * dispatched_at - updated_at <= ?)))',
    params: [nowMs - wait.baseMs, nowMs - wait.maxMs, nowMs],
  };
}

function storedCommandOf(row: { id: string; signed_json: string; traceparent?: string | null | undefined }, deviceId: string): StoredCommand {
  const traceparent = storedTraceparent(row.traceparent);
  const trace = traceparent === undefined ? {} : { traceparent };
  try {
    return { id: row.id, deviceId, command: signedCommandOf(row), ...trace };
  } catch (error) {
    if (SdcError.is(error, 'STORE_CORRUPT')) return { id: row.id, deviceId, command: error, ...trace };
    throw error;
  }
}

/**
 * A stored traceparent as we send it on (version 00), or undefined for NULL or a value that does
 * not parse: a damaged trace loses the log correlation, never the command's delivery.
 */
export function storedTraceparent(value: string | null | undefined): string | undefined {
  const context = parseTraceparent(value ?? undefined);
  return context === undefined ? undefined : formatTraceparent(context);
}

export function recordOf(row: CommandRow): CommandRecord {
  return { id: row.id, deviceId: row.device_id, state: row.state, firstDispatchedAtMs: row.first_dispatched_at };
}

export interface HistoryRow {
  readonly state: CommandState;
  readonly at_ms: number;
  readonly detail?: JsonValue;
}

/** What ownerOf answers: the command's device, seq, device status, trace and whole row. */
export interface CommandOwner {
  readonly deviceId: string;
  readonly deviceSeq: number;
  readonly deviceStatus: string | null;
  readonly traceparent?: string;
  readonly row: CommandRow;
}

/** Command ids per batched owner read (one placeholder each). */
const ownerReadsPerQueryMax = 128;
/** Keys per batched point statement of the create and dispatch path (up to two placeholders each, four in a CASE UPDATE). */
const pointReadsPerQueryMax = 64;

/** What admission reads in one statement (admissionFacts). */
export interface AdmissionFacts {
  /** Undefined: no such device. */
  readonly deviceStatus?: string;
  /** The current policy revision number (PolicyStore.at). */
  readonly policyRevision: number;
}

/** What a create reads in one statement (createFacts). */
export interface CreateFacts extends AdmissionFacts {
  /** The command its operator created with the same Idempotency-Key: the create is a retry and decides nothing (no device status is answered then). */
  readonly existing?: CommandRow;
}

/** A createRead key's parts: the device to admit (null: none), the operator and the Idempotency-Key (both null: none). */
type CreateReadParts = readonly [deviceId: string | null, createdBy: string | null, idempotencyKey: string | null];

/** One batched createRead's answer; a damaged device status is an SdcError here, thrown only to a caller that needs it. */
interface CreateReadAnswer {
  readonly policyRevision: number;
  readonly deviceStatus?: string | SdcError;
  readonly existing?: CommandRow;
}

function createReadKey(deviceId: string | null, idempotency: { createdBy: string; key: string } | undefined): string {
  const parts: CreateReadParts = [deviceId, idempotency?.createdBy ?? null, idempotency?.key ?? null];
  return JSON.stringify(parts);
}

/** The commands columns a create read answers: the row schema's, by name (not `*`: both parts of its UNION must have the same columns). */
const createReadCommandColumns = Object.keys(CommandRowSchema.properties);

/**
 * The create read's statement (see #readCreateFacts): the commands of the pairs (when any), then
 * UNION ALL the admission part, whose command columns are NULL. Not `LEFT JOIN commands ON 1 = 0`
 * for those: SQLite scans the whole table for it (23 ms at 200,000 commands, measured with sql.js).
 */
function createReadSql(devices: number, pairs: number): string {
  const placeholders = (n: number): string => Array.from({ length: n }, () => '?').join(', ');
  const admission = `SELECT 'a' AS part_kind, r.revision AS part_revision, d.id AS part_device_id, d.status AS part_device_status, ${createReadCommandColumns.map((column) => `NULL AS ${column}`).join(', ')}
    FROM (${latestRevisionSql}) r LEFT JOIN devices d ON ${devices === 0 ? '1 = 0' : `d.id IN (${placeholders(devices)})`}`;
  if (pairs === 0) return admission;
  // The commands first, so that the UNION's columns are typed by the table's (NULL takes any type).
  return `SELECT 'i' AS part_kind, NULL AS part_revision, NULL AS part_device_id, NULL AS part_device_status, ${createReadCommandColumns.map((column) => `c.${column}`).join(', ')}
    FROM commands c WHERE ${Array.from({ length: pairs }, () => '(c.created_by = ? AND c.idempotency_key = ?)').join(' OR ')}
    UNION ALL ${admission}`;
}

/** A devices row's status checked, or its STORE_CORRUPT error. */
function statusOrCorrupt(status: unknown): string | SdcError {
  try {
    return validRow(checks.deviceStatus, { status }, 'devices').status;
  } catch (error) {
    if (!SdcError.is(error, 'STORE_CORRUPT')) throw error;
    return error;
  }
}

/** Thrown inside a transaction when a compare-and-set matched nothing: rolls it back; apply() answers false. */
class CompareAndSetLost extends Error {}

/** Thrown inside a group's transaction when its one conditional UPDATE did not win for every member: rolls it back; the group runs again, exact. */
class GroupGuessMissed extends Error {}

/** A transition waiting for its group commit. */
interface GroupMember {
  readonly effects: readonly TransactionEffect[];
  resolve(won: boolean): void;
  reject(error: unknown): void;
}

/** A create waiting for its group commit: its device, and what it decides once it has its seq. */
interface CreateMember {
  readonly deviceId: string;
  build(deviceSeq: number): { readonly transaction: readonly TransactionEffect[] };
  resolve(decided: unknown): void;
  reject(error: unknown): void;
}

/** Transitions per group transaction, by default. */
export const transitionsPerGroupMaxDefault = 64;

/** Effects a group commit takes: a transition's compare-and-set first, then its history row and audit record. */
function groupable(effects: readonly TransactionEffect[]): boolean {
  return effects[0]?.type === 'update_state' && effects.every((effect) => effect.type !== 'insert_command');
}

export class CommandRepository {
  readonly #db: SqlDatabase;
  readonly #audit: AuditLog<SqlExecutor>;
  readonly #groupMax: number;
  /** Transitions queued for the next group commit. */
  readonly #group: GroupMember[] = [];
  #committing = false;
  /** ownerOf calls waiting for the next batched read, and whether one is in flight. */
  /** Creates queued for the next group commit, and whether one is committing. */
  readonly #creates: CreateMember[] = [];
  #creating = false;
  readonly #ownerReads: Array<{ readonly commandId: string; resolve(owner: CommandOwner | undefined): void; reject(error: unknown): void }> = [];
  #readingOwners = false;
  // The create path's point statements, each batched with the same statement of concurrent
  // requests (issue 17; see Batched: each still runs after it was asked for).
  // A create's Idempotency-Key lookup and its admission facts are one read (createFacts).
  readonly #createReads = new Batched<string, CreateReadAnswer>({ run: (keys) => this.#readCreateFacts(keys), keysPerBatchMax: pointReadsPerQueryMax });
  readonly #waitingReads = new Batched<string, StoredCommand[], { nowMs: number; limit: number }>({
    run: (ids, asked) => this.#readWaiting(ids, asked), keysPerBatchMax: pointReadsPerQueryMax,
  });
  readonly #leavingMarks = new Batched<string, boolean, number>({ run: (ids, atMs) => this.#markLeavingMany(ids, atMs), keysPerBatchMax: pointReadsPerQueryMax });
  readonly #dispatchRecords = new Batched<string, true, { gatewayId: string; atMs: number }>({
    run: (ids, records) => this.#recordDispatchMany(ids, records), keysPerBatchMax: pointReadsPerQueryMax,
  });

  constructor(options: {
    db: SqlDatabase; audit: AuditLog<SqlExecutor>;
    /** Transitions committed in one transaction at most (transitionsPerGroupMaxDefault); 1 commits each alone. */
    transitionsPerGroupMax?: number;
  }) {
    this.#db = options.db;
    this.#audit = options.audit;
    this.#groupMax = options.transitionsPerGroupMax ?? transitionsPerGroupMaxDefault;
    if (!(Number.isSafeInteger(this.#groupMax) && this.#groupMax >= 1)) throw new SdcError('STORE_INVALID_ARGUMENT', 'transitionsPerGroupMax must be a positive integer');
  }

  // --- reads -----------------------------------------------------------------------------------

  async byId(commandId: string): Promise<CommandRow | undefined> {
    const [row] = await this.#db.query('SELECT * FROM commands WHERE id = ?', [commandId]);
    return row === undefined ? undefined : validRow(checks.command, row, 'commands');
  }

  /** The command an operator created with this Idempotency-Key, if any (batched with concurrent lookups and admissions: createFacts). */
  async byIdempotencyKey(createdBy: string, key: string): Promise<CommandRow | undefined> {
    return (await this.#createRead(createReadKey(null, { createdBy, key }))).existing;
  }

  /**
   * What a create reads before it decides, in one statement (issue 17: were two round trips, one
   * after the other): the command its operator created with the same Idempotency-Key, if one was
   * given (the create then answers as a retry and decides nothing), and the admission facts (see
   * admissionFacts). Batched with the creates, lookups and admissions asked for meanwhile. Read
   * after the request asked, so a command, a revocation or a policy revision committed before
   * counts, as with the two statements it replaces; a retry's facts are read and not used.
   */
  async createFacts(deviceId: string, idempotency?: { createdBy: string; key: string }): Promise<CreateFacts> {
    const answer = await this.#createRead(createReadKey(deviceId, idempotency));
    if (answer.existing !== undefined) return { existing: answer.existing, policyRevision: answer.policyRevision };
    if (answer.deviceStatus instanceof SdcError) throw answer.deviceStatus;
    return { policyRevision: answer.policyRevision, ...(answer.deviceStatus === undefined ? {} : { deviceStatus: answer.deviceStatus }) };
  }

  async #createRead(key: string): Promise<CreateReadAnswer> {
    const answer = await this.#createReads.get(key, undefined);
    if (answer === undefined) throw new SdcError('STORE_CONFLICT', 'create read answered nothing');
    return answer;
  }

  /**
   * One statement for a batch of createRead keys: the admission part (the revision, one row even
   * when no device matches, and each named device's status) and, UNION ALL, the commands of the
   * (operator, Idempotency-Key) pairs, told apart by `part_kind`. A damaged command row or device
   * status fails only the callers it answers.
   */
  async #readCreateFacts(keys: readonly string[]): Promise<Map<string, CreateReadAnswer | SdcError>> {
    const asked = keys.map((key) => ({ key, read: JSON.parse(key) as CreateReadParts }));
    const deviceIds = [...new Set(asked.flatMap(({ read }) => (read[0] === null ? [] : [read[0]])))];
    const pairs = [...new Set(asked.flatMap(({ read }) => (read[1] === null ? [] : [JSON.stringify([read[1], read[2]])])))];
    const rows = await this.#db.query<Record<string, unknown>>(createReadSql(deviceIds.length, pairs.length),
      [...pairs.flatMap((pair) => JSON.parse(pair) as [string, string]), ...deviceIds]);
    let policyRevision: number | undefined;
    const statuses = new Map<string, string | SdcError>();
    const commandRows: Array<Record<string, unknown>> = [];
    for (const { part_kind: kind, part_revision: revision, part_device_id: deviceId, part_device_status: status, ...columns } of rows) {
      if (kind !== 'a') { commandRows.push(columns); continue; }
      policyRevision = revisionOf(revision);
      if (deviceId !== null && deviceId !== undefined) statuses.set(String(deviceId), statusOrCorrupt(status));
    }
    if (policyRevision === undefined) throw new SdcError('STORE_CONFLICT', 'create read answered no policy revision');
    const existing = await this.#claimIdempotencyRows(pairs, commandRows);
    const revision = policyRevision;
    return new Map(asked.map(({ key, read: [deviceId, createdBy, idempotencyKey] }): [string, CreateReadAnswer | SdcError] => {
      const found = createdBy === null ? undefined : existing.get(JSON.stringify([createdBy, idempotencyKey]));
      if (found instanceof SdcError) return [key, found];
      const deviceStatus = deviceId === null ? undefined : statuses.get(deviceId);
      return [key, { policyRevision: revision, ...(found === undefined ? {} : { existing: found }), ...(deviceStatus === undefined ? {} : { deviceStatus }) }];
    }));
  }

  /** The commands rows read for the pairs, by pair (JSON [created_by, idempotency_key]). */
  async #claimIdempotencyRows(pairs: readonly string[], rows: ReadonlyArray<Record<string, unknown>>): Promise<Map<string, CommandRow | SdcError>> {
    const found = new Map<string, CommandRow | SdcError>();
    let unclaimed = false;
    for (const row of rows) {
      const pair = JSON.stringify([row['created_by'], row['idempotency_key']]);
      if (!pairs.includes(pair)) unclaimed = true;
      found.set(pair, validOrCorrupt(row));
    }
    // A row the database matched but whose text is not one asked for byte for byte (MariaDB's
    // PAD SPACE collations match 'k' for 'k '): the keys it may belong to are read one by one,
    // as the single statement did before the batch.
    if (unclaimed) {
      for (const pair of pairs.filter((asked) => !found.has(asked))) {
        const [row] = await this.#db.query<Record<string, unknown>>('SELECT * FROM commands WHERE created_by = ? AND idempotency_key = ?', JSON.parse(pair) as string[]);
        if (row !== undefined) found.set(pair, validOrCorrupt(row));
      }
    }
    return found;
  }

  async history(commandId: string, entriesMax: number): Promise<HistoryRow[]> {
    const rows = validRows(checks.history, await this.#db.query(
      'SELECT state, at, detail_json FROM command_events WHERE command_id = ? ORDER BY id ASC LIMIT ?', [commandId, entriesMax],
    ), 'command_events');
    return rows.map((row) => ({
      state: row.state, at_ms: row.at,
      ...(row.detail_json === null ? {} : { detail: parseJsonColumn(row.detail_json, `command_events detail_json of ${commandId}`) }),
    }));
  }

  /** A page, newest first; `before` is the cursor (created_at, id) of the last row of the previous page. */
  async page(query: { deviceId?: string; state?: string; before?: { createdAtMs: number; id: string }; limit: number }): Promise<CommandRow[]> {
    const where: string[] = [];
    const params: SqlValue[] = [];
    if (query.deviceId !== undefined) { where.push('device_id = ?'); params.push(query.deviceId); }
    if (query.state !== undefined) { where.push('state = ?'); params.push(query.state); }
    if (query.before !== undefined) {
      where.push('(created_at < ? OR (created_at = ? AND id < ?))');
      params.push(query.before.createdAtMs, query.before.createdAtMs, query.before.id);
    }
    const rows = await this.#db.query(
      `SELECT * FROM commands ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC, id DESC LIMIT ?`,
      [...params, query.limit],
    );
    return validRows(checks.command, rows, 'commands');
  }

  /**
   * What admission reads before it decides: the device's status (undefined for an unknown device)
   * and the current policy revision number, in one statement batched with concurrent admissions
   * (issue 17: was two round trips per command). Read after the request asked, like the two
   * statements it replaces, so a revocation or a new policy revision committed before it counts.
   * A create reads these with its Idempotency-Key lookup (createFacts).
   */
  async admissionFacts(deviceId: string): Promise<AdmissionFacts> {
    return this.createFacts(deviceId);
  }

  /** The device row's status, or undefined for an unknown device. */
  async deviceStatus(deviceId: string): Promise<string | undefined> {
    const [row] = await this.#db.query('SELECT status FROM devices WHERE id = ?', [deviceId]);
    return row === undefined ? undefined : validRow(checks.deviceStatus, row, 'devices').status;
  }

  /**
   * The command's device, seq, that device's status (null when the device row is gone) and the
   * trace it was created under, with the whole row: an event handler checks the owner and hands
   * the row to the transition, one read where there were two (issue 17). The reads asked for while
   * one is in flight go together in the next (`WHERE c.id IN (...)`, up to ownerReadsPerQueryMax):
   * each still reads after it was asked for, so it sees every change committed before.
   */
  ownerOf(commandId: string): Promise<CommandOwner | undefined> {
    return new Promise((resolve, reject) => {
      this.#ownerReads.push({ commandId, resolve, reject });
      if (this.#readingOwners) return;
      this.#readingOwners = true;
      void this.#readOwnersQueued();
    });
  }

  async #readOwnersQueued(): Promise<void> {
    try {
      await Promise.resolve();
      while (this.#ownerReads.length > 0) {
        const batch = this.#ownerReads.splice(0, ownerReadsPerQueryMax);
        try {
          const owners = await this.#readOwners([...new Set(batch.map((read) => read.commandId))]);
          for (const read of batch) {
            const owner = owners.get(read.commandId);
            if (owner instanceof SdcError) read.reject(owner);
            else read.resolve(owner);
          }
        } catch (error) {
          for (const read of batch) read.reject(error);
        }
      }
    } finally {
      this.#readingOwners = false;
    }
  }

  /** One query for the commands' owners; a row that does not validate is its own STORE_CORRUPT, not the batch's. */
  async #readOwners(commandIds: readonly string[]): Promise<Map<string, CommandOwner | SdcError>> {
    const rows = await this.#db.query<Record<string, unknown>>(
      // A pending command (no seq yet) was never sent: no device can name it.
      `SELECT c.*, d.status AS device_status FROM commands c LEFT JOIN devices d ON d.id = c.device_id WHERE c.id IN (${commandIds.map(() => '?').join(', ')}) AND c.device_seq IS NOT NULL`,
      commandIds);
    const owners = new Map<string, CommandOwner | SdcError>();
    for (const read of rows) {
      const { device_status: deviceStatus, ...columns } = read;
      try {
        const owner = validRow(checks.owner, { device_id: columns['device_id'], device_seq: columns['device_seq'], status: deviceStatus, traceparent: columns['traceparent'] }, 'commands');
        const row = validRow(checks.command, columns, 'commands');
        const traceparent = storedTraceparent(owner.traceparent);
        owners.set(row.id, { deviceId: owner.device_id, deviceSeq: owner.device_seq, deviceStatus: owner.status, ...(traceparent === undefined ? {} : { traceparent }), row });
      } catch (error) {
        if (!SdcError.is(error, 'STORE_CORRUPT') || typeof columns['id'] !== 'string') throw error;
        owners.set(columns['id'], error);
      }
    }
    return owners;
  }

  /** Unfinished commands past their expiry, oldest expiry first. */
  async expiredUnfinished(nowMs: number, limit: number): Promise<Array<Pick<CommandRecord, 'id' | 'firstDispatchedAtMs'>>> {
    const rows = validRows(checks.expiry, await this.#db.query(
      `SELECT id, first_dispatched_at FROM commands WHERE state IN (${unfinishedList}) AND expires_at <= ? ORDER BY expires_at ASC LIMIT ?`,
      [nowMs, limit],
    ), 'commands');
    return rows.map((row) => ({ id: row.id, firstDispatchedAtMs: row.first_dispatched_at }));
  }

  /** Unexpired, unfinished commands due for the redelivery sweep at `nowMs` (redispatchDueCondition), oldest dispatch first. */
  async dueForRedispatch(nowMs: number, wait: RedispatchWait, limit: number): Promise<RedispatchCandidate[]> {
    const due = redispatchDueCondition(nowMs, wait);
    const rows = validRows(checks.redispatch, await this.#db.query(
      `SELECT id, device_id, signed_json, traceparent, dispatched_at FROM commands
       WHERE state IN (${deliverableList}) AND expires_at > ? AND ${due.sql}
       ORDER BY COALESCE(dispatched_at, 0) ASC, created_at ASC, device_seq ASC LIMIT ?`,
      [nowMs, ...due.params, limit],
    ), 'commands');
    return rows.map((row) => ({ ...storedCommandOf(row, row.device_id), dispatchedAtMs: row.dispatched_at }));
  }

  /** The device's unfinished, unexpired commands in device_seq order. */
  async unfinishedOf(deviceId: string, nowMs: number, limit: number): Promise<StoredCommand[]> {
    const unordered = this.#db.dialect === 'mysql' ? undefined : await this.#unfinishedUnordered(deviceId, nowMs, limit);
    const rows = validRows(checks.signed, unordered ?? await this.#db.query(
      `SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? AND state IN (${deliverableList}) AND expires_at > ? ORDER BY device_seq ASC LIMIT ?`,
      [deviceId, nowMs, limit],
    ), 'commands');
    return rows.map((row) => storedCommandOf(row, deviceId));
  }

  /**
   * unfinishedOf's rows on SQLite read without ORDER BY and with the LIMIT written in, and put in
   * device_seq order here; undefined when the device has more than `limit` of them (then only the
   * ordered statement picks the right ones). Issue 17: in sql.js's SQLite a statement with an
   * ORDER BY or a `LIMIT ?` and a bound parameter cost 14-21 µs warm on an empty table against
   * 4.4 for this one (same index search in the plan; 2026-12-06 late morning (h14) in
   * docs/benchmarks.md), and a presence reads this at every AUTH.
   */
  async #unfinishedUnordered(deviceId: string, nowMs: number, limit: number): Promise<Array<Record<string, unknown>> | undefined> {
    if (!Number.isSafeInteger(limit) || limit < 0) return undefined;
    const rows = await this.#db.query<Record<string, unknown>>(
      `SELECT id, signed_json, traceparent, device_seq FROM commands WHERE device_id = ? AND state IN (${deliverableList}) AND expires_at > ? LIMIT ${limit + 1}`,
      [deviceId, nowMs],
    );
    if (rows.length > limit) return undefined;
    // SQLite's ASC order: NULL first (a deliverable command has its seq; the order kept for any row).
    const seqOf = (row: Record<string, unknown>): number => (row['device_seq'] === null ? -Infinity : Number(row['device_seq']));
    return rows.sort((a, b) => seqOf(a) - seqOf(b));
  }

  /**
   * unfinishedOf and the alert open under `episodeKey` (its id, device and kind; undefined when
   * none is): the two reads a device's presence makes (the offline episode it ends, the commands it
   * gets again). On MySQL in one statement, a round trip less per AUTH in a reconnect storm (issue
   * 15); on sql.js as two, the episode's first, as before: in-process a statement costs about 2 µs
   * and every one-statement form measured cost more than the two (a UNION ALL 23-28 µs against
   * 14-16, 2026-12-05 in docs/benchmarks.md). The MySQL form is the parenthesized UNION ALL, whose
   * commands part is unfinishedOf's query: with a derived table or an ORDER BY over the UNION,
   * MariaDB built temporary tables (about 500 µs against 150 for the two statements).
   */
  async unfinishedAndEpisodeOf(deviceId: string, nowMs: number, limit: number, episodeKey: string): Promise<{ commands: StoredCommand[]; episode: OpenEpisode | undefined }> {
    if (this.#db.dialect !== 'mysql') {
      const episode = await readOpenEpisode(this.#db, episodeKey);
      return { commands: await this.unfinishedOf(deviceId, nowMs, limit), episode };
    }
    const rows = await this.#db.query<Record<string, unknown>>(
      `(SELECT 'c' AS part, id, signed_json, traceparent, NULL AS alert_device_id, NULL AS alert_kind, device_seq AS n
        FROM commands WHERE device_id = ? AND state IN (${deliverableList}) AND expires_at > ? ORDER BY device_seq ASC LIMIT ?)
       UNION ALL (SELECT 'e' AS part, id, NULL, NULL, device_id, kind, 0 FROM alerts WHERE episode_key = ?)`,
      [deviceId, nowMs, limit, episodeKey],
    );
    const commandRows: Array<Record<string, unknown>> = [];
    let episode: OpenEpisode | undefined;
    for (const { part, alert_device_id: alertDeviceId, alert_kind: alertKind, ...columns } of rows) {
      if (part === 'c') commandRows.push(columns);
      else episode = { id: String(columns['id']), device_id: alertDeviceId === null || alertDeviceId === undefined ? null : String(alertDeviceId), kind: String(alertKind) };
    }
    // A UNION's rows come in no promised order: the commands go out in device_seq order.
    commandRows.sort((a, b) => Number(a['n']) - Number(b['n']));
    return { commands: validRows(checks.signed, commandRows, 'commands').map((row) => storedCommandOf(row, deviceId)), episode };
  }

  /**
   * The device's queued, unexpired commands no gateway holds, in device_seq order, at most `limit`.
   * Batched with the reads of other devices asked for meanwhile (issue 17): one statement, each
   * device's rows numbered in seq order so every device gets its own first `limit`.
   */
  async waitingOf(deviceId: string, nowMs: number, limit: number): Promise<StoredCommand[]> {
    return (await this.#waitingReads.get(deviceId, { nowMs, limit })) ?? [];
  }

  async #readWaiting(deviceIds: readonly string[], asked: ReadonlyMap<string, { nowMs: number; limit: number }>): Promise<Map<string, StoredCommand[]>> {
    // The latest time asked for: a read sent now would use it; the largest limit, each device cut to its own below.
    const nowMs = Math.max(...[...asked.values()].map((ask) => ask.nowMs));
    const limit = Math.max(...[...asked.values()].map((ask) => ask.limit));
    const rows = validRows(checks.due, await this.#db.query(
      `SELECT id, device_id, signed_json, traceparent FROM (
         SELECT id, device_id, signed_json, traceparent, device_seq, ROW_NUMBER() OVER (PARTITION BY device_id ORDER BY device_seq ASC) AS n
         FROM commands WHERE device_id IN (${deviceIds.map(() => '?').join(', ')}) AND state = 'queued' AND gateway_id IS NULL AND expires_at > ?
       ) w WHERE n <= ? ORDER BY device_id, device_seq ASC`,
      [...deviceIds, nowMs, limit],
    ), 'commands');
    const waiting = new Map<string, StoredCommand[]>(deviceIds.map((id) => [id, []]));
    for (const row of rows) {
      const list = waiting.get(row.device_id);
      if (list !== undefined && list.length < (asked.get(row.device_id)?.limit ?? 0)) list.push(storedCommandOf(row, row.device_id));
    }
    return waiting;
  }

  // --- transactional effects -------------------------------------------------------------------

  /**
   * Stores a new command: takes the device's next seq and applies the effects `build` decides for
   * it, in one transaction. Returns what `build` returned once committed.
   */
  async create<T extends { readonly transaction: readonly TransactionEffect[] }>(deviceId: string, build: (deviceSeq: number) => T): Promise<T> {
    if (this.#groupMax <= 1) return this.#createAlone(deviceId, build);
    return new Promise<T>((resolve, reject) => {
      this.#creates.push({ deviceId, build, resolve: resolve as (decided: unknown) => void, reject });
      if (this.#creating) return;
      this.#creating = true;
      void this.#commitCreatesQueued();
    });
  }

  #createAlone<T extends { readonly transaction: readonly TransactionEffect[] }>(deviceId: string, build: (deviceSeq: number) => T): Promise<T> {
    return this.#db.transaction(async (tx) => {
      const decided = build(await nextCounterValue(tx, deviceSeqCounterName(deviceId)));
      // Its last step, and a create has no compare-and-set to lose: the COMMIT rides with its writes (issue 17).
      await this.#applyIn(tx, decided.transaction, { commit: true });
      return decided;
    });
  }

  /** The one create committer: the creates asked for while a group commits form the next group. Never throws. */
  async #commitCreatesQueued(): Promise<void> {
    try {
      await Promise.resolve();
      while (this.#creates.length > 0) await this.#commitCreates(this.#creates.splice(0, this.#groupMax));
    } finally {
      this.#creating = false;
    }
  }

  /**
   * Group commit of creates (issue 17), as #commitGroup does for transitions: one transaction for
   * the creates asked for meanwhile. Each takes its device's next seq in arrival order (the
   * counters of the group's devices in one upsert and one read, takeDeviceSeqs: the seq the
   * command is signed with), then the
   * commands, their history rows and their audit outbox records go in as multi-row INSERTs and
   * one COMMIT makes them all durable. If the transaction fails (a store fault, an Idempotency-Key
   * that another request took, a refused audit record), nothing of it was committed and each
   * create runs again in a transaction of its own, one after another, so one member's failure
   * stays its own; `build` is then called again with the seq that transaction takes.
   */
  async #commitCreates(members: readonly CreateMember[]): Promise<void> {
    if (members.length === 1) {
      const [only] = members;
      await this.#createAlone(only!.deviceId, only!.build).then(only!.resolve, only!.reject);
      return;
    }
    let decided: Array<{ readonly transaction: readonly TransactionEffect[] }>;
    try {
      decided = await this.#db.transaction(async (tx) => {
        const seqs = await takeDeviceSeqs(tx, members.map((member) => member.deviceId));
        const built = members.map((member, index) => member.build(seqs[index]!));
        const commands: Array<Extract<TransactionEffect, { type: 'insert_command' }>['row']> = [];
        const history: Array<Extract<TransactionEffect, { type: 'append_history' }>> = [];
        const audits: Array<Extract<TransactionEffect, { type: 'record_audit' }>> = [];
        const others: TransactionEffect[] = [];
        for (const effect of built.flatMap((one) => one.transaction)) {
          if (effect.type === 'insert_command') commands.push(effect.row);
          else if (effect.type === 'append_history') history.push(effect);
          else if (effect.type === 'record_audit') audits.push(effect);
          else others.push(effect);
        }
        const deferredAudit = new DeferredStatements(tx.dialect);
        await this.#audit.recordMany(deferredAudit, audits.map((effect) => effect.entry));
        // A create decides only the three kinds above today, and then the COMMIT rides with the INSERTs (issue 17: a
        // round trip less per group, as #createAlone does). Anything else is applied as it comes, after the rows it may refer to.
        await executeInBatches(tx, [...insertCommandsStatements(commands), ...historyStatements(history), ...deferredAudit.statements], { commit: others.length === 0 });
        if (others.length > 0) await this.#applyIn(tx, others);
        return built;
      });
    } catch (error) {
      // The group may have committed (its COMMIT's reply was lost): running its creates again would
      // store nothing new (their ids are taken) and answer each with an error for a command that
      // exists. Each caller resolves the outcome by its own id (CommandService, committedCreate).
      if (SdcError.is(error, 'STORE_COMMIT_UNKNOWN')) {
        for (const member of members) member.reject(error);
        return;
      }
      // One after another, so each device's seqs still follow the order its creates were asked in.
      for (const member of members) await this.#createAlone(member.deviceId, member.build).then(member.resolve, member.reject);
      return;
    }
    members.forEach((member, index) => member.resolve(decided[index]!));
  }

  /**
   * Whether a command row exists, read under a lock (MySQL), so a transaction that inserted it and
   * has not ended yet (a COMMIT still running for a connection that is gone) is waited for, not
   * missed: the answer to a create whose COMMIT's outcome was lost (STORE_COMMIT_UNKNOWN).
   */
  async isStored(commandId: string): Promise<boolean> {
    return this.#db.transaction(async (tx) => (await tx.query(`SELECT id FROM commands WHERE id = ?${tx.dialect === 'mysql' ? ' FOR UPDATE' : ''}`, [commandId])).length === 1);
  }

  /**
   * Applies the effects in one transaction; false (nothing changed) when a compare-and-set lost to
   * another writer. A transition's effects (a compare-and-set on the state, its history row and
   * audit record) join a group commit with the transitions other callers apply meanwhile (one
   * transaction for the group, see #commitGroup), unless `alone`: a caller retrying after a lost
   * compare-and-set, or any other kind of change, gets a transaction of its own.
   */
  async apply(effects: readonly TransactionEffect[], options: { alone?: boolean } = {}): Promise<boolean> {
    if (options.alone === true || this.#groupMax <= 1 || !groupable(effects)) return this.#applyAlone(effects);
    return new Promise<boolean>((resolve, reject) => {
      this.#group.push({ effects, resolve, reject });
      if (this.#committing) return;
      this.#committing = true;
      void this.#commitQueued();
    });
  }

  async #applyAlone(effects: readonly TransactionEffect[]): Promise<boolean> {
    try {
      await this.#db.transaction((tx) => this.#applyIn(tx, effects));
      return true;
    } catch (error) {
      if (error instanceof CompareAndSetLost) return false;
      throw error;
    }
  }

  /** The one group committer: the transitions queued while a group commits form the next group. Never throws. */
  async #commitQueued(): Promise<void> {
    try {
      // The transitions applied in the caller's turn join the first group.
      await Promise.resolve();
      while (this.#group.length > 0) await this.#commitGroup(this.#group.splice(0, this.#groupMax));
    } finally {
      this.#committing = false;
    }
  }

  /**
   * One transaction for a group of transitions (group commit, issue 17): the members'
   * compare-and-sets in one conditional UPDATE (updateStates). When it changed fewer rows than
   * the group has members (some compare-and-set lost, which is rare: a device's events are
   * handled in order), the transaction is rolled back and the group runs again with its rows read
   * under lock first (`exact`), so each member is decided alone: a member whose compare-and-set
   * failed lost (it changes nothing, and its history and audit rows are not written) and is
   * answered false, so its caller reads the row again and retries alone. The winners' history rows
   * and their audit records (the outbox) go in as multi-row INSERTs, and one COMMIT makes them all
   * durable. If the transaction fails (a store fault, or one member's audit record refused), no
   * member changed anything, and each is applied again in a transaction of its own, so one
   * member's failure is its own.
   */
  async #commitGroup(members: readonly GroupMember[], mode: 'guess' | 'exact' = 'guess'): Promise<void> {
    if (members.length === 1 && mode === 'guess') {
      await this.#commitLone(members[0]!.effects).then(members[0]!.resolve, members[0]!.reject);
      return;
    }
    let won: readonly boolean[];
    try {
      won = await this.#db.transaction(async (tx) => {
        const updates = members.map((member) => member.effects[0] as StateUpdate);
        const outcome = await updateStates(tx, updates, mode);
        const history: Array<Extract<TransactionEffect, { type: 'append_history' }>> = [];
        const audits: Array<Extract<TransactionEffect, { type: 'record_audit' }>> = [];
        members.forEach((member, index) => {
          if (!outcome.won[index]) return;
          for (const effect of member.effects) {
            if (effect.type === 'append_history') history.push(effect);
            else if (effect.type === 'record_audit') audits.push(effect);
          }
        });
        // The winners' state changes (when updateStates left them to this batch), history rows and
        // outbox rows go in one round trip (issue 17: one per statement, about ten per command).
        const deferredAudit = new DeferredStatements(tx.dialect);
        await this.#audit.recordMany(deferredAudit, audits.map((effect) => effect.entry));
        const statements = [...(outcome.write === undefined ? [] : [outcome.write.statement]), ...historyStatements(history), ...deferredAudit.statements];
        if (statements.length === 0) return outcome.won;
        const [first] = await executeInBatches(tx, statements);
        if (outcome.write !== undefined && first!.changes !== outcome.write.rowsExpected) {
          // guess: some compare-and-set lost, which one cannot be told from the count (rolled back, asked again exactly);
          // exact: the rows were locked, so this is a store that does not do what was asked, and fails the group.
          if (mode === 'guess') throw new GroupGuessMissed();
          throw new SdcError('STORE_CONFLICT', `group UPDATE changed ${first!.changes} of ${outcome.write.rowsExpected} locked commands`);
        }
        return outcome.won;
      });
    } catch (error) {
      // A group of one never gets here (#commitLone), so the group is run again exactly, or member by member.
      if (error instanceof GroupGuessMissed) {
        await this.#commitGroup(members, 'exact');
        return;
      }
      await Promise.all(members.map((member) => this.#applyAlone(member.effects).then(member.resolve, member.reject)));
      return;
    }
    members.forEach((member, index) => member.resolve(won[index]!));
  }

  /**
   * A group of one (the usual case at low rates, issue 17): its compare-and-set, its history row
   * and its outbox row, each guarded on the statement before it (whenPreviousChanged), and the
   * COMMIT, in one round trip. A lost compare-and-set changes nothing and the guards skip the
   * rest, so what commits is nothing: it answers false, as the group path does. On any failure the
   * transaction rolls back (the batch stops before its COMMIT) and the error reaches the caller.
   */
  async #commitLone(effects: readonly TransactionEffect[]): Promise<boolean> {
    return this.#db.transaction(async (tx) => {
      const [update, ...rest] = effects as [StateUpdate, ...TransactionEffect[]];
      const statements: SqlStatement[] = [compareAndSetStatement(update)];
      const audits: Array<Extract<TransactionEffect, { type: 'record_audit' }>> = [];
      for (const effect of rest) {
        if (effect.type === 'append_history') statements.push(guardedHistoryStatement(tx.dialect, effect));
        else if (effect.type === 'record_audit') audits.push(effect);
      }
      const deferredAudit = new DeferredStatements(tx.dialect, 1);
      await this.#audit.recordMany(deferredAudit, audits.map((effect) => effect.entry));
      statements.push(...deferredAudit.statements);
      const results = await tx.executeBatch(statements, { commit: true });
      const won = results[0]!.changes === 1;
      // Won, every guarded row went in; lost, none did. Anything else is a store that does not do what was asked (committed: said loudly).
      if (results.slice(1).some((result) => result.changes !== (won ? 1 : 0))) {
        throw new SdcError('STORE_CONFLICT', `command ${update.commandId}: guarded writes changed ${results.slice(1).map((result) => result.changes).join(', ')} rows after a compare-and-set that ${won ? 'won' : 'lost'}`);
      }
      return won;
    });
  }

  /**
   * Applies the effects in `tx`, in order, as one batch (issue 17: a round trip for the lot, not
   * one per statement), with the COMMIT in it when `commit` and no effect is a compare-and-set
   * (the caller's last step). A compare-and-set that changed nothing throws CompareAndSetLost
   * after the batch: the statements after it ran too, and the rollback undoes them with the rest.
   */
  async #applyIn(tx: SqlTransaction, effects: readonly TransactionEffect[], options: { commit?: boolean } = {}): Promise<void> {
    const statements: SqlStatement[] = [];
    const compareAndSetAt: number[] = [];
    for (const effect of effects) {
      switch (effect.type) {
        case 'insert_command': statements.push(...insertCommandsStatements([effect.row])); break;
        case 'update_state': compareAndSetAt.push(statements.length); statements.push(compareAndSetStatement(effect)); break;
        case 'append_history': statements.push(...historyStatements([effect])); break;
        case 'record_audit': {
          const deferredAudit = new DeferredStatements(tx.dialect);
          await this.#audit.record(deferredAudit, effect.entry);
          statements.push(...deferredAudit.statements);
          break;
        }
      }
    }
    if (statements.length === 0) return;
    // `commit` only without a compare-and-set: a lost one must roll the batch back, which a committed batch cannot.
    const results = await executeInBatches(tx, statements, { commit: options.commit === true && compareAndSetAt.length === 0 });
    if (compareAndSetAt.some((at) => results[at]!.changes !== 1)) throw new CompareAndSetLost();
  }

  // --- dispatch bookkeeping (single statements, outside a transaction) -------------------------

  /**
   * Records that the command leaves the control plane (`first_dispatched_at`, if not set yet),
   * before its append: from then on a device may have it, and its TTL passing makes it
   * `timed_out`, never `expired`. This update and the `expire` transition are both conditional on
   * the row, so one of them wins: false, and nothing changed, for a command that is finished (the
   * sweep expired it first) or gone. One statement whether or not it was stamped before (issue 17:
   * a stamped command cost an UPDATE and a SELECT). The gateway is recorded only after the append
   * (recordDispatch): until then a concurrent dispatch for the device still sees the command as
   * waiting and appends it again ahead of its later ones, so a later command never overtakes it.
   */
  async markLeaving(commandId: string, atMs: number): Promise<boolean> {
    return (await this.#leavingMarks.get(commandId, atMs)) === true;
  }

  /**
   * The marks asked for meanwhile in one UPDATE (issue 17). It matches every row it names only
   * when each is still deliverable, the usual case; otherwise each is marked again alone (the
   * COALESCE makes that harmless) to learn which ones are finished.
   */
  async #markLeavingMany(commandIds: readonly string[], atMs: ReadonlyMap<string, number>): Promise<Map<string, boolean>> {
    const markOne = async (id: string): Promise<boolean> => (await this.#db.execute(
      `UPDATE commands SET first_dispatched_at = COALESCE(first_dispatched_at, ?) WHERE id = ? AND state IN (${deliverableList})`, [atMs.get(id)!, id],
    )).changes === 1;
    if (commandIds.length === 1) return new Map([[commandIds[0]!, await markOne(commandIds[0]!)]]);
    const times = caseOf(commandIds, (id) => atMs.get(id)!);
    const marked = await this.#db.execute(
      `UPDATE commands SET first_dispatched_at = COALESCE(first_dispatched_at, ${times.sql}) WHERE id IN (${commandIds.map(() => '?').join(', ')}) AND state IN (${deliverableList})`,
      [...times.params, ...commandIds],
    );
    if (marked.changes === commandIds.length) return new Map(commandIds.map((id) => [id, true]));
    const outcome = new Map<string, boolean>();
    for (const id of commandIds) outcome.set(id, await markOne(id));
    return outcome;
  }

  /** Records the gateway and the time of the dispatch (batched with the dispatches recorded meanwhile: one UPDATE). */
  async recordDispatch(commandId: string, gatewayId: string, atMs: number): Promise<void> {
    await this.#dispatchRecords.get(commandId, { gatewayId, atMs });
  }

  async #recordDispatchMany(commandIds: readonly string[], records: ReadonlyMap<string, { gatewayId: string; atMs: number }>): Promise<Map<string, true>> {
    if (commandIds.length === 1) {
      const { gatewayId, atMs } = records.get(commandIds[0]!)!;
      await this.#db.execute('UPDATE commands SET gateway_id = ?, dispatched_at = ? WHERE id = ?', [gatewayId, atMs, commandIds[0]!]);
    } else {
      const gateways = caseOf(commandIds, (id) => records.get(id)!.gatewayId);
      const times = caseOf(commandIds, (id) => records.get(id)!.atMs);
      await this.#db.execute(`UPDATE commands SET gateway_id = ${gateways.sql}, dispatched_at = ${times.sql} WHERE id IN (${commandIds.map(() => '?').join(', ')})`,
        [...gateways.params, ...times.params, ...commandIds]);
    }
    return new Map(commandIds.map((id) => [id, true]));
  }

  /**
   * The redelivery sweep's claim of one send: dispatched_at moves to `nowMs` only if the command is
   * still unfinished, unexpired and due (a compare-and-set on the row). False: another control
   * plane's sweep, a presence redelivery or a transition got there first, and this sweep leaves it.
   * For a device without a gateway the claim is the whole stamp: the command then waits its next
   * wait before a sweep looks again.
   */
  async claimRedispatch(commandId: string, nowMs: number, wait: RedispatchWait): Promise<boolean> {
    const due = redispatchDueCondition(nowMs, wait);
    const claimed = await this.#db.execute(
      `UPDATE commands SET dispatched_at = ? WHERE id = ? AND state IN (${deliverableList}) AND expires_at > ? AND ${due.sql}`,
      [nowMs, commandId, nowMs, ...due.params],
    );
    return claimed.changes === 1;
  }

  /**
   * The device's unfinished, unexpired commands in device_seq order, each with the dispatch time it
   * was read with (what claimAsRead compares): what the sweep sends once a lapsed device's presence
   * key is back (CommandService.redispatchDue).
   */
  async unfinishedWithDispatchOf(deviceId: string, nowMs: number, limit: number): Promise<RedispatchCandidate[]> {
    const rows = validRows(checks.redispatch, await this.#db.query(
      `SELECT id, device_id, signed_json, traceparent, dispatched_at FROM commands
       WHERE device_id = ? AND state IN (${deliverableList}) AND expires_at > ? ORDER BY device_seq ASC LIMIT ?`,
      [deviceId, nowMs, limit],
    ), 'commands');
    return rows.map((row) => ({ ...storedCommandOf(row, deviceId), dispatchedAtMs: row.dispatched_at }));
  }

  /**
   * Claims a send of a command by a compare-and-set of the dispatch time it was read with
   * (`dispatchedAtMs`, below `nowMs`; null: never dispatched), so nothing dispatched it since (a
   * presence redelivery, another sweep or another control plane's release moves dispatched_at)
   * and it is still unfinished and unexpired.
   */
  async claimAsRead(commandId: string, dispatchedAtMs: number | null, nowMs: number): Promise<boolean> {
    if (dispatchedAtMs !== null && dispatchedAtMs >= nowMs) return false;
    const claimed = await this.#db.execute(
      `UPDATE commands SET dispatched_at = ? WHERE id = ? AND ${dispatchedAtMs === null ? 'dispatched_at IS NULL' : 'dispatched_at = ?'}
       AND state IN (${deliverableList}) AND expires_at > ?`,
      dispatchedAtMs === null ? [nowMs, commandId, nowMs] : [nowMs, commandId, dispatchedAtMs, nowMs],
    );
    return claimed.changes === 1;
  }

  /**
   * Of `deviceIds`, those whose row names a gateway: believed connected (an offline clears it), so a
   * missing presence key is a lapse of the key, not the device gone. One statement.
   */
  async namingGateway(deviceIds: readonly string[]): Promise<Set<string>> {
    if (deviceIds.length === 0) return new Set();
    const rows = await this.#db.query<{ id: string }>(
      `SELECT id FROM devices WHERE id IN (${deviceIds.map(() => '?').join(', ')}) AND gateway_id IS NOT NULL`, [...deviceIds],
    );
    return new Set(rows.map((row) => row.id));
  }

  /** Gives a claim back after a failed append: the previous dispatch time again, unless something dispatched it since. */
  async releaseRedispatch(commandId: string, claimedAtMs: number, previousMs: number | null): Promise<void> {
    await this.#db.execute('UPDATE commands SET dispatched_at = ? WHERE id = ? AND dispatched_at = ?', [previousMs, commandId, claimedAtMs]);
  }

  /** A gateway handed the command back: forget the assignment, keep the dispatch time. */
  async clearGateway(commandId: string): Promise<void> {
    await this.#db.execute('UPDATE commands SET gateway_id = NULL WHERE id = ?', [commandId]);
  }
}

/** A commands row validated, or its STORE_CORRUPT error (one bad row fails only the caller that asked for it). */
function validOrCorrupt(row: unknown): CommandRow | SdcError {
  try {
    return validRow(checks.command, row, 'commands');
  } catch (error) {
    if (!SdcError.is(error, 'STORE_CORRUPT')) throw error;
    return error;
  }
}

/** `CASE id WHEN ? THEN ? ... END` over the commands, with its parameters: one value per row in one UPDATE. */
function caseOf(commandIds: readonly string[], value: (id: string) => SqlValue): { sql: string; params: SqlValue[] } {
  return { sql: `CASE id ${commandIds.map(() => 'WHEN ? THEN ?').join(' ')} END`, params: commandIds.flatMap((id) => [id, value(id)]) };
}

type NewCommand = { command: SignedCommand; createdBy: string; idempotencyKey: string | null; argsJson: string; traceparent?: string };

/** Command rows per INSERT statement in a group commit (11 parameters each, under SQLite's 999). */
const commandRowsPerStatementMax = 64;

/** New commands (state queued), as multi-row INSERTs. */
function insertCommandsStatements(rows: readonly NewCommand[]): SqlStatement[] {
  const statements: SqlStatement[] = [];
  for (let start = 0; start < rows.length; start += commandRowsPerStatementMax) {
    const chunk = rows.slice(start, start + commandRowsPerStatementMax);
    statements.push({
      sql: `INSERT INTO commands (id, device_id, opcode, args_json, state, created_by, idempotency_key, device_seq, signed_json, expires_at, attempts, created_at, updated_at, traceparent)
       VALUES ${chunk.map(() => "(?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, 0, ?, ?, ?)").join(', ')}`,
      params: chunk.flatMap(({ command, ...row }) => [command.id, command.device_id, command.opcode, row.argsJson, row.createdBy, row.idempotencyKey, command.device_seq, canonicalize(command),
        command.expires_at, command.issued_at, command.issued_at, row.traceparent ?? null]),
    });
  }
  return statements;
}

/** The compare-and-set on the command's state: true when it changed the row, false when another writer changed it first. */
async function tryUpdateState(tx: SqlExecutor, effect: Extract<TransactionEffect, { type: 'update_state' }>): Promise<boolean> {
  const { sql, params } = compareAndSetStatement(effect);
  return (await tx.execute(sql, params)).changes === 1;
}

/** The compare-and-set as a statement: it changes the row (1) only while the state is the one the transition was decided from. */
function compareAndSetStatement(effect: Extract<TransactionEffect, { type: 'update_state' }>): SqlStatement {
  return {
    sql: `UPDATE commands SET state = ?, updated_at = ?, attempts = attempts + ?, result_json = COALESCE(?, result_json) WHERE id = ? AND state = ?
     AND (? = 0 OR first_dispatched_at IS NULL)`,
    params: [effect.to, effect.atMs, effect.attemptsIncrement, effect.resultFrame, effect.commandId, effect.from, effect.onlyIfNeverDispatched ? 1 : 0],
  };
}

type StateUpdate = Extract<TransactionEffect, { type: 'update_state' }>;

/** Commands per locking read and per CASE UPDATE of a group (6 CASE arms of 2 parameters each and the id: 13 per command, under SQLite's 999). */
const stateUpdatesPerStatementMax = 64;

/**
 * What updateStates decided: per member whether it won, and the UPDATE still to send for the
 * winners (in the caller's batch, first) with the rows it must change, when there is one.
 */
interface StateUpdatesOutcome {
  readonly won: readonly boolean[];
  readonly write?: { readonly statement: SqlStatement; readonly rowsExpected: number };
}

/**
 * The compare-and-sets of a group in fewer statements than one UPDATE each, decided here and
 * written by the caller's batch. `guess` (issue 17: one statement where there were two): one
 * UPDATE whose WHERE holds each member's compare-and-set (the state it was decided from, and
 * never dispatched when it asks for that) and whose CASE arms write each member's change; every
 * member is assumed to win, and when the UPDATE changes fewer rows than the group has members the
 * caller throws GroupGuessMissed (it rolls back and asks again with `exact`: which members lost
 * cannot be told from the count). `exact`: the group's rows read
 * under lock (`FOR UPDATE` on MySQL, in id order; SQLite's transactions run one at a time), each
 * member decided on them, and the winners written by one UPDATE. Under the lock nobody changes
 * those rows before the commit, so this decides exactly what the per-row compare-and-set would.
 * Both lock the rows in id order (InnoDB's UPDATE walks `id IN (...)` in index order). A group that
 * names one command twice, or is larger than the statement bound, is done row by row here
 * (tryUpdateState), with nothing left to write.
 */
async function updateStates(tx: SqlExecutor, updates: readonly StateUpdate[], mode: 'guess' | 'exact'): Promise<StateUpdatesOutcome> {
  const ids = [...new Set(updates.map((update) => update.commandId))].sort();
  if (ids.length !== updates.length || ids.length > stateUpdatesPerStatementMax) {
    const won: boolean[] = [];
    for (const update of updates) won.push(await tryUpdateState(tx, update));
    return { won };
  }
  if (mode === 'guess') {
    const from = caseOfUpdates(updates, (update) => update.from);
    const neverDispatched = caseOfUpdates(updates, (update) => (update.onlyIfNeverDispatched ? 1 : 0));
    const statement = writeStatesStatement(updates, { sql: ` AND state = ${from.sql} AND (${neverDispatched.sql} = 0 OR first_dispatched_at IS NULL)`, params: [...from.params, ...neverDispatched.params] });
    return { won: updates.map(() => true), write: { statement, rowsExpected: updates.length } };
  }
  const list = ids.map(() => '?').join(', ');
  const rows = await tx.query<{ id: string; state: string; first_dispatched_at: number | null }>(
    `SELECT id, state, first_dispatched_at FROM commands WHERE id IN (${list}) ORDER BY id${tx.dialect === 'mysql' ? ' FOR UPDATE' : ''}`, ids);
  const current = new Map(rows.map((row) => [row.id, row]));
  const won = updates.map((update) => {
    const row = current.get(update.commandId);
    return row !== undefined && row.state === update.from && (!update.onlyIfNeverDispatched || row.first_dispatched_at === null);
  });
  const winners = updates.filter((_, index) => won[index]);
  if (winners.length === 0) return { won };
  return { won, write: { statement: writeStatesStatement(winners, { sql: '', params: [] }), rowsExpected: winners.length } };
}

/** `CASE id WHEN ? THEN ? ... END` over the updates, with its parameters. */
function caseOfUpdates(updates: readonly StateUpdate[], value: (update: StateUpdate) => SqlValue): { sql: string; params: SqlValue[] } {
  return { sql: `CASE id ${updates.map(() => 'WHEN ? THEN ?').join(' ')} END`, params: updates.flatMap((update) => [update.commandId, value(update)]) };
}

/** One UPDATE writing each update's change to its row, under the extra `condition`. */
function writeStatesStatement(updates: readonly StateUpdate[], condition: { sql: string; params: readonly SqlValue[] }): SqlStatement {
  const state = caseOfUpdates(updates, (update) => update.to);
  const updatedAt = caseOfUpdates(updates, (update) => update.atMs);
  const attempts = caseOfUpdates(updates, (update) => update.attemptsIncrement);
  const result = caseOfUpdates(updates, (update) => update.resultFrame);
  return {
    sql: `UPDATE commands SET state = ${state.sql}, updated_at = ${updatedAt.sql}, attempts = attempts + ${attempts.sql}, result_json = COALESCE(${result.sql}, result_json)
     WHERE id IN (${updates.map(() => '?').join(', ')})${condition.sql}`,
    params: [...state.params, ...updatedAt.params, ...attempts.params, ...result.params, ...updates.map((update) => update.commandId), ...condition.params],
  };
}

/** History rows per INSERT statement in a group commit (4 parameters each). */
const historyRowsPerStatementMax = 64;

/** One history row, inserted only when the statement before it changed one row (whenPreviousChanged). */
function guardedHistoryStatement(dialect: SqlDialect, row: Extract<TransactionEffect, { type: 'append_history' }>): SqlStatement {
  return {
    sql: `INSERT INTO command_events (command_id, state, at, detail_json) SELECT ?, ?, ?, ?${whenPreviousChanged(dialect, 1)}`,
    params: [row.commandId, row.state, row.atMs, canonicalize(row.detail)],
  };
}

/** The history rows of a group's winners, in order, as multi-row INSERTs. */
function historyStatements(rows: ReadonlyArray<Extract<TransactionEffect, { type: 'append_history' }>>): SqlStatement[] {
  const statements: SqlStatement[] = [];
  for (let start = 0; start < rows.length; start += historyRowsPerStatementMax) {
    const chunk = rows.slice(start, start + historyRowsPerStatementMax);
    statements.push({
      sql: `INSERT INTO command_events (command_id, state, at, detail_json) VALUES ${chunk.map(() => '(?, ?, ?, ?)').join(', ')}`,
      params: chunk.flatMap((row) => [row.commandId, row.state, row.atMs, canonicalize(row.detail)]),
    });
  }
  return statements;
}
