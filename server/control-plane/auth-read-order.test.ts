import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { SqlDatabase, SqlValue } from '../stores/sql/sql-port.js';
import { CommandRepository } from './command-repository.js';
import { sqlDeviceTags } from './policy-bundles.js';
import { makeHarness, sqlJsTarget, storePairs, type Harness, type StorePair } from './test-support.js';

/**
 * Two reads every AUTH makes (issue 17): the device's unfinished commands (the presence's
 * redelivery) and its tags (the policy bundle). On SQLite both are read without ORDER BY and put
 * in order in JavaScript, which in sql.js costs a third of the ordered statement (2026-12-06 late
 * morning (h14) in docs/benchmarks.md). These cases pin the answers on both stores: the same rows
 * in the same order as the ordered statements give, including past the limits and for tags the
 * API would not store.
 */
function suite(pair: StorePair): void {
  describe(`AUTH's commands and tags reads in order on ${pair.name}`, () => {
    let h: Harness;
    const device = 'dev-order';
    const nowMs = 1_000_000;

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }) });
      for (const id of [device, 'dev-other']) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', 0)", [id]);
      const insert = (id: string, deviceId: string, seq: number, state: string, expiresAtMs: number) => h.db.execute(
        `INSERT INTO commands (id, device_id, opcode, args_json, state, created_by, idempotency_key, device_seq, signed_json, expires_at, created_at, updated_at)
         VALUES (?, ?, 'EXEC_PING_KERNEL', '{}', ?, 'op', NULL, ?, '{}', ?, 0, 0)`, [id, deviceId, state, seq, expiresAtMs]);
      // Inserted out of seq order, so the table's own order is not the answer.
      for (const [seq, state] of [[5, 'sent'], [2, 'queued'], [9, 'executing'], [1, 'ack_received'], [7, 'queued']] as const) {
        await insert(`c-${seq}`, device, seq, state, nowMs + 60_000);
      }
      await insert('c-3-done', device, 3, 'succeeded', nowMs + 60_000);
      await insert('c-4-expired', device, 4, 'queued', nowMs);
      await insert('c-other', 'dev-other', 6, 'queued', nowMs + 60_000);
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    const idsOf = async (limit: number) => (await new CommandRepository({ db: h.db, audit: h.cp.context.audit }).unfinishedOf(device, nowMs, limit)).map((command) => command.id);

    it('unfinished commands: unexpired, deliverable, in device_seq order; a limit below their number keeps the lowest seqs', async () => {
      assert.deepEqual(await idsOf(1_000), ['c-1', 'c-2', 'c-5', 'c-7', 'c-9']);
      assert.deepEqual(await idsOf(5), ['c-1', 'c-2', 'c-5', 'c-7', 'c-9']);
      assert.deepEqual(await idsOf(3), ['c-1', 'c-2', 'c-5']);
      assert.deepEqual(await idsOf(0), []);
    });

    it('tags in byte order (as the ordered statement on either store), also for tags the API refuses, and at most 256', async () => {
      const tagsOf = sqlDeviceTags(h.db);
      const add = async (deviceId: string, tags: readonly string[]) => {
        for (const tag of tags) await h.db.execute('INSERT INTO device_tags (device_id, tag) VALUES (?, ?)', [deviceId, tag]);
      };
      assert.deepEqual(await tagsOf(device), []);
      await add(device, ['zeta', 'group:lab', 'b.1', 'alpha', 'b-2', 'B']);
      assert.deepEqual(await tagsOf(device), ['B', 'alpha', 'b-2', 'b.1', 'group:lab', 'zeta']);
      // Past ASCII, JavaScript's code-unit order and UTF-8 byte order differ (U+FF01 against an astral code point).
      await add(device, ['\u{1F600}', '\uFF01', 'é']);
      assert.deepEqual(await tagsOf(device), ['B', 'alpha', 'b-2', 'b.1', 'group:lab', 'zeta', 'é', '\uFF01', '\u{1F600}']);
      const many = Array.from({ length: 300 }, (_, index) => `t-${String(299 - index).padStart(3, '0')}`);
      await add('dev-other', many);
      assert.deepEqual(await tagsOf('dev-other'), [...many].sort().slice(0, 256));
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('AUTH\'s commands and tags reads on mysql + redis', { skip: skipped }, () => undefined);

describe('on sql.js the AUTH\'s commands and tags reads carry no ORDER BY (issue 17)', () => {
  it('one statement each, unordered, when the rows fit their limit', async () => {
    const h = await makeHarness(sqlJsTarget);
    try {
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES ('d-1', 'enrolled', 0)");
      await h.db.execute("INSERT INTO device_tags (device_id, tag) VALUES ('d-1', 'site-b'), ('d-1', 'site-a')");
      const statements: string[] = [];
      const db = h.db;
      const recording = Object.assign(Object.create(db) as SqlDatabase, {
        query: <T>(sql: string, params?: readonly SqlValue[]) => {
          statements.push(sql);
          return db.query<T>(sql, params);
        },
      });
      assert.deepEqual(await new CommandRepository({ db: recording, audit: h.cp.context.audit }).unfinishedOf('d-1', 0, 1_000), []);
      assert.deepEqual(await sqlDeviceTags(recording)('d-1'), ['site-a', 'site-b']);
      assert.equal(statements.length, 2);
      assert.deepEqual(statements.filter((sql) => /ORDER BY/i.test(sql)), []);
    } finally {
      await h.close();
    }
  });
});
