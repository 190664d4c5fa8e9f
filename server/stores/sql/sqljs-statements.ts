import type { Database, Statement } from 'sql.js';

/**
 * Prepared statements of one sql.js database, kept by SQL text. Compiling a statement costs
 * about as much as running it, and the control plane runs the same few dozen texts over and over
 * (telemetry inserts, command transitions), so each is compiled once. Bounded, least recently
 * used first out, because some texts are built per call (`IN (?, ?, ...)` lists, bulk inserts).
 * A statement is reset after every use, so none holds a read open across calls (the export's
 * backup and COMMIT need none running).
 */
export const sqlJsStatementsMax = 256;

export class SqlJsStatementCache {
  readonly #statements = new Map<string, Statement>();

  constructor(private readonly database: Database, readonly statementsMax = sqlJsStatementsMax) {}

  get size(): number {
    return this.#statements.size;
  }

  /** The statement for `sql`, compiled on first use; throws sql.js's error for bad SQL (the caller maps it). */
  get(sql: string): Statement {
    let statement = this.#statements.get(sql);
    if (statement !== undefined) {
      // Map order is insertion order: re-inserting marks it most recently used.
      this.#statements.delete(sql);
      this.#statements.set(sql, statement);
      return statement;
    }
    statement = this.database.prepare(sql);
    this.#statements.set(sql, statement);
    if (this.#statements.size > this.statementsMax) this.#evictOldest();
    return statement;
  }

  /** Frees every statement (before the database closes). */
  clear(): void {
    for (const statement of this.#statements.values()) statement.free();
    this.#statements.clear();
  }

  #evictOldest(): void {
    const oldest = this.#statements.keys().next();
    if (oldest.done === true) return;
    this.#statements.get(oldest.value)?.free();
    this.#statements.delete(oldest.value);
  }
}
