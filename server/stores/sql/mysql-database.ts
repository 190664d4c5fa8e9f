// The callback API, not mysql2/promise: its wrapper captures a stack trace (Error.captureStackTrace)
// for every statement in case it fails, about 25 us of CPU each, a sixth of a statement's cost here
// (issue 17: a command round trip runs about 50 statements). Errors are mapped to SdcError anyway.
import type { Pool, PoolConnection, PoolOptions, QueryError, ResultSetHeader } from 'mysql2';
import { mysql2Library } from '../store-libraries.js';
import { SdcError } from '../../../core/errors/index.js';
import { mapMysqlError } from './mysql-errors.js';
import { parseStoreUrl } from '../store-url.js';
import type { BatchOptions, BatchResult, ExecuteResult, SqlDatabase, SqlStatement, SqlTransaction, SqlValue } from './sql-port.js';
import { normaliseParams } from './sql-values.js';
import { assertBatchShape, assertOneStatement } from './sql-batch.js';

export interface MysqlDatabaseOptions {
  /** mysql://user:password@host:port/database */
  readonly url: string;
  readonly connectionLimit?: number;
  /** Callers allowed to wait for a pooled connection before the pool refuses. */
  readonly queueLimit?: number;
  readonly connectTimeoutMs?: number;
  /** Attempts of one transaction when MySQL picks it as a deadlock victim (default deadlockAttemptsMax); 1 lets a test see every deadlock. */
  readonly deadlockAttemptsMax?: number;
}

/** Attempts of one transaction when MySQL reports a deadlock. */
const deadlockAttemptsMax = 4;

/** MySQL 8 / MariaDB 10.11 through a mysql2 pool. */
export async function createMysqlDatabase(options: MysqlDatabaseOptions): Promise<SqlDatabase> {
  // A malformed URL is refused naming it (without its password); mysql2 would throw a bare TypeError.
  parseStoreUrl('mysql', options.url);
  const poolOptions = {
    uri: options.url,
    connectionLimit: options.connectionLimit ?? 10,
    queueLimit: options.queueLimit ?? 10_000,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    // BIGINT columns come back as numbers while they fit 2^53 (all epoch milliseconds do), as strings beyond.
    supportBigNumbers: true,
    bigNumberStrings: false,
    // One statement per call, as on SQLite; also closes off stacked-query injection.
    multipleStatements: false,
    charset: 'utf8mb4',
  };
  // Transactions may send a batch of statements as one query (SqlTransaction.executeBatch), so their
  // connections accept several statements per query; every text sent on them is checked for `;`
  // first (assertOneStatement, assertBatchShape), so only our own one-statement texts are stacked.
  const { createPool } = mysql2Library();
  const pools = { statements: createPool(poolOptions), transactions: transactionPool({ ...poolOptions, multipleStatements: true }) };
  const database = new MysqlDatabase(pools, options.deadlockAttemptsMax ?? deadlockAttemptsMax);
  try {
    await database.query('SELECT 1');
  } catch (error) {
    await database.close().catch(() => undefined);
    throw error;
  }
  return database;
}

/**
 * The pool transactions run on: each of its connections has autocommit off from the start, so a
 * transaction opens with its first statement and no START TRANSACTION round trip goes before it
 * (issue 17: BEGIN was about a tenth of the control path's round trips, one per transaction).
 * Every transaction on it ends in COMMIT or ROLLBACK (or the connection is destroyed), so none is
 * left open for the next one. Statements outside a transaction stay on the autocommit pool.
 */
function transactionPool(poolOptions: PoolOptions): Pool {
  const pool = mysql2Library().createPool(poolOptions);
  pool.on('connection', (connection) => {
    // Queued on the new connection ahead of anything its first user sends (mysql2 runs a connection's commands in order).
    connection.query('SET autocommit = 0', (error: QueryError | null) => {
      if (error) connection.destroy();
    });
  });
  return pool;
}

/** Buffers for BLOBs: mysql2 escapes Buffer, not a bare Uint8Array. */
function mysqlParams(params: readonly SqlValue[] | undefined): unknown[] {
  return normaliseParams(params).map((value) =>
    value instanceof Uint8Array && !Buffer.isBuffer(value) ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : value);
}

type Queryable = Pick<Pool, 'query'> | Pick<PoolConnection, 'query'>;

/**
 * Round trips to MySQL made by this process (statements, COMMIT, ROLLBACK; no BEGIN is sent), for the
 * benches' per-command figure (`sdc bench roundtrip`): a process-wide count, read before and
 * after a phase. Counting is one integer add per round trip.
 */
let roundTrips = 0;

/** Round trips to MySQL this process made so far (every MysqlDatabase together). */
export function mysqlRoundTrips(): number {
  return roundTrips;
}

/**
 * Round trips by statement (whitespace collapsed, first statementTallyKeyLength characters) while a
 * tally is running: where the per-command figure goes, stage by stage (`sdc bench roundtrip`).
 * Undefined, and no cost beyond one comparison, when none runs.
 */
let statementTally: Map<string, number> | undefined;
/** Distinct statements a tally keeps; the rest are counted under one key (bounded like every map here). */
const statementTallyKeysMax = 500;
const statementTallyKeyLength = 90;

/** Starts counting round trips by statement in this process; the returned function stops and answers the counts. */
export function startMysqlStatementTally(): () => ReadonlyMap<string, number> {
  const tally = new Map<string, number>();
  statementTally = tally;
  return () => {
    if (statementTally === tally) statementTally = undefined;
    return tally;
  };
}

/**
 * Adds `roundTripsCounted` (1, or 0 for a statement that rode in a batch behind another) under the
 * statement's key; a batched statement is kept under its own key marked `(batched)`, so the tally
 * still says which statements ran while its counts stay round trips.
 */
function countStatement(text: string, roundTripsCounted = 1): void {
  if (statementTally === undefined) return;
  let key = (roundTripsCounted === 0 ? '(batched) ' : '') + text.replace(/\s+/g, ' ').trim();
  key = key.slice(0, statementTallyKeyLength);
  if (!statementTally.has(key) && statementTally.size >= statementTallyKeysMax) key = '(other statements)';
  statementTally.set(key, (statementTally.get(key) ?? 0) + roundTripsCounted);
}

/** One round trip through the callback API, its error mapped to SdcError; `label` names it in a tally (a batch: its first statement). */
function send(target: Queryable, sql: string, params: readonly SqlValue[] | undefined, label = sql): Promise<unknown> {
  roundTrips += 1;
  countStatement(label);
  return new Promise((resolve, reject) => {
    target.query(sql, mysqlParams(params), (error: QueryError | null, result: unknown) => {
      if (error) reject(mapMysqlError(error));
      else resolve(result);
    });
  });
}

/** A callback-style connection step (beginTransaction, commit, rollback) as a promise of its raw error. */
function step(run: (callback: (error: Error | null) => void) => void, label: string): Promise<void> {
  roundTrips += 1;
  countStatement(label);
  return new Promise((resolve, reject) => run((error) => (error ? reject(error) : resolve())));
}

async function runQuery<T>(target: Queryable, sql: string, params: readonly SqlValue[] | undefined): Promise<T[]> {
  const rows = await send(target, sql, params);
  if (!Array.isArray(rows)) throw new SdcError('STORE_INVALID_ARGUMENT', 'query() was given a statement that returns no rows; use execute()');
  return rows as T[];
}

async function runExecute(target: Queryable, sql: string, params: readonly SqlValue[] | undefined): Promise<ExecuteResult> {
  return executeResult(await send(target, sql, params));
}

/** The server's summary of a multi-row INSERT ("Records: 3  Duplicates: 1  Warnings: 0"). */
const insertInfoDuplicates = /\bDuplicates:\s*(\d+)/;

function executeResult(result: unknown): ExecuteResult {
  if (Array.isArray(result)) return { changes: 0 };
  const header = result as ResultSetHeader;
  const base = header.insertId > 0 ? { changes: header.affectedRows, lastInsertId: header.insertId } : { changes: header.affectedRows };
  const duplicates = header.info === undefined || header.info === '' ? undefined : insertInfoDuplicates.exec(header.info)?.[1];
  // Only a count above 0 is passed on: every multi-row INSERT and ALTER reports one, mostly 0.
  return duplicates === undefined || duplicates === '0' ? base : { ...base, duplicates: Number(duplicates) };
}

/** The statements as one query's text (joined by `;`, each checked to be one statement) and their parameters in order. */
function batchText(statements: readonly SqlStatement[]): { sql: string; params: SqlValue[] } {
  assertBatchShape(statements);
  const params: SqlValue[] = [];
  for (const statement of statements) if (statement.params !== undefined) params.push(...statement.params);
  return { sql: statements.map((statement) => statement.sql).join(';\n'), params };
}

/**
 * A batch as one round trip, with the COMMIT after its last statement when `commit`; each
 * statement's outcome, in order (mysql2 answers one result per statement, the COMMIT's dropped).
 * The server stops at a failing statement, so a failure commits nothing.
 */
async function runBatch(target: Queryable, statements: readonly SqlStatement[], commit: boolean): Promise<BatchResult[]> {
  const { sql: text, params } = batchText(statements);
  const sql = commit ? `${text};\nCOMMIT` : text;
  for (const statement of statements.slice(1)) countStatement(statement.sql, 0);
  if (commit) countStatement('COMMIT', 0);
  const sent = statements.length + (commit ? 1 : 0);
  const results = await send(target, sql, params, statements[0]!.sql);
  const perStatement = sent === 1 ? [results] : (results as unknown[]);
  if (!Array.isArray(perStatement) || perStatement.length !== sent) {
    throw new SdcError('STORE_QUERY_FAILED', `a batch of ${sent} statements answered ${Array.isArray(perStatement) ? perStatement.length : 'no'} results`);
  }
  return perStatement.slice(0, statements.length).map((result, index) => {
    if (statements[index]!.returnsRows === true) {
      if (!Array.isArray(result)) throw new SdcError('STORE_INVALID_ARGUMENT', `batched statement ${index + 1} was marked returnsRows but returned no rows`);
      return { changes: 0, rows: result as Array<Record<string, unknown>> };
    }
    return { ...executeResult(result), rows: [] };
  });
}

/**
 * A connection lost while its COMMIT was in flight: the server may have committed before the
 * connection went (the reply was lost) or rolled back when it noticed; the client cannot tell.
 * STORE_COMMIT_UNKNOWN, not STORE_UNAVAILABLE, so a caller does not answer "not done" for work
 * that may be done (CommandService resolves a create's by reading the row back under a lock).
 */
function commitOutcomeUnknown(error: SdcError): SdcError {
  return new SdcError('STORE_COMMIT_UNKNOWN', `the connection was lost with the COMMIT in flight: the transaction may or may not have committed (${error.message})`, error.details, { cause: error });
}

class MysqlDatabase implements SqlDatabase {
  readonly dialect = 'mysql' as const;
  private closed = false;

  constructor(private readonly pools: { readonly statements: Pool; readonly transactions: Pool }, private readonly deadlockAttemptsMax: number) {}

  query<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    this.assertOpen();
    return runQuery<T>(this.pools.statements, sql, params);
  }

  execute(sql: string, params?: readonly SqlValue[]): Promise<ExecuteResult> {
    this.assertOpen();
    return runExecute(this.pools.statements, sql, params);
  }

  /**
   * InnoDB may pick this transaction as a deadlock victim and roll it back; the work is then
   * safe to run again (nothing of it was committed), so it is retried a few times with a short
   * growing pause before STORE_CONFLICT reaches the caller.
   */
  async transaction<T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.transactionOnce(fn);
      } catch (error) {
        const deadlock = SdcError.is(error, 'STORE_CONFLICT') && error.details.driverCode === 'ER_LOCK_DEADLOCK';
        if (!deadlock || attempt >= this.deadlockAttemptsMax) throw error;
        await new Promise((resolve) => setTimeout(resolve, 5 * attempt + Math.floor(Math.random() * 10)));
      }
    }
  }

  private async transactionOnce<T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T> {
    this.assertOpen();
    let connection: PoolConnection;
    try {
      connection = await new Promise<PoolConnection>((resolve, reject) => {
        this.pools.transactions.getConnection((error, got) => (error ? reject(error) : resolve(got)));
      });
    } catch (error) {
      throw mapMysqlError(error);
    }
    let open = true;
    let broken = false;
    /** A batch committed the transaction (BatchOptions.commit): no COMMIT and no ROLLBACK after `fn`. */
    let committed = false;
    const assertTransactionOpen = (): void => {
      if (!open) throw new SdcError('STORE_INVALID_ARGUMENT', 'transaction executor used after its transaction ended');
    };
    const tx: SqlTransaction = {
      dialect: 'mysql',
      query: async <R>(sql: string, params?: readonly SqlValue[]) => {
        assertTransactionOpen();
        assertOneStatement(sql);
        return runQuery<R>(connection, sql, params);
      },
      execute: async (sql: string, params?: readonly SqlValue[]) => {
        assertTransactionOpen();
        assertOneStatement(sql);
        return runExecute(connection, sql, params);
      },
      executeBatch: async (statements: readonly SqlStatement[], options?: BatchOptions) => {
        assertTransactionOpen();
        const commit = options?.commit === true;
        // Ended before the round trip: a COMMIT in flight must not be followed by more statements.
        if (commit) open = false;
        const results = await runBatch(connection, statements, commit).catch((error: unknown) => {
          // A connection lost with the COMMIT in flight: the server may have run it (commitOutcomeUnknown).
          if (commit && SdcError.is(error, 'STORE_UNAVAILABLE')) throw commitOutcomeUnknown(error);
          // Not committed (the server stopped at the failure): the transaction is still the caller's to roll back.
          if (commit) open = true;
          throw error;
        });
        if (commit) committed = true;
        return results;
      },
    };
    try {
      // No START TRANSACTION: the connection has autocommit off (transactionPool), so the first statement opens it.
      let result: T;
      try {
        result = await fn(tx);
      } catch (error) {
        open = false;
        if (committed) throw error;
        await step((done) => connection.rollback(done), 'ROLLBACK').catch(() => {
          // The connection is broken; destroy it below instead of returning it to the pool.
          broken = true;
        });
        throw error;
      }
      open = false;
      if (committed) return result;
      await step((done) => connection.commit(done), 'COMMIT').catch(async (error: unknown) => {
        await step((done) => connection.rollback(done), 'ROLLBACK').catch(() => { broken = true; });
        const mapped = mapMysqlError(error);
        throw SdcError.is(mapped, 'STORE_UNAVAILABLE') ? commitOutcomeUnknown(mapped) : mapped;
      });
      return result;
    } finally {
      open = false;
      if (broken) connection.destroy();
      else connection.release();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const ends = [this.pools.statements, this.pools.transactions].map((pool) => step((done) => pool.end(done), 'END'));
    const failed = (await Promise.allSettled(ends)).find((outcome) => outcome.status === 'rejected');
    if (failed !== undefined) throw mapMysqlError((failed as PromiseRejectedResult).reason);
  }

  private assertOpen(): void {
    if (this.closed) throw new SdcError('STORE_CLOSED', 'MySQL database is closed');
  }
}
