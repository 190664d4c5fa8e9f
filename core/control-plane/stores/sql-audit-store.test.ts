import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SdcError } from '../../errors/index.js';
import { AuditLog, type AuditEntry, type AuditStore } from '../../protocol/audit-chain.js';
import { systemClock } from '../../runtime/system.js';
import type { SqlDatabase } from '../../stores/sql/sql-port.js';
import { migrateControlPlane } from '../database.js';
import { mysqlTarget, sqlJsTarget, type SqlTarget } from '../test-support.js';
import { SqlAuditStore } from './sql-audit-store.js';

const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());

/** The store as another process would use it, counting the seq races it lost. */
function countingStore(store: SqlAuditStore, options: { atomic: boolean }): AuditStore & { conflicts: number } {
  const counted = <T>(write: () => Promise<T>) => write().catch((error: unknown) => {
    if (SdcError.is(error, 'AUDIT_CONFLICT')) wrapper.conflicts += 1;
    throw error;
  });
  const wrapper: AuditStore & { conflicts: number } = {
    conflicts: 0,
    head: () => store.head(),
    scan: (fromSeq, limit) => store.scan(fromSeq, limit),
    append: (entry) => counted(() => store.append(entry)),
    ...(options.atomic ? { appendAtHead: (next: (head: AuditEntry | undefined) => AuditEntry) => counted(() => store.appendAtHead(next)) } : {}),
  };
  return wrapper;
}

function suite(target: SqlTarget): void {
  describe(`SqlAuditStore on ${target.name}`, () => {
    const dirs: string[] = [];
    after(async () => {
      await target.cleanup();
      await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
    });
    const open = async (): Promise<SqlDatabase> => {
      const dir = await mkdtemp(join(tmpdir(), 'sdc-audit-store-'));
      dirs.push(dir);
      const db = await target.open(dir);
      await migrateControlPlane(db, systemClock);
      await db.execute('DELETE FROM audit_log');
      return db;
    };

    it('two logs on one database (two control planes) append concurrently without losing a seq race, and the chain verifies', async () => {
      const db = await open();
      const store = new SqlAuditStore(db);
      const writers = [countingStore(store, { atomic: true }), countingStore(store, { atomic: true })];
      const logs = writers.map((w) => new AuditLog({ store: w, sha256, clock: systemClock }));
      const perLog = 30;
      await Promise.all(logs.flatMap((log, l) => Array.from({ length: perLog }, (_, i) =>
        log.append({ kind: 'test.append', actor: `writer:${l}`, subject: `n:${i}`, payload: { i } }))));
      assert.deepEqual(writers.map((w) => w.conflicts), [0, 0], 'writers queue on the lock instead of conflicting');
      const verdict = await logs[0]!.verify();
      assert.ok(verdict.ok && verdict.count === 2 * perLog, JSON.stringify(verdict));
      await db.close();
    });

    it('without the atomic append the same load loses seq races (what the lock prevents), and the retry still keeps the chain whole', async () => {
      const db = await open();
      const store = new SqlAuditStore(db);
      const writers = [countingStore(store, { atomic: false }), countingStore(store, { atomic: false })];
      const logs = writers.map((w) => new AuditLog({ store: w, sha256, clock: systemClock }));
      const perLog = 30;
      const results = await Promise.allSettled(logs.flatMap((log, l) => Array.from({ length: perLog }, (_, i) =>
        log.append({ kind: 'test.append', actor: `writer:${l}`, subject: `n:${i}`, payload: { i } }))));
      assert.ok(writers[0]!.conflicts + writers[1]!.conflicts > 0, 'the head-then-insert path races between writers');
      const stored = results.filter((r) => r.status === 'fulfilled').length;
      const verdict = await logs[0]!.verify();
      assert.ok(verdict.ok && verdict.count === stored, JSON.stringify(verdict));
      await db.close();
    });
  });
}

suite(sqlJsTarget);
const mysqlUrl = process.env['MYSQL_URL'];
if (mysqlUrl !== undefined && mysqlUrl !== '') suite(mysqlTarget(mysqlUrl));
else describe('SqlAuditStore on mysql', { skip: 'MYSQL_URL is not set; the same suite runs on sql.js above' }, () => {});
