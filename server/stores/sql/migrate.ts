import { SdcError } from '../../../core/errors/index.js';
import type { Clock } from '../../../core/ports/ports.js';
import type { SqlDatabase, SqlDialect, SqlExecutor } from './sql-port.js';

/**
 * A statement that runs again on every run of an unfinished migration, recorded or not: for an
 * idempotent data step (a backfill) that a later DDL step of the same migration relies on. A plain
 * step recorded before a cut is skipped on resume, so rows written between it and the next run
 * (an older replica still writing during a rolling upgrade) would never be seen by it, and a later
 * step that needs them fixed (a NOT NULL column) would fail on every start. Never recorded.
 */
export interface RerunStatement { readonly sql: string; readonly rerunOnResume: true }
export type MigrationStatement = string | RerunStatement;

/** The SQL text of a statement. */
export function statementSql(statement: MigrationStatement): string {
  return typeof statement === 'string' ? statement : statement.sql;
}

/**
 * One schema change, applied once and recorded in `schema_migrations`. Statements run in order,
 * one per string. Give `sql` when the text is valid on both dialects, or `sqlite` and `mysql`.
 * Published migrations are never edited; a change is a new migration.
 */
export type Migration =
  | { readonly id: string; readonly sql: readonly MigrationStatement[] }
  | { readonly id: string; readonly sqlite: readonly MigrationStatement[]; readonly mysql: readonly MigrationStatement[] };

export interface MigrateOptions {
  /** Stamps `applied_at`; defaults to the system clock. */
  readonly clock?: Clock;
}

const migrationIdPattern = /^[A-Za-z0-9_.-]{1,191}$/;
/** Serialises concurrent migrators on one MySQL server (SQLite is one connection already). */
const mysqlLockName = 'sdc_schema_migrations';
const mysqlLockWaitSeconds = 60;

function statementsFor(migration: Migration, dialect: SqlDialect): readonly MigrationStatement[] {
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

async function recordedSteps(tx: SqlExecutor, id: string): Promise<Set<number>> {
  const rows = await tx.query<{ step: number }>(`SELECT step FROM ${mysqlStepsTable} WHERE migration_id = ?`, [id]);
  return new Set(rows.map((row) => Number(row.step)));
}

async function isApplied(tx: SqlExecutor, id: string): Promise<boolean> {
  const rows = await tx.query<{ id: string }>('SELECT id FROM schema_migrations WHERE id = ?', [id]);
  return rows.length > 0;
}

/**
 * MySQL driver codes of a statement whose object is there already (or gone already, for a drop):
 * what re-running a DDL statement that was applied before a cut answers.
 */
const alreadyAppliedCodes = new Set([
  'ER_TABLE_EXISTS_ERROR', 'ER_DUP_FIELDNAME', 'ER_DUP_KEYNAME', 'ER_FK_DUP_NAME', 'ER_DUP_ENTRY', 'ER_CANT_DROP_FIELD_OR_KEY', 'ER_BAD_TABLE_ERROR',
]);

function driverCodeOf(error: unknown): string | undefined {
  for (let cause = error, depth = 0; cause !== undefined && cause !== null && depth < 8; depth++) {
    const code = (cause as { details?: { driverCode?: unknown }; code?: unknown }).details?.driverCode ?? (cause as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('ER_')) return code;
    cause = (cause as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * The steps of unfinished MySQL migrations (issue 11, a migration cut between two of its DDL
 * statements): MySQL commits each DDL statement at once, so a connection lost part-way leaves the
 * earlier statements applied and the migration unrecorded. Each applied statement is recorded here
 * (the next DDL statement's implicit commit, or the migration's own commit, makes the record
 * durable), and the next run goes on from the first unrecorded one.
 */
const mysqlStepsTable = 'schema_migration_steps';

/**
 * Applies the migrations not yet recorded, in list order; returns the ids applied by this call.
 * Each migration runs in one transaction. On SQLite that makes it all-or-nothing. MySQL commits
 * DDL implicitly, so there a migration cut part-way (connection lost, process killed) has its
 * earlier statements applied: each applied statement is recorded in schema_migration_steps and the
 * next run resumes after the last recorded one. The first unrecorded statement may have been
 * applied just before the cut, with its record lost; if it then fails because its object is there
 * already (or gone, for a drop), it counts as applied. Any other failure stops as before.
 * A statement marked `rerunOnResume` runs on every run, recorded or not, and is not recorded.
 */
export async function migrate(db: SqlDatabase, migrations: readonly Migration[], options: MigrateOptions = {}): Promise<string[]> {
  validate(migrations);
  const clock = options.clock ?? { nowMs: () => Date.now() };
  await db.execute('CREATE TABLE IF NOT EXISTS schema_migrations (id VARCHAR(191) NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)');
  if (db.dialect === 'mysql') {
    await db.execute(`CREATE TABLE IF NOT EXISTS ${mysqlStepsTable} (migration_id VARCHAR(191) NOT NULL, step INT NOT NULL, applied_at BIGINT NOT NULL, PRIMARY KEY (migration_id, step))`);
  }
  const applied: string[] = [];
  for (const migration of migrations) {
    const appliedNow = await db.transaction(async (tx) => {
      if (db.dialect === 'mysql') {
        const [lock] = await tx.query<{ got: number | null }>('SELECT GET_LOCK(?, ?) AS got', [mysqlLockName, mysqlLockWaitSeconds]);
        if (lock?.got !== 1) throw new SdcError('STORE_CONFLICT', 'another process holds the migration lock');
      }
      try {
        if (await isApplied(tx, migration.id)) return false;
        const steps = db.dialect === 'mysql' ? await recordedSteps(tx, migration.id) : new Set<number>();
        const resumed = steps.size > 0;
        let firstUnrecorded = true;
        for (const [step, statement] of statementsFor(migration, db.dialect).entries()) {
          const rerun = typeof statement !== 'string' && statement.rerunOnResume;
          if (steps.has(step) && !rerun) continue;
          try {
            await tx.execute(statementSql(statement));
          } catch (error) {
            // Applied just before a cut whose record was lost (a resumed migration, or its first statement).
            const code = driverCodeOf(error);
            const appliedBefore = db.dialect === 'mysql' && !rerun && firstUnrecorded && code !== undefined && alreadyAppliedCodes.has(code);
            if (!appliedBefore) {
              throw new SdcError('STORE_MIGRATION_FAILED', `migration ${migration.id} failed: ${(error as Error).message}`,
                { migration: migration.id, ...(resumed ? { resumedAfterStep: Math.max(...steps) } : {}) }, { cause: error });
            }
          }
          // A rerun step is not a DDL step whose record could be lost: the next one is still the first unrecorded.
          if (rerun) continue;
          firstUnrecorded = false;
          if (db.dialect === 'mysql') await tx.execute(`INSERT INTO ${mysqlStepsTable} (migration_id, step, applied_at) VALUES (?, ?, ?)`, [migration.id, step, clock.nowMs()]);
        }
        await tx.execute('INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)', [migration.id, clock.nowMs()]);
        if (db.dialect === 'mysql') await tx.execute(`DELETE FROM ${mysqlStepsTable} WHERE migration_id = ?`, [migration.id]);
        return true;
      } finally {
        if (db.dialect === 'mysql') await tx.query('SELECT RELEASE_LOCK(?) AS released', [mysqlLockName]);
      }
    });
    if (appliedNow) applied.push(migration.id);
  }
  return applied;
}
