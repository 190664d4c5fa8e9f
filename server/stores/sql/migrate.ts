import { SdcError } from '../../../core/errors/index.js';
import type { Clock } from '../../../core/ports/ports.js';
import type { SqlDatabase, SqlDialect, SqlExecutor } from './sql-port.js';

/**
 * One schema change, applied once and recorded in `schema_migrations`. Statements run in order,
 * one per string. Give `sql` when the text is valid on both dialects, or `sqlite` and `mysql`.
 * Published migrations are never edited; a change is a new migration.
 */
export type Migration =
  | { readonly id: string; readonly sql: readonly string[] }
  | { readonly id: string; readonly sqlite: readonly string[]; readonly mysql: readonly string[] };

export interface MigrateOptions {
  /** Stamps `applied_at`; defaults to the system clock. */
  readonly clock?: Clock;
}

const migrationIdPattern = /^[A-Za-z0-9_.-]{1,191}$/;
/** Serialises concurrent migrators on one MySQL server (SQLite is one connection already). */
const mysqlLockName = 'sdc_schema_migrations';
const mysqlLockWaitSeconds = 60;

function statementsFor(migration: Migration, dialect: SqlDialect): readonly string[] {
  return 'sql' in migration ? migration.sql : migration[dialect];
}

function validate(migrations: readonly Migration[]): void {
  const seen = new Set<string>();
  for (const migration of migrations) {
    if (!migrationIdPattern.test(migration.id)) throw new SdcError('STORE_MIGRATION_FAILED', `invalid migration id ${JSON.stringify(migration.id)}`);
    if (seen.has(migration.id)) throw new SdcError('STORE_MIGRATION_FAILED', `migration ${migration.id} is listed twice`);
    seen.add(migration.id);
  }
}

async function isApplied(tx: SqlExecutor, id: string): Promise<boolean> {
  const rows = await tx.query<{ id: string }>('SELECT id FROM schema_migrations WHERE id = ?', [id]);
  return rows.length > 0;
}

/**
 * Applies the migrations not yet recorded, in list order; returns the ids applied by this call.
 * Each migration runs in one transaction. On SQLite that makes it all-or-nothing; MySQL commits
 * DDL implicitly, so there a failing multi-statement migration can leave its earlier statements
 * applied (keep MySQL migrations to statements that are safe to inspect and repair by hand).
 */
export async function migrate(db: SqlDatabase, migrations: readonly Migration[], options: MigrateOptions = {}): Promise<string[]> {
  validate(migrations);
  const clock = options.clock ?? { nowMs: () => Date.now() };
  await db.execute('CREATE TABLE IF NOT EXISTS schema_migrations (id VARCHAR(191) NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)');
  const applied: string[] = [];
  for (const migration of migrations) {
    const appliedNow = await db.transaction(async (tx) => {
      if (db.dialect === 'mysql') {
        const [lock] = await tx.query<{ got: number | null }>('SELECT GET_LOCK(?, ?) AS got', [mysqlLockName, mysqlLockWaitSeconds]);
        if (lock?.got !== 1) throw new SdcError('STORE_CONFLICT', 'another process holds the migration lock');
      }
      try {
        if (await isApplied(tx, migration.id)) return false;
        for (const statement of statementsFor(migration, db.dialect)) {
          try {
            await tx.execute(statement);
          } catch (error) {
            throw new SdcError('STORE_MIGRATION_FAILED', `migration ${migration.id} failed: ${(error as Error).message}`,
              { migration: migration.id }, { cause: error });
          }
        }
        await tx.execute('INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)', [migration.id, clock.nowMs()]);
        return true;
      } finally {
        if (db.dialect === 'mysql') await tx.query('SELECT RELEASE_LOCK(?) AS released', [mysqlLockName]);
      }
    });
    if (appliedNow) applied.push(migration.id);
  }
  return applied;
}
