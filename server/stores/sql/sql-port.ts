/**
 * The SQL port: the few operations the control plane needs, identical on the embedded
 * (sql.js / SQLite) and the real (mysql2 / MySQL 8, MariaDB 10.11) adapter.
 * Placeholders are `?` on both. One statement per call (no multi-statement strings).
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
}

/** Statements inside or outside a transaction. */
export interface SqlExecutor {
  readonly dialect: SqlDialect;
  query<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  execute(sql: string, params?: readonly SqlValue[]): Promise<ExecuteResult>;
}

export interface SqlDatabase extends SqlExecutor {
  /**
   * Runs `fn` in one transaction: committed when `fn` resolves, rolled back when it throws
   * (the error is rethrown). Use only `tx` inside `fn`; there are no nested transactions.
   */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
