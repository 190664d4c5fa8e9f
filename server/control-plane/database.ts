import { join } from 'node:path';
import type { Clock } from '../../core/ports/ports.js';
import { controlPlaneMigrations } from '../stores/sql/control-plane-migrations.js';
import { controlPlaneMigration002 } from '../stores/sql/control-plane-migrations-002.js';
import { controlPlaneMigration003 } from '../stores/sql/control-plane-migrations-003.js';
import { controlPlaneMigration004 } from '../stores/sql/control-plane-migrations-004.js';
import { controlPlaneMigration005 } from '../stores/sql/control-plane-migrations-005.js';
import { controlPlaneMigration006 } from '../stores/sql/control-plane-migrations-006.js';
import { controlPlaneMigration007 } from '../stores/sql/control-plane-migrations-007.js';
import { controlPlaneMigration008 } from '../stores/sql/control-plane-migrations-008.js';
import { controlPlaneMigration009 } from '../stores/sql/control-plane-migrations-009.js';
import { controlPlaneMigration010 } from '../stores/sql/control-plane-migrations-010.js';
import { controlPlaneMigration011 } from '../stores/sql/control-plane-migrations-011.js';
import { controlPlaneMigration014 } from '../stores/sql/control-plane-migrations-014.js';
import { controlPlaneMigration016 } from '../stores/sql/control-plane-migrations-016.js';
import { controlPlaneMigration012 } from '../stores/sql/control-plane-migrations-012.js';
import { controlPlaneMigration013 } from '../stores/sql/control-plane-migrations-013.js';
import { controlPlaneMigration017 } from '../stores/sql/control-plane-migrations-017.js';
import { controlPlaneMigration018 } from '../stores/sql/control-plane-migrations-018.js';
import { controlPlaneMigration019 } from '../stores/sql/control-plane-migrations-019.js';
import { controlPlaneMigration020 } from '../stores/sql/control-plane-migrations-020.js';
import { controlPlaneMigration021 } from '../stores/sql/control-plane-migrations-021.js';
import { controlPlaneMigration022 } from '../stores/sql/control-plane-migrations-022.js';
import { controlPlaneMigration023 } from '../stores/sql/control-plane-migrations-023.js';
import { controlPlaneMigration024 } from '../stores/sql/control-plane-migrations-024.js';
import { controlPlaneMigration025 } from '../stores/sql/control-plane-migrations-025.js';
import { controlPlaneMigration026 } from '../stores/sql/control-plane-migrations-026.js';
import { controlPlaneMigration027 } from '../stores/sql/control-plane-migrations-027.js';
import { controlPlaneMigration028 } from '../stores/sql/control-plane-migrations-028.js';
import { controlPlaneMigration015 } from '../stores/sql/control-plane-migrations-015.js';
import { migrate, type Migration } from '../stores/sql/migrate.js';
import { createMysqlDatabase } from '../stores/sql/mysql-database.js';
import { openSqlJsDatabase } from '../stores/sql/sqljs-database.js';
import type { SqlDatabase } from '../stores/sql/sql-port.js';

/** Every migration the control plane runs, in order. */
export const controlPlaneAllMigrations: readonly Migration[] = [...controlPlaneMigrations, controlPlaneMigration002, controlPlaneMigration003, controlPlaneMigration004, controlPlaneMigration005, controlPlaneMigration006, controlPlaneMigration007, controlPlaneMigration008, controlPlaneMigration009, controlPlaneMigration010, controlPlaneMigration011, controlPlaneMigration014, controlPlaneMigration012, controlPlaneMigration013, controlPlaneMigration015, controlPlaneMigration016, controlPlaneMigration017, controlPlaneMigration018, controlPlaneMigration019, controlPlaneMigration020, controlPlaneMigration021, controlPlaneMigration022, controlPlaneMigration023, controlPlaneMigration024, controlPlaneMigration025, controlPlaneMigration026, controlPlaneMigration027, controlPlaneMigration028];

/** Brings the schema up to date; safe to call from every process at start. */
export async function migrateControlPlane(db: SqlDatabase, clock: Clock): Promise<string[]> {
  return migrate(db, controlPlaneAllMigrations, { clock });
}

/** The control plane's database: MySQL when a URL is given, otherwise the embedded file D/db/sdc.sqlite. Migrated. */
export async function openControlPlaneDatabase(options: { dataDir: string; mysqlUrl?: string; clock: Clock }): Promise<SqlDatabase> {
  const db = options.mysqlUrl !== undefined
    ? await createMysqlDatabase({ url: options.mysqlUrl })
    : await openSqlJsDatabase({ dataDir: join(options.dataDir, 'db'), fileName: 'sdc.sqlite' });
  try {
    await migrateControlPlane(db, options.clock);
  } catch (error) {
    await db.close();
    throw error;
  }
  return db;
}
