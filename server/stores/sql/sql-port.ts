/**
 * The SQL port: the few operations the control plane needs, identical on the embedded
 * (sql.js / SQLite) and the real (mysql2 / MySQL 8, MariaDB 10.11) adapter.
 * Placeholders are `?` on both. One statement per call (no multi-statement strings); a
 * transaction's `executeBatch` sends several such statements in one round trip.
 * Integers come back as JS numbers (epoch milliseconds fit in 2^53); BLOBs as Uint8Array.
 */

export type SqlDialect = 'sqlite' | 'mysql';

/** Values that bind the same way on both dialects. Booleans bind as 1 / 0. */
export type SqlValue = string | number | bigint | boolean | null | Uint8Array;

export interface ExecuteResult {
  /** Rows inserted, deleted, or matched by an UPDATE's WHERE (same meaning on both dialects). */
  readonly changes: number;
  /** Auto-increment id of the last inserted row, when the statement inserted one. */
  readonly lastInsertId?: number;
  /**
   * MySQL only: the rows of a multi-row INSERT ... ON DUPLICATE KEY UPDATE that met a row already
   * there, when above 0 (the server's "Duplicates: N"; mysql2 asks for found rows, so `changes` counts them as
   * 1 each, inserted or not). A one-row INSERT has no such count: it inserted iff lastInsertId is
   * set. SQLite's ON CONFLICT DO NOTHING leaves the skipped rows out of `changes` instead.
   */
  readonly duplicates?: number;
}

/** Statements inside or outside a transaction. */
export interface SqlExecutor {
  readonly dialect: SqlDialect;
  query<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  execute(sql: string, params?: readonly SqlValue[]): Promise<ExecuteResult>;
}

/** One statement of a batch: a single statement's text (no `;`) and its parameters. */
export interface SqlStatement {
  readonly sql: string;
  readonly params?: readonly SqlValue[];
  /** A statement that answers rows (SELECT); they come back in its BatchResult's `rows`. */
  readonly returnsRows?: boolean;
}

/** A batched statement's outcome: `changes` and `lastInsertId` as execute() answers them, `rows` as query() does (empty for a write). */
export interface BatchResult extends ExecuteResult {
  readonly rows: ReadonlyArray<Record<string, unknown>>;
}

/** The executor a transaction's function gets. */
export interface SqlTransaction extends SqlExecutor {
  /**
   * Runs the statements in order, in this transaction, and answers each one's outcome. On MySQL
   * they travel as one multi-statement query: one round trip instead of one per statement (issue
   * 17: a command's four transitions and their audit drains cost about 50 round trips when
   * nothing batches them, each about 90 us of CPU and a network wait). The first that fails
   * stops the batch (the ones after it do not run) and its error is thrown, as execute() would
   * throw it; the caller's transaction then rolls back as usual. A text holding `;` is refused
   * (STORE_INVALID_ARGUMENT): values are bound, never part of the text, so only our own
   * statement texts reach the server, one statement each.
   */
  executeBatch(statements: readonly SqlStatement[], options?: BatchOptions): Promise<BatchResult[]>;
}

export interface BatchOptions {
  /**
   * Commits the transaction after the batch's last statement, in the same round trip (issue 17:
   * a COMMIT was a round trip of its own per transaction). The transaction ends there: the
   * executor refuses any later use and `transaction()` sends no COMMIT; make it the function's
   * last step. When a statement fails nothing commits: its error is thrown and the transaction
   * rolls back as usual. Only for a batch whose outcome cannot call for a rollback (one without
   * a compare-and-set to check, or whose later statements are guarded on it).
   */
  readonly commit?: boolean;
}

export interface SqlDatabase extends SqlExecutor {
  /**
   * Runs `fn` in one transaction: committed when `fn` resolves, rolled back when it throws
   * (the error is rethrown). Use only `tx` inside `fn`; there are no nested transactions.
   */
  transaction<T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
