import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createNodeEd25519Provider } from '../../../runtime/ed25519-node.js';
import { createMysqlDatabase } from '../../stores/sql/mysql-database.js';
import type { SqlDatabase } from '../../stores/sql/sql-port.js';
import { migrateControlPlane } from '../database.js';
import { makeHarness, mysqlTarget, sqlJsTarget, type Harness, type SqlTarget } from '../test-support.js';
import { nextCounterValue } from './counters.js';

const provider = createNodeEd25519Provider();
/** Concurrent transactions: enough that, on MySQL, first uses of neighbouring new names overlap. */
const concurrentFirstUses = 48;

function suite(newTarget: () => SqlTarget, open: (target: SqlTarget, dir: string) => Promise<SqlDatabase>): void {
  const target = newTarget();
  describe(`counters on ${target.name}: many concurrent first uses`, () => {
    let dir: string;
    let db: SqlDatabase;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'sdc-counters-'));
      db = await open(target, dir);
      await migrateControlPlane(db, { nowMs: () => Date.now() });
    });
    after(async () => {
      await db.close();
      await target.cleanup();
      await rm(dir, { recursive: true, force: true });
    });

    it('new names, each used by several transactions at once: every value once, none refused', async () => {
      const tag = randomBytes(4).toString('hex');
      const names = Array.from({ length: concurrentFirstUses / 3 }, (_, i) => `device_seq:new-${tag}-${String(i).padStart(3, '0')}`);
      const values = await Promise.all(Array.from({ length: concurrentFirstUses }, (_, i) =>
        db.transaction((tx) => nextCounterValue(tx, names[i % names.length]!)).then((value) => [names[i % names.length]!, value] as const)));
      for (const name of names) {
        const got = values.filter(([n]) => n === name).map(([, v]) => v).sort((a, b) => a - b);
        assert.deepEqual(got, [1, 2, 3], name);
      }
    });
  });

  const commandsTarget = newTarget();
  describe(`first commands to new devices on ${commandsTarget.name}`, () => {
    let h: Harness;
    before(async () => {
      h = await makeHarness(commandsTarget);
    });
    after(async () => {
      await h.close();
      await commandsTarget.cleanup();
    });

    it('two concurrent first commands to each of many new devices all get a device_seq, 1 and 2', async () => {
      const seed = new Uint8Array(randomBytes(32));
      const devices = Array.from({ length: concurrentFirstUses / 2 }, (_, i) => `dev-first-${String(i).padStart(3, '0')}`);
      for (const id of devices) {
        await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', ?, ?)",
          [id, h.clock.nowMs(), Buffer.from(provider.publicKeyFromSeed(seed)).toString('base64url')]);
      }
      const actor = { name: 'op', role: 'operator' as const };
      const created = await Promise.all([...devices, ...devices].map((deviceId) =>
        h.cp.commands.create({ actor, deviceId, opcode: 'EXEC_PING_KERNEL', args: {} }).then(({ command }) => command)));
      for (const id of devices) {
        assert.deepEqual(created.filter((c) => c.device_id === id).map((c) => c.device_seq).sort(), [1, 2], id);
      }
    });
  });
}

suite(() => sqlJsTarget, (target, dir) => target.open(dir));
const mysqlUrl = process.env.MYSQL_URL;
if (mysqlUrl !== undefined) {
  /**
   * A pool as wide as the concurrency, so the transactions overlap on the server, and one attempt
   * per transaction: the adapter's deadlock retries would hide a deadlock the counter causes (the
   * update-then-insert deadlocked about half of such first uses; four attempts hid most of it).
   */
  const noRetryTarget = (): SqlTarget => {
    const base = mysqlTarget(mysqlUrl) as SqlTarget & { url: string };
    return {
      name: 'mysql', cleanup: () => base.cleanup(),
      async open(dir) {
        await (await base.open(dir)).close();
        return createMysqlDatabase({ url: base.url, connectionLimit: 16, deadlockAttemptsMax: 1 });
      },
    };
  };
  suite(noRetryTarget, (target, dir) => target.open(dir));
}
