import { SdcError } from '../../../core/errors/index.js';
import type { BatchOptions, BatchResult, ExecuteResult, SqlDialect, SqlExecutor, SqlStatement, SqlTransaction } from './sql-port.js';

/** Statements per batch (SqlTransaction.executeBatch): a bound on one query's text and on the results kept for it. */
export const batchStatementsMax = 64;

/**
 * What every adapter checks before it runs a batch, so both refuse the same batches:
 * STORE_INVALID_ARGUMENT for an empty one, one past batchStatementsMax, or a text with `;`.
 */
export function assertBatchShape(statements: readonly SqlStatement[]): void {
  if (statements.length === 0 || statements.length > batchStatementsMax) {
    throw new SdcError('STORE_INVALID_ARGUMENT', `a batch holds 1..${batchStatementsMax} statements, got ${statements.length}`);
  }
  for (const statement of statements) assertOneStatement(statement.sql);
}

/**
 * A text must be one statement: no `;` anywhere in it. Why so blunt: on MySQL a batch is sent as
 * one multi-statement query, so a second statement hidden in a text would run; our texts never
 * need the character (values are bound, never written into the text).
 */
export function assertOneStatement(sql: string): void {
  if (sql.includes(';')) throw new SdcError('STORE_INVALID_ARGUMENT', 'a statement text may not contain ";" (one statement per text)');
}

/**
 * A batch run as its statements one after another through `executor` (checked as every batch is):
 * what an in-process adapter does (no round trips to save), and what a wrapper around an executor
 * does to see each statement (a test's fault injection, a bench's statement count).
 */
export async function runStatementsOneByOne(executor: SqlExecutor, statements: readonly SqlStatement[]): Promise<BatchResult[]> {
  assertBatchShape(statements);
  const results: BatchResult[] = [];
  for (const statement of statements) {
    results.push(statement.returnsRows === true
      ? { changes: 0, rows: await executor.query<Record<string, unknown>>(statement.sql, statement.params) }
      : { ...(await executor.execute(statement.sql, statement.params)), rows: [] });
  }
  return results;
}

/** `executor` as a transaction executor whose batches run one statement at a time through it (runStatementsOneByOne). */
export function withOneByOneBatches(executor: SqlExecutor): SqlTransaction {
  return {
    dialect: executor.dialect,
    query: (sql, params) => executor.query(sql, params),
    execute: (sql, params) => executor.execute(sql, params),
    executeBatch: (statements) => runStatementsOneByOne(executor, statements),
  };
}

/**
 * Statements in order over as few batches as the bound allows (one for at most batchStatementsMax):
 * each statement's outcome, in order. A failure stops it, as in one batch; `commit` goes with the last.
 */
export async function executeInBatches(tx: SqlTransaction, statements: readonly SqlStatement[], options: BatchOptions = {}): Promise<BatchResult[]> {
  const results: BatchResult[] = [];
  for (let start = 0; start < statements.length; start += batchStatementsMax) {
    const last = start + batchStatementsMax >= statements.length;
    // The COMMIT (when asked) rides with the last batch only.
    results.push(...await tx.executeBatch(statements.slice(start, start + batchStatementsMax), last ? options : {}));
  }
  return results;
}

/**
 * An executor that runs nothing: a store that knows it (SqlAuditStore's record and recordMany)
 * adds its writes here, and the caller sends them later in a batch with its own statements, in
 * the same transaction (issue 17: a transition's state change, history row and audit outbox row
 * in one round trip). Any other use throws STORE_INVALID_ARGUMENT, so a store that does not know
 * it fails loudly instead of its write being lost.
 */
export class DeferredStatements implements SqlExecutor {
  readonly #statements: SqlStatement[] = [];

  /**
   * `guardedOn`: the writes added must be guarded (whenPreviousChanged): the first on the caller's
   * statement before them having changed this many rows, each later one on the one before it.
   */
  constructor(readonly dialect: SqlExecutor['dialect'], readonly guardedOn?: number) {}

  /** The guard for the next write added, when this collects guarded writes (see the constructor). */
  nextGuard(): string | undefined {
    if (this.guardedOn === undefined) return undefined;
    return whenPreviousChanged(this.dialect, this.#statements.length === 0 ? this.guardedOn : 1);
  }

  /** Keeps a write for the caller's batch. */
  add(statement: SqlStatement): void {
    assertOneStatement(statement.sql);
    this.#statements.push(statement);
  }

  /** The writes kept, in the order they were added. */
  get statements(): readonly SqlStatement[] {
    return this.#statements;
  }

  query<T = Record<string, unknown>>(): Promise<T[]> {
    return Promise.reject(new SdcError('STORE_INVALID_ARGUMENT', 'DeferredStatements runs nothing: its writes are sent later in a batch'));
  }

  execute(): Promise<ExecuteResult> {
    return Promise.reject(new SdcError('STORE_INVALID_ARGUMENT', 'DeferredStatements runs nothing: its writes are sent later in a batch'));
  }
}

/**
 * The tail of `INSERT INTO t (columns) SELECT ?, ?, ...` that inserts its row only when the
 * statement just before it (in the same batch, on the same connection) changed exactly `rows`
 * rows: MySQL's ROW_COUNT(), SQLite's changes(). Why: a batch that commits in its own round trip
 * (BatchOptions.commit) cannot be rolled back after a compare-and-set lost, so the writes that
 * belong to the change are made conditional on it instead, and a lost one commits nothing. Chain
 * them: each guarded INSERT of one row is the `rows = 1` condition of the next.
 */
export function whenPreviousChanged(dialect: SqlDialect, rows: number): string {
  if (!(Number.isSafeInteger(rows) && rows >= 0)) throw new SdcError('STORE_INVALID_ARGUMENT', `rows must be a non-negative integer, got ${rows}`);
  return dialect === 'mysql' ? ` FROM DUAL WHERE ROW_COUNT() = ${rows}` : ` WHERE changes() = ${rows}`;
}
