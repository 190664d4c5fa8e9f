// A create whose COMMIT's outcome was lost with its connection (STORE_COMMIT_UNKNOWN, MySQL: see
// server/stores/sql/mysql-commit-unknown.test.ts) is resolved by reading its row back: stored, it
// is answered as created and dispatched once; not stored, it is refused STORE_UNAVAILABLE (safe to
// retry); unreadable, it stays STORE_COMMIT_UNKNOWN with the command's id. A group of creates whose
// COMMIT's outcome was lost is not run again member by member (that re-insert found the ids taken
// and answered an error for commands that were stored and ran: a chaos run's MySQL cut showed 5
// kernel calls for 4 accepted commands). sql.js commits in process, so the fault is injected by
// a wrapper: the transaction commits (or rolls back) and then reports the lost connection.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';
import { kvKeys } from '../bus-contract/streams.js';
import type { SqlDatabase, SqlTransaction } from '../stores/sql/sql-port.js';
import { makeHarness, sqlJsTarget, type Harness, type SqlTarget } from './test-support.js';

type Fault = 'committed' | 'rolled_back' | 'committed_then_unreadable';

/** sql.js whose next transaction(s) end as `fault` says, then throw STORE_COMMIT_UNKNOWN. */
function commitLosingTarget(): { target: SqlTarget; arm: (fault: Fault) => void } {
  let armed: Fault | undefined;
  let unreadable = false;
  const lost = () => new SdcError('STORE_COMMIT_UNKNOWN', 'the connection was lost with the COMMIT in flight (injected)', {}, { cause: new SdcError('STORE_UNAVAILABLE', 'injected') });
  return {
    arm: (fault) => { armed = fault; },
    target: {
      ...sqlJsTarget,
      open: async (dataDir) => {
        const db = await sqlJsTarget.open(dataDir);
        const transaction = async <T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T> => {
          if (unreadable) {
            unreadable = false;
            throw new SdcError('STORE_UNAVAILABLE', 'the store is still away (injected)');
          }
          const fault = armed;
          armed = undefined;
          if (fault === undefined) return db.transaction(fn);
          if (fault === 'rolled_back') {
            // Lost before the server ran the COMMIT: a committing batch runs its statements, then the transaction rolls back.
            const losing = (tx: SqlTransaction): SqlTransaction => ({
              ...tx,
              query: (sql, params) => tx.query(sql, params),
              execute: (sql, params) => tx.execute(sql, params),
              executeBatch: async (batch, options) => {
                if (options?.commit !== true) return tx.executeBatch(batch, options);
                await tx.executeBatch(batch);
                throw lost();
              },
            });
            return db.transaction((tx) => fn(losing(tx)));
          }
          await db.transaction(fn);
          if (fault === 'committed_then_unreadable') unreadable = true;
          throw lost();
        };
        return new Proxy(db, {
          get(target, property, receiver) {
            if (property === 'transaction') return transaction;
            const value = Reflect.get(target, property, receiver) as unknown;
            return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
          },
        }) as SqlDatabase;
      },
    },
  };
}

describe('a create whose COMMIT outcome was lost (STORE_COMMIT_UNKNOWN) is resolved by reading it back', () => {
  let h: Harness;
  const faults = commitLosingTarget();
  const actor = { name: 'op', role: 'operator' as const };
  const devices = [`ccu-${randomBytes(3).toString('hex')}-a`, `ccu-${randomBytes(3).toString('hex')}-b`];
  const gatewayId = 'gw-ccu';

  before(async () => {
    h = await makeHarness(faults.target);
    for (const id of devices) {
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [id, h.clock.nowMs()]);
      await h.cp.context.kv.set(kvKeys.presence(id), JSON.stringify({ gateway_id: gatewayId }));
    }
  });
  after(async () => {
    await h.close();
  });

  const create = (deviceId: string) => h.cp.commands.create({ actor, deviceId, opcode: 'EXEC_PING_KERNEL', args: {}, ttlMs: 60_000 });
  const rowsOf = async (deviceId: string) => h.db.query<{ id: string; gateway_id: string | null }>('SELECT id, gateway_id FROM commands WHERE device_id = ? ORDER BY device_seq', [deviceId]);
  const finish = async (deviceId: string) => {
    for (const row of await rowsOf(deviceId)) await h.cp.commands.transition(row.id, 'time_out', h.clock.nowMs());
  };

  it('committed: answered as created, stored once, dispatched to its gateway, its audit entry recorded once', async () => {
    const [device] = devices;
    faults.arm('committed');
    const { command } = await create(device!);
    const rows = await rowsOf(device!);
    assert.deepEqual(rows.map((row) => row.id), [command.id]);
    assert.equal(rows[0]!.gateway_id, gatewayId, 'dispatched after the read-back');
    await h.cp.context.settleAudit();
    const entries = (await h.cp.auditStore.scan(1, 10_000)).filter((entry) => entry.subject === `command:${command.id}`);
    assert.deepEqual(entries.map((entry) => entry.kind), ['command.created']);
    await finish(device!);
  });

  it('not committed: refused STORE_UNAVAILABLE naming the command, nothing stored', async () => {
    const [device] = devices;
    const before = (await rowsOf(device!)).length;
    faults.arm('rolled_back');
    await assert.rejects(create(device!), (error: unknown) => SdcError.is(error, 'STORE_UNAVAILABLE') && typeof error.details['commandId'] === 'string');
    assert.equal((await rowsOf(device!)).length, before);
  });

  it('the read-back fails too: refused STORE_COMMIT_UNKNOWN with the command\'s id, which the store answers once it is back', async () => {
    const [device] = devices;
    faults.arm('committed_then_unreadable');
    let commandId: unknown;
    await assert.rejects(create(device!), (error: unknown) => {
      commandId = SdcError.is(error, 'STORE_COMMIT_UNKNOWN') ? error.details['commandId'] : undefined;
      return typeof commandId === 'string';
    });
    const command = await h.cp.commands.get(commandId as string);
    assert.equal(command?.id, commandId, 'it was stored');
    await finish(device!);
  });

  it('a group of creates whose COMMIT outcome was lost: each answered as created, none inserted a second time', async () => {
    faults.arm('committed');
    // Asked in the same turn: one group (CommandRepository.create's group commit).
    const answers = await Promise.allSettled(devices.map((id) => create(id)));
    assert.deepEqual(answers.map((answer) => answer.status), ['fulfilled', 'fulfilled'], JSON.stringify(answers.map((a) => (a.status === 'rejected' ? String(a.reason) : 'ok'))));
    for (const [index, id] of devices.entries()) {
      const rows = await rowsOf(id);
      const { command } = (answers[index] as PromiseFulfilledResult<Awaited<ReturnType<typeof create>>>).value;
      assert.deepEqual(rows.filter((row) => row.id === command.id).length, 1);
      await finish(id);
    }
  });
});
