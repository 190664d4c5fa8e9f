// A measurement, not a test (not named *.test.ts, so npm test skips it): the CPU per row of the
// control plane's telemetry INSERTs on a sql.js database whose pages are in a file of sql.js's
// file system (MEMFS, `new SQL.Database()`) against one in SQLite's memory (openSqlJs), in
// alternating rounds in one process, so both see the same machine. Each round starts an empty
// database with the telemetry table and its index and inserts ROWS rows, ROWS_PER_INSERT per
// statement, as autocommits (the telemetry writer's shape), with the adapter's pragmas. Figures in
// docs/decisions/0011-sqljs-database-in-sqlite-memory.md and docs/benchmarks.md (`sdc bench
// ingest`, 2026-12-05 morning).
// Run: ROWS=150000 ROWS_PER_INSERT=85 ROUNDS=2 nice -n 10 npx tsx server/stores/sql/sqljs-in-memory.measure.ts
import initSqlJs, { type Database } from 'sql.js';
import { openSqlJs } from './sqljs-in-memory.js';

const rows = Number(process.env['ROWS'] ?? 150_000);
const rowsPerInsert = Number(process.env['ROWS_PER_INSERT'] ?? 85);
const rounds = Number(process.env['ROUNDS'] ?? 2);

const SQL = await initSqlJs();
const metricsJson = JSON.stringify({ cpu_pct: 12.5, mem_pct: 40.25, disk_pct: 71, net_rx_bytes_per_sec: 123_456, net_tx_bytes_per_sec: 65_432, process_count: 312 });

function measure(database: Database): { cpuUsPerRow: number; wallUsPerRow: number } {
  // As the adapter opens it (sqljs-recovery.ts): no rollback journal file, the lock kept.
  database.run('PRAGMA journal_mode = MEMORY');
  database.run('PRAGMA locking_mode = EXCLUSIVE');
  database.run('CREATE TABLE telemetry (id INTEGER PRIMARY KEY AUTOINCREMENT, device_id VARCHAR(64) NOT NULL, ts BIGINT NOT NULL, metrics_json TEXT NOT NULL, risk_score DOUBLE NULL)');
  database.run('CREATE INDEX telemetry_device_ts ON telemetry (device_id, ts)');
  const insert = database.prepare(`INSERT INTO telemetry (device_id, ts, metrics_json, risk_score) VALUES ${Array.from({ length: rowsPerInsert }, () => '(?, ?, ?, ?)').join(', ')}`);
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  for (let first = 0; first + rowsPerInsert <= rows; first += rowsPerInsert) {
    const params: Array<string | number> = [];
    for (let i = first; i < first + rowsPerInsert; i += 1) params.push(`dev-${i % 200}`, 1_700_000_000_000 + i, metricsJson, 0.25);
    insert.run(params);
  }
  const cpu = process.cpuUsage(cpuBefore);
  const wallMs = performance.now() - wallBefore;
  insert.free();
  const stored = Math.floor(rows / rowsPerInsert) * rowsPerInsert;
  return { cpuUsPerRow: (cpu.user + cpu.system) / stored, wallUsPerRow: (wallMs * 1000) / stored };
}

for (let round = 1; round <= rounds; round += 1) {
  for (const where of round % 2 === 1 ? ['file', 'memory'] as const : ['memory', 'file'] as const) {
    const opened = where === 'file' ? { database: new SQL.Database(), inMemory: false } : openSqlJs(SQL, undefined, () => undefined);
    if (where === 'memory' && !opened.inMemory) throw new Error('this sql.js did not open an in-memory database');
    const { cpuUsPerRow, wallUsPerRow } = measure(opened.database);
    opened.database.close();
    process.stdout.write(`round ${round} ${where.padEnd(6)} ${rowsPerInsert} rows per INSERT: ${cpuUsPerRow.toFixed(2)} us CPU per row, ${wallUsPerRow.toFixed(2)} us wall\n`);
  }
}
