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
  /**
   * Each text's statement and when it was last used (a count of gets). Recency is this stamp, not
   * the Map's order: moving a hit to the end (delete, then set again) cost more than the lookup
   * itself, at every statement the database runs (issue 17: 0.7 % of a 10,000-agent simulator
   * start-up, about 120,000 gets); eviction, which only a new text past the bound needs, looks
   * for the oldest stamp instead.
   */
  readonly #statements = new Map<string, { readonly statement: Statement; usedAt: number }>();
  #gets = 0;

  constructor(private readonly database: Database, readonly statementsMax = sqlJsStatementsMax) {}

  get size(): number {
    return this.#statements.size;
  }

  /** The statement for `sql`, compiled on first use; throws sql.js's error for bad SQL (the caller maps it). */
  get(sql: string): Statement {
    this.#gets += 1;
    const cached = this.#statements.get(sql);
    if (cached !== undefined) {
      cached.usedAt = this.#gets;
      return cached.statement;
    }
    const statement = this.database.prepare(sql);
    this.#statements.set(sql, { statement, usedAt: this.#gets });
    if (this.#statements.size > this.statementsMax) this.#evictOldest();
    return statement;
  }

  /** Frees every statement (before the database closes). */
  clear(): void {
    for (const { statement } of this.#statements.values()) statement.free();
    this.#statements.clear();
  }

  /** Frees the least recently used statement: at most statementsMax entries to look through, once per new text past the bound. */
  #evictOldest(): void {
    let oldest: string | undefined;
    let oldestAt = Infinity;
    for (const [sql, { usedAt }] of this.#statements) {
      if (usedAt < oldestAt) {
        oldest = sql;
        oldestAt = usedAt;
      }
    }
    if (oldest === undefined) return;
    this.#statements.get(oldest)?.statement.free();
    this.#statements.delete(oldest);
  }
}
