import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { SqlExecutor, SqlValue } from '../stores/sql/sql-port.js';
import { CommandFinishedWrites, commandFinishedBatchMax } from './command-finished-writes.js';
import { makeHarness, storePairs, type StorePair } from './test-support.js';

/** The database, with the UPDATE statements it was given counted. */
function counting(db: SqlExecutor): { db: SqlExecutor; updates: () => number } {
  let updates = 0;
  return {
    db: {
      dialect: db.dialect,
      query: (sql: string, params?: readonly SqlValue[]) => db.query(sql, params),
      execute: (sql: string, params?: readonly SqlValue[]) => {
        if (/^\s*UPDATE devices/.test(sql)) updates += 1;
        return db.execute(sql, params);
      },
    } as SqlExecutor,
    updates: () => updates,
  };
}

function suite(pair: StorePair): void {
  describe(`command results' device writes, batched (issue 17), on ${pair.name}`, () => {
    it('results arriving while a write is in flight go in one statement; each value only moves up', async () => {
      const h = await makeHarness(pair.sql);
      try {
        const devices = Array.from({ length: 5 }, (_, i) => `cfw-${i}`);
        for (const id of devices) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', 0)", [id]);
        await h.db.execute('UPDATE devices SET last_command_seq = 9, last_seen_at = 900 WHERE id = ?', ['cfw-4']);
        const { db, updates } = counting(h.db);
        const writes = new CommandFinishedWrites(db);
        // The first starts a write at once; the others arrive while it is in flight (same turn).
        await Promise.all([
          writes.record({ deviceId: 'cfw-0', deviceSeq: 1, atMs: 100 }),
          writes.record({ deviceId: 'cfw-1', deviceSeq: 2, atMs: 200 }),
          writes.record({ deviceId: 'cfw-2', deviceSeq: 3, atMs: 300 }),
          writes.record({ deviceId: 'cfw-2', deviceSeq: 2, atMs: 350 }), // out of order: seq stays 3, seen moves to 350
          writes.record({ deviceId: 'cfw-3', deviceSeq: 4, atMs: 400 }),
          writes.record({ deviceId: 'cfw-4', deviceSeq: 5, atMs: 500 }), // below what the row holds: nothing moves down
        ]);
        // One statement for the first, one for the five behind it: was six.
        assert.equal(updates(), 2);
        const rows = await h.db.query<{ id: string; last_command_seq: number | null; last_seen_at: number | null }>(
          'SELECT id, last_command_seq, last_seen_at FROM devices WHERE id LIKE ? ORDER BY id', ['cfw-%']);
        assert.deepEqual(rows.map((row) => [row.id, Number(row.last_command_seq), Number(row.last_seen_at)]), [
          ['cfw-0', 1, 100], ['cfw-1', 2, 200], ['cfw-2', 3, 350], ['cfw-3', 4, 400], ['cfw-4', 9, 900],
        ]);
      } finally {
        await h.close();
      }
    });

    it(`a backlog is written ${commandFinishedBatchMax} devices per statement, and a failed statement fails only its own callers`, async () => {
      const h = await makeHarness(pair.sql);
      try {
        const devices = Array.from({ length: commandFinishedBatchMax * 2 + 1 }, (_, i) => `cfb-${String(i).padStart(3, '0')}`);
        for (const id of devices) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', 0)", [id]);
        const { db, updates } = counting(h.db);
        let failNext = false;
        const failing = { ...db, execute: (sql: string, params?: readonly SqlValue[]) => {
          if (failNext) {
            failNext = false;
            return Promise.reject(new Error('store down'));
          }
          return db.execute(sql, params);
        } } as SqlExecutor;
        const writes = new CommandFinishedWrites(failing);
        const first = writes.record({ deviceId: devices[0]!, deviceSeq: 1, atMs: 1 });
        const rest = devices.slice(1).map((deviceId) => writes.record({ deviceId, deviceSeq: 7, atMs: 70 }));
        await first;
        await Promise.all(rest);
        assert.equal(updates(), 3); // 1, then 64, then 64
        failNext = true;
        await assert.rejects(writes.record({ deviceId: devices[0]!, deviceSeq: 2, atMs: 2 }), /store down/);
        await writes.record({ deviceId: devices[0]!, deviceSeq: 3, atMs: 3 });
        const [row] = await h.db.query<{ last_command_seq: number }>('SELECT last_command_seq FROM devices WHERE id = ?', [devices[0]!]);
        assert.equal(Number(row!.last_command_seq), 3);
      } finally {
        await h.close();
      }
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('command results\' device writes on mysql + redis', { skip: skipped }, () => {});
