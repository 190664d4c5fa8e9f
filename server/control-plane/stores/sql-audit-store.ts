import { BoundedLru } from '../../../core/crypto/bounded-lru.js';
import { SdcError } from '../../../core/errors/index.js';
import { auditPayloadJson, auditScanLimitMax, validatedAuditPayloadText, type AuditEntry, type AuditEntryInput, type AuditStore } from '../../../core/protocol/audit-chain.js';
import type { JsonObject } from '../../../core/protocol/json-value.js';
import type { SqlDatabase, SqlExecutor, SqlStatement, SqlTransaction } from '../../stores/sql/sql-port.js';
import { DeferredStatements, executeInBatches } from '../../stores/sql/sql-batch.js';
import { lockCounterRowStatement } from './counters.js';

interface AuditRow {
  seq: number; ts: number; kind: string; actor: string; subject: string | null; payload_json: string; prev_hash: string; hash: string;
}

/** Bounds of SqlAuditStore's recorded payloads: entries, and text per entry (command payloads are under 1 KiB). */
const recordedPayloadsMax = 4_096;
const recordedPayloadCharsMax = 8_192;

interface OutboxRow {
  id: number; ts: number; kind: string; actor: string; subject: string; payload_json: string;
}

/**
 * The audit log's store in the `audit_log` table. The payload is kept as its canonical JSON
 * text, so reading it back gives the exact value that was hashed. A row that no longer parses is
 * returned with an unparsable marker instead of throwing, so verification names its seq.
 *
 * Its outbox is the `audit_outbox` table (migration 007): `record` inserts an input in the
 * caller's transaction, `appendRecorded` moves inputs into `audit_log` under the append lock.
 */
export class SqlAuditStore implements AuditStore<SqlExecutor> {
  readonly #db: SqlDatabase;
  /**
   * This store recorded an input since its last drain transaction began: the next drain need not
   * probe the outbox first (the probe is one statement per drain, and a session's two entries are
   * drained one by one, issue 17). Only a hint: a recording transaction that rolled back costs one
   * empty drain transaction, and inputs recorded by other processes are found by the periodic drain's probe.
   */
  #recordedSinceDrain = false;
  /**
   * Validated payloads this store recorded, by their canonical text (the outbox row's
   * payload_json), until a drain reads a row with exactly that text: the drain then takes the
   * object instead of parsing the text and having AuditLog canonicalize and parse it again to
   * check it (issue 17: five entries per command). Any other row (another process's, a changed
   * one, one recorded before a restart) is parsed and checked as before. Bounded (oldest dropped):
   * a recording transaction that rolled back leaves its entry here until pushed out.
   */
  readonly #recordedPayloads = new BoundedLru<string, JsonObject>(recordedPayloadsMax);

  constructor(db: SqlDatabase) {
    this.#db = db;
  }

  async head(): Promise<AuditEntry | undefined> {
    const rows = await this.#db.query<AuditRow>('SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1');
    return rows[0] === undefined ? undefined : entryFromRow(rows[0]);
  }

  async append(entry: AuditEntry): Promise<void> {
    await conflictOnDuplicate(entry.seq, () => insertEntry(this.#db, entry));
  }

  /**
   * One transaction: take the audit lock row (its UPDATE holds a row lock on MySQL until commit;
   * sql.js runs one transaction at a time anyway), read the head as committed by the previous
   * lock holder (a locking read, not this transaction's snapshot), insert the next entry. Control
   * planes sharing the database queue here instead of writing the same seq.
   */
  async appendAtHead(next: (head: AuditEntry | undefined) => AuditEntry): Promise<AuditEntry> {
    let seq = 0;
    return conflictOnDuplicate(() => seq, () => this.#db.transaction(async (tx) => {
      const row = await lockAndReadHead(tx);
      const entry = next(row === undefined ? undefined : entryFromRow(row));
      seq = entry.seq;
      await insertEntry(tx, entry);
      return entry;
    }));
  }

  /**
   * Group commit: the same transaction and lock as `appendAtHead`, with every entry `next`
   * chains on the head inserted in it (multi-row INSERTs), so a batch costs one lock, one commit
   * and, on sql.js, one save. All entries are stored or none.
   */
  async appendBatch(next: (head: AuditEntry | undefined) => readonly AuditEntry[]): Promise<readonly AuditEntry[]> {
    let seq = 0;
    return conflictOnDuplicate(() => seq, () => this.#db.transaction(async (tx) => {
      const row = await lockAndReadHead(tx);
      const entries = next(row === undefined ? undefined : entryFromRow(row));
      seq = entries[0]?.seq ?? 0;
      await executeInBatches(tx, insertChunks(entries).map(insertEntriesStatement));
      return entries;
    }));
  }

  /** Inserts a validated input into `audit_outbox` inside the caller's transaction; it commits or rolls back with it. */
  async record(tx: SqlExecutor, input: AuditEntryInput): Promise<void> {
    await this.recordMany(tx, [input]);
  }

  /**
   * `record` for several inputs, in order: multi-row INSERTs within the statement bounds
   * (insertRowsMax, insertPayloadCharsMax). Given DeferredStatements, the INSERTs are added there
   * for the caller to send in its batch (a transition's, issue 17) instead of being run.
   */
  async recordMany(tx: SqlExecutor, inputs: readonly AuditEntryInput[]): Promise<void> {
    if (tx instanceof DeferredStatements && tx.guardedOn !== undefined) {
      // Guarded: a row per statement, each inserted only if the statement before it changed what it should.
      for (const input of inputs) {
        tx.add({
          sql: `INSERT INTO audit_outbox (ts, kind, actor, subject, payload_json) SELECT ?, ?, ?, ?, ?${tx.nextGuard()!}`,
          params: [input.ts, input.kind, input.actor, input.subject, auditPayloadJson(input.payload)],
        });
        this.#rememberPayload(input.payload);
      }
      if (inputs.length > 0) this.#recordedSinceDrain = true;
      return;
    }
    for (const chunk of inputChunks(inputs)) {
      const statement: SqlStatement = {
        sql: `INSERT INTO audit_outbox (ts, kind, actor, subject, payload_json) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?)').join(', ')}`,
        params: chunk.flatMap(({ input, payloadJson }) => [input.ts, input.kind, input.actor, input.subject, payloadJson]),
      };
      if (tx instanceof DeferredStatements) tx.add(statement);
      else await tx.execute(statement.sql, statement.params);
      for (const { input } of chunk) this.#rememberPayload(input.payload);
    }
    if (inputs.length > 0) this.#recordedSinceDrain = true;
  }

  /** Keeps a validated payload by its text (#recordedPayloads); others, and long ones, are not kept. */
  #rememberPayload(payload: JsonObject): void {
    const text = validatedAuditPayloadText(payload);
    if (text === undefined || text.length > recordedPayloadCharsMax) return;
    this.#recordedPayloads.set(text, payload);
  }

  /** An outbox row as an input: the payload recorded here with exactly its text, else inputFromOutboxRow's parse. */
  #inputFromRow(row: OutboxRow): AuditEntryInput {
    const payload = this.#recordedPayloads.get(row.payload_json);
    if (payload === undefined) return inputFromOutboxRow(row);
    this.#recordedPayloads.delete(row.payload_json);
    return { ts: Number(row.ts), kind: row.kind, actor: row.actor, subject: row.subject, payload };
  }

  /**
   * One transaction under the audit lock: read the oldest `limit` outbox rows and the head, insert
   * the entries `next` chains on them, delete exactly those rows. The lock serialises drainers
   * (also across processes); the DELETE must remove every row read, or another writer chained
   * them first and the transaction is refused (AUDIT_CONFLICT, retried by AuditLog), so an input
   * is never chained twice. The rows and the head are one plain read taken after the lock
   * (drainReadSql): on MySQL its snapshot begins then (the transaction's first plain read), so it
   * sees every append and drain before it (each holds the lock until its commit), and it takes no
   * gap locks that would stall the transactions recording new inputs. A writer that skipped the
   * lock (`append`) and took the head's next seq meanwhile makes the INSERT a duplicate: refused
   * (AUDIT_CONFLICT) and retried, as before.
   */
  async appendRecorded(next: (head: AuditEntry | undefined, inputs: readonly AuditEntryInput[]) => readonly AuditEntry[], limit: number): Promise<readonly AuditEntry[]> {
    // The periodic drain usually finds nothing: answered without a transaction (on sql.js, a file
    // save). After this store recorded an input there is no need to look first.
    if (!this.#recordedSinceDrain) {
      const [waiting] = await this.#db.query<{ id: number }>('SELECT id FROM audit_outbox ORDER BY id ASC LIMIT 1');
      if (waiting === undefined) return [];
    }
    let seq = 0;
    return conflictOnDuplicate(() => seq, () => this.#db.transaction(async (tx) => {
      // Cleared before the outbox read: an input recorded from here on may not be in it.
      this.#recordedSinceDrain = false;
      // The lock and the read in one round trip, the DELETE and the INSERTs in a second, the
      // COMMIT a third (issue 17: five, one per statement); the server runs them in this order.
      const read = await tx.executeBatch([...appendLockStatements(tx.dialect), { sql: drainReadSql, params: [limit], returnsRows: true }]);
      const { head, rows } = splitDrainRead(read[read.length - 1]!.rows as unknown as DrainReadRow[]);
      if (rows.length === 0) return [];
      const entries = next(head === undefined ? undefined : entryFromRow(head), rows.map((row) => this.#inputFromRow(row)));
      if (entries.length !== rows.length) {
        throw new SdcError('AUDIT_ENTRY_INVALID', `the audit log chained ${entries.length} entries for ${rows.length} recorded inputs`);
      }
      seq = entries[0]?.seq ?? 0;
      const [deleted] = await executeInBatches(tx, [
        { sql: `DELETE FROM audit_outbox WHERE id IN (${rows.map(() => '?').join(', ')})`, params: rows.map((r) => r.id) },
        ...insertChunks(entries).map(insertEntriesStatement),
      ]);
      // Checked before the commit: the INSERTs of this batch roll back with the transaction.
      if (deleted!.changes !== rows.length) {
        throw new SdcError('AUDIT_CONFLICT', `another writer chained ${rows.length - deleted!.changes} of these recorded audit inputs first`);
      }
      return entries;
    }));
  }

  /** How many inputs wait in the outbox (recorded, not yet chained). */
  async recordedCount(): Promise<number> {
    const [row] = await this.#db.query<{ n: number }>('SELECT COUNT(*) AS n FROM audit_outbox');
    return Number(row?.n ?? 0);
  }

  async scan(fromSeq: number, limit: number): Promise<AuditEntry[]> {
    if (!Number.isSafeInteger(fromSeq) || !Number.isSafeInteger(limit) || limit < 1 || limit > auditScanLimitMax) {
      throw new SdcError('AUDIT_ENTRY_INVALID', `scan needs an integer fromSeq and a limit in 1..${auditScanLimitMax}`);
    }
    const rows = await this.#db.query<AuditRow>('SELECT * FROM audit_log WHERE seq >= ? ORDER BY seq ASC LIMIT ?', [fromSeq, limit]);
    return rows.map(entryFromRow);
  }
}

/**
 * The head and the oldest `?` outbox rows in one statement (issue 17: it was two, a round trip per
 * drain more on MySQL). `part` tells them apart (0 the head, 1 an input; `n` its seq or outbox id);
 * the inputs' missing columns are NULL. Each part is a derived table because SQLite allows ORDER BY
 * and LIMIT only on a whole compound SELECT; the outer ORDER BY puts the head first and the inputs
 * in id order in both dialects.
 */
const drainReadSql = 'SELECT * FROM (SELECT 0 AS part, seq AS n, ts, kind, actor, subject, payload_json, prev_hash, hash FROM audit_log ORDER BY seq DESC LIMIT 1) AS head'
  + ' UNION ALL SELECT * FROM (SELECT 1 AS part, id AS n, ts, kind, actor, subject, payload_json, NULL AS prev_hash, NULL AS hash'
  + ' FROM audit_outbox ORDER BY id ASC LIMIT ?) AS inputs ORDER BY part ASC, n ASC';

interface DrainReadRow {
  part: number; n: number; ts: number; kind: string; actor: string; subject: string | null; payload_json: string; prev_hash: string | null; hash: string | null;
}

/** drainReadSql's answer as the head's row (undefined for an empty log) and the inputs' rows, in id order. */
function splitDrainRead(read: readonly DrainReadRow[]): { head: AuditRow | undefined; rows: OutboxRow[] } {
  let head: AuditRow | undefined;
  const rows: OutboxRow[] = [];
  for (const row of read) {
    if (Number(row.part) === 0) {
      head = { seq: row.n, ts: row.ts, kind: row.kind, actor: row.actor, subject: row.subject, payload_json: row.payload_json, prev_hash: row.prev_hash ?? '', hash: row.hash ?? '' };
    } else {
      rows.push({ id: row.n, ts: row.ts, kind: row.kind, actor: row.actor, subject: row.subject ?? '', payload_json: row.payload_json });
    }
  }
  return { head, rows };
}

/** The counters row whose lock serialises appends across processes (its value counts append transactions; never read). */
const auditAppendLockName = 'audit_append_lock';

/**
 * What serialises appenders for the rest of a transaction, as statements to send first. On MySQL, the lock row's row lock (transactions
 * there run concurrently). On SQLite the transaction already holds the database's one write lock
 * from its start (the sql.js adapter begins with BEGIN IMMEDIATE, and one process owns the file),
 * so no other appender can run until it ends; the row's upsert was a statement per append and per
 * drain for nothing (issue 17).
 */
function appendLockStatements(dialect: SqlExecutor['dialect']): SqlStatement[] {
  return dialect === 'sqlite' ? [] : [lockCounterRowStatement(dialect, auditAppendLockName)];
}

/** The append lock (appendLockStatements) and the head read under it, in one batch: the head's row, undefined for an empty log. */
async function lockAndReadHead(tx: SqlTransaction): Promise<AuditRow | undefined> {
  const lockingRead = tx.dialect === 'mysql' ? ' FOR UPDATE' : '';
  const read = await tx.executeBatch([...appendLockStatements(tx.dialect), { sql: `SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1${lockingRead}`, returnsRows: true }]);
  return read[read.length - 1]!.rows[0] as unknown as AuditRow | undefined;
}

async function insertEntry(db: SqlExecutor, entry: AuditEntry): Promise<void> {
  await db.execute(
    'INSERT INTO audit_log (seq, ts, kind, actor, subject, payload_json, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    [entry.seq, entry.ts, entry.kind, entry.actor, entry.subject, auditPayloadJson(entry.payload), entry.prev_hash, entry.hash],
  );
}

/**
 * Rows per INSERT statement, and payload text per statement: 64 rows x 8 parameters stays far
 * below both dialects' placeholder limits, and 1 MiB below MySQL's default max_allowed_packet
 * (a single payload may be 256 KiB).
 */
const insertRowsMax = 64;
const insertPayloadCharsMax = 1_048_576;

interface EntryRow {
  readonly entry: AuditEntry;
  readonly payloadJson: string;
}

/** Consecutive runs of entries, each within the statement bounds (at least one entry per run). */
function insertChunks(entries: readonly AuditEntry[]): EntryRow[][] {
  const chunks: EntryRow[][] = [];
  let chunk: EntryRow[] = [];
  let chunkChars = 0;
  for (const entry of entries) {
    const payloadJson = auditPayloadJson(entry.payload);
    if (chunk.length > 0 && (chunk.length >= insertRowsMax || chunkChars + payloadJson.length > insertPayloadCharsMax)) {
      chunks.push(chunk);
      chunk = [];
      chunkChars = 0;
    }
    chunk.push({ entry, payloadJson });
    chunkChars += payloadJson.length;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/** Consecutive runs of outbox inputs within the same statement bounds as insertChunks. */
function inputChunks(inputs: readonly AuditEntryInput[]): Array<Array<{ input: AuditEntryInput; payloadJson: string }>> {
  const chunks: Array<Array<{ input: AuditEntryInput; payloadJson: string }>> = [];
  let chunk: Array<{ input: AuditEntryInput; payloadJson: string }> = [];
  let chunkChars = 0;
  for (const input of inputs) {
    const payloadJson = auditPayloadJson(input.payload);
    if (chunk.length > 0 && (chunk.length >= insertRowsMax || chunkChars + payloadJson.length > insertPayloadCharsMax)) {
      chunks.push(chunk);
      chunk = [];
      chunkChars = 0;
    }
    chunk.push({ input, payloadJson });
    chunkChars += payloadJson.length;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

function insertEntriesStatement(rows: readonly EntryRow[]): SqlStatement {
  const placeholders = rows.map(() => '(?, ?, ?, ?, ?, ?, ?, ?)').join(', ');
  return {
    sql: `INSERT INTO audit_log (seq, ts, kind, actor, subject, payload_json, prev_hash, hash) VALUES ${placeholders}`,
    params: rows.flatMap(({ entry, payloadJson }) => [entry.seq, entry.ts, entry.kind, entry.actor, entry.subject, payloadJson, entry.prev_hash, entry.hash]),
  };
}

/** A unique violation (the seq, or the lock row created concurrently on first use) is AUDIT_CONFLICT, which AuditLog retries. */
async function conflictOnDuplicate<T>(seq: number | (() => number), write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if (SdcError.is(error, 'STORE_UNIQUE_VIOLATION')) {
      const at = typeof seq === 'number' ? seq : seq();
      throw new SdcError('AUDIT_CONFLICT', `audit entry ${at} already exists`, { seq: at }, { cause: error });
    }
    throw error;
  }
}

function entryFromRow(row: AuditRow): AuditEntry {
  let payload: JsonObject;
  try {
    payload = JSON.parse(row.payload_json) as JsonObject;
  } catch {
    // Unparsable text cannot be what was hashed; the verifier reports this seq as hash_mismatch.
    payload = { unparsable_payload: row.payload_json.slice(0, 256) };
  }
  return {
    seq: Number(row.seq), ts: Number(row.ts), kind: row.kind, actor: row.actor, subject: row.subject ?? '',
    payload, prev_hash: row.prev_hash, hash: row.hash,
  };
}

/** A recorded input as stored; a payload that no longer parses is passed on marked, and the log chains it as audit.record_invalid. */
function inputFromOutboxRow(row: OutboxRow): AuditEntryInput {
  let payload: JsonObject;
  try {
    payload = JSON.parse(row.payload_json) as JsonObject;
  } catch {
    payload = { unparsable_payload: row.payload_json.slice(0, 256) };
  }
  return { ts: Number(row.ts), kind: row.kind, actor: row.actor, subject: row.subject, payload };
}
