// A measurement, not a test (not named *.test.ts, so npm test skips it): what an every-commit
// sql.js database writes to disk and spends in CPU per commit, with a database of a given size
// and many concurrent writers (group commits). It uses only openSqlJsDatabase's public calls, so
// the same file runs on a commit before the journal (whole-database saves) and after it. Bytes
// come from /proc/self/io (write_bytes: what reached the block layer; wchar: what write() calls
// carried), so both commits are counted the same way. Figures in docs/benchmarks.md ("sdc bench
// roundtrip", 2026-12-03, the embedded SQL store's journal) and
// docs/decisions/0009-sqljs-append-only-journal.md.
// Each writer commits one after another (an awaited commit at a time); commits of different
// writers share group commits. The figures cover the measured commits only (after the preload),
// snapshots included when the journal reaches its bound during them.
// Run: DB_MB=20 WRITERS=64 COMMITS=4000 nice -n 10 npx tsx server/stores/sql/sqljs-journal.measure.ts
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqlJsDatabase } from './sqljs-database.js';

const databaseMb = Number(process.env['DB_MB'] ?? 20);
const writers = Number(process.env['WRITERS'] ?? 64);
const commitsTotal = Number(process.env['COMMITS'] ?? 4_000);
/** About a telemetry sample's size in the control plane's rows. */
const rowBodyBytes = 400;

interface IoCounters { readonly writeBytes: number; readonly wchar: number }

async function ioCounters(): Promise<IoCounters> {
  const text = await readFile('/proc/self/io', 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { writeBytes: field('write_bytes'), wchar: field('wchar') };
}

function body(seed: number): string {
  return `${seed.toString(36)}:`.padEnd(rowBodyBytes, 'x');
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-journal-measure-'));
  try {
    let db = await openSqlJsDatabase({ dataDir });
    await db.execute('CREATE TABLE samples (id INTEGER PRIMARY KEY AUTOINCREMENT, device_id VARCHAR(64) NOT NULL, at_ms BIGINT NOT NULL, body TEXT NOT NULL)');
    await db.execute('CREATE TABLE counters (name VARCHAR(64) NOT NULL PRIMARY KEY, value BIGINT NOT NULL)');
    // Preload in a few large transactions, so the database has the size a long-lived control plane has.
    const preloadRows = Math.ceil((databaseMb * 1024 * 1024) / (rowBodyBytes + 60));
    for (let start = 0; start < preloadRows; start += 5_000) {
      await db.transaction(async (tx) => {
        for (let i = start; i < Math.min(preloadRows, start + 5_000); i++) {
          await tx.execute('INSERT INTO samples (device_id, at_ms, body) VALUES (?, ?, ?)', [`d${i % 1000}`, i, body(i)]);
        }
      });
    }
    // Reopened, so the measured commits start from a database file that holds everything (no journal yet).
    await db.close();
    db = await openSqlJsDatabase({ dataDir });
    const ioBefore = await ioCounters();
    const cpuBefore = process.cpuUsage();
    const wallStartMs = performance.now();
    let next = 0;
    // Half autocommit INSERTs, half transactions of an INSERT and a counter upsert (the shapes the control plane sends).
    await Promise.all(Array.from({ length: writers }, async (_, writer) => {
      while (next < commitsTotal) {
        const n = next++;
        if (n % 2 === 0) {
          await db.execute('INSERT INTO samples (device_id, at_ms, body) VALUES (?, ?, ?)', [`d${writer}`, n, body(n)]);
        } else {
          await db.transaction(async (tx) => {
            await tx.execute('INSERT INTO samples (device_id, at_ms, body) VALUES (?, ?, ?)', [`d${writer}`, n, body(n)]);
            await tx.execute('INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1', [`w${writer}`]);
          });
        }
      }
    }));
    const wallMs = performance.now() - wallStartMs;
    const cpu = process.cpuUsage(cpuBefore);
    const ioAfter = await ioCounters();
    const stats = db.saveStats() as unknown as Record<string, number>;
    const closeStartMs = performance.now();
    await db.close();
    const closeMs = performance.now() - closeStartMs;
    const reopenStartMs = performance.now();
    const reopened = await openSqlJsDatabase({ dataDir });
    const reopenMs = performance.now() - reopenStartMs;
    const [count] = await reopened.query<{ n: number }>('SELECT COUNT(*) AS n FROM samples');
    await reopened.close();
    const commits = commitsTotal;
    console.log(JSON.stringify({
      database_mb: databaseMb, writers, commits, rows_after: count?.n,
      wall_ms: Math.round(wallMs),
      cpu_us_per_commit: Math.round((cpu.user + cpu.system) / commits),
      write_bytes_per_commit: Math.round((ioAfter.writeBytes - ioBefore.writeBytes) / commits),
      wchar_bytes_per_commit: Math.round((ioAfter.wchar - ioBefore.wchar) / commits),
      save_stats: stats,
      close_ms: Math.round(closeMs), reopen_ms: Math.round(reopenMs),
      load_average: (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' '),
    }));
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
