import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { streamNames } from '../bus-contract/streams.js';
import { SdcError } from '../../core/errors/index.js';
import type { SqlDatabase } from '../stores/sql/sql-port.js';
import { makeHarness, mysqlTarget, progressEntry, sqlJsTarget, type Harness, type SqlTarget } from './test-support.js';

/**
 * Issue 18.5: a device's events are applied in stream order even when the SQL store fails under
 * one of them. Before, the failed entry was left pending for a claim while the device's later
 * entries went on, so a redelivery's `deliver` landed before the earlier ACK and the ACK then
 * moved the command's history back in time.
 */

/** The database, except that the next `failures.left` query/execute/transaction calls fail as in an outage. */
function failingNextCalls(db: SqlDatabase, failures: { left: number }): SqlDatabase {
  const guard = () => {
    if (failures.left <= 0) return;
    failures.left -= 1;
    throw new SdcError('STORE_UNAVAILABLE', 'SQL is unavailable (test)');
  };
  return {
    dialect: db.dialect,
    async query(sql, params) { guard(); return db.query(sql, params); },
    async execute(sql, params) { guard(); return db.execute(sql, params); },
    async transaction(fn) { guard(); return db.transaction(fn); },
    close: () => db.close(),
  } as SqlDatabase;
}

function suite(target: SqlTarget): void {
  describe(`event order across an SQL failure on ${target.name}`, () => {
    const failures = { left: 0 };
    let h: Harness;

    before(async () => {
      h = await makeHarness({ ...target, open: async (dir) => failingNextCalls(await target.open(dir), failures) });
    });
    after(async () => {
      await h.close();
      await target.cleanup();
    });

    it('applies a device\'s ACK whose handling failed before the later deliver report of a redelivery', async () => {
      const seed = new Uint8Array(randomBytes(32));
      await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', ?, ?)",
        ['dev-order', h.clock.nowMs(), base64urlFromBytes(createNodeEd25519Provider().publicKeyFromSeed(seed))]);
      const { command } = await h.cp.commands.create({ actor: { name: 'op', role: 'operator' }, deviceId: 'dev-order', opcode: 'EXEC_PING_KERNEL', args: {} });
      const t0 = command.created_at_ms;
      const progress = (event: 'deliver' | 'ack', attempt: number, at: number) => progressEntry({ command, event, attempt, atMs: at, seed });
      await h.bus.append(streamNames.events, progress('deliver', 1, t0 + 1));
      await h.cp.eventsConsumer.drain();
      failures.left = 1; // the ACK's first SQL call fails
      await h.bus.append(streamNames.events, progress('ack', 1, t0 + 2));
      await h.bus.append(streamNames.events, progress('deliver', 1, t0 + 10)); // what the redelivery sweep's re-dispatch brings
      // The consumer's retry pause is an unref'd real timer: hold the test process open meanwhile.
      const keepAlive = setInterval(() => undefined, 1_000);
      try {
        await h.cp.eventsConsumer.drain();
      } finally {
        clearInterval(keepAlive);
      }
      assert.equal(failures.left, 0, 'the failure was hit');
      // A claim of idle pending entries, as the running consumer makes: nothing is left for it.
      h.clock.advance(60_000);
      await h.cp.eventsConsumer.claimIdle(0);
      const detail = await h.cp.commands.get(command.id);
      assert.deepEqual(detail.history.map((e) => [e.state, e.at_ms - t0]), [['queued', 0], ['sent', 1], ['ack_received', 2]],
        'the ACK applied where it happened; the later deliver is illegal after it and ignored');
      assert.equal(detail.state, 'ack_received');
      assert.deepEqual(await h.bus.pending(streamNames.events, 'control-plane'), []);
    });
  });
}

suite(sqlJsTarget);
const mysqlUrl = process.env.MYSQL_URL;
if (mysqlUrl !== undefined) suite(mysqlTarget(mysqlUrl));
