import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../../core/errors/index.js';
import type { AuditLog } from '../../core/protocol/audit-chain.js';
import { decideCreate, decideTransition } from '../../core/protocol/command-decisions.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import type { SqlExecutor } from '../stores/sql/sql-port.js';
import { kvKeys } from '../bus-contract/streams.js';
import { CommandRepository, recordOf } from './command-repository.js';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

/**
 * The CommandRepository (issue 8): rows read back are validated, so a damaged row is a typed
 * STORE_CORRUPT naming the row and field, never a value cast to a type it does not have; one
 * damaged row does not stop the sweeps for the others; the effects of one decision (state,
 * history, audit outbox row) commit together or not at all; a lost compare-and-set writes nothing.
 */
function suite(pair: StorePair): void {
  describe(`command repository on ${pair.name}`, () => {
    let h: Harness;
    const actor = { name: 'op', role: 'operator' as const };
    const device = 'dev-repo';

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }) });
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [device, h.clock.nowMs()]);
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    const create = async (ttlMs = 60_000) => (await h.cp.commands.create({ actor, deviceId: device, opcode: 'EXEC_PING_KERNEL', args: {}, ttlMs })).command;
    const damage = (id: string, column: string, value: string) => h.db.execute(`UPDATE commands SET ${column} = ? WHERE id = ?`, [value, id]);
    const rejectsCorrupt = async (promise: Promise<unknown>, field: RegExp) => {
      await assert.rejects(promise, (error) => SdcError.is(error, 'STORE_CORRUPT') && field.test(error.message));
    };
    // Recorded (outbox) or already chained: the periodic drain may move an entry between the two meanwhile.
    const audited = async (id: string) => (await countOf('SELECT id FROM audit_outbox WHERE subject = ?', [`command:${id}`]))
      + (await countOf('SELECT seq FROM audit_log WHERE subject = ?', [`command:${id}`]));
    const countOf = async (sql: string, params: readonly string[]) => (await h.db.query(sql, params)).length;

    it('a row whose state is not a command state is STORE_CORRUPT on get, list and transition, and an event for it is refused, not applied', async () => {
      const command = await create();
      await damage(command.id, 'state', 'bogus');
      await rejectsCorrupt(h.cp.commands.get(command.id), /commands row c_\w+ \/state/);
      await rejectsCorrupt(h.cp.commands.list({ deviceId: device }), /\/state/);
      await rejectsCorrupt(h.cp.commands.transition(command.id, 'deliver', h.clock.nowMs()), /\/state/);
      assert.equal(await countOf('SELECT id FROM command_events WHERE command_id = ?', [command.id]), 1, 'only the create entry');
      await damage(command.id, 'state', 'timed_out');
    });

    it('JSON columns that do not hold what they should are STORE_CORRUPT, each naming its column', async () => {
      const command = await create();
      await damage(command.id, 'args_json', '[1, 2]');
      await rejectsCorrupt(h.cp.commands.get(command.id), /args_json is not a JSON object/);
      await damage(command.id, 'args_json', '{}');
      await damage(command.id, 'result_json', 'not json');
      await rejectsCorrupt(h.cp.commands.get(command.id), /result_json is not JSON/);
      await damage(command.id, 'result_json', '{}');
      await damage(command.id, 'signed_json', JSON.stringify({ id: command.id }));
      await rejectsCorrupt(h.cp.commands.get(command.id), /signed_json/);
      await h.cp.commands.transition(command.id, 'time_out', h.clock.nowMs());
    });

    it('a command is dispatched while its audit drain runs, not after it (issue 17: the drain was three round trips on every command\'s path to its device)', async () => {
      const gatewayId = 'gw-drain-held';
      await h.cp.context.kv.set(kvKeys.presence(device), JSON.stringify({ gateway_id: gatewayId }));
      const context = h.cp.context as { settleAudit: () => Promise<void> };
      const settleAudit = context.settleAudit;
      let release: () => void = () => undefined;
      const held = new Promise<void>((resolve) => { release = resolve; });
      let drainsAsked = 0;
      let drainAsked: () => void = () => undefined;
      const asked = new Promise<void>((resolve) => { drainAsked = resolve; });
      context.settleAudit = async () => { drainsAsked += 1; drainAsked(); await held; await settleAudit(); };
      const created = h.cp.commands.create({ actor, deviceId: device, opcode: 'EXEC_PING_KERNEL', args: {}, ttlMs: 60_000 });
      try {
        // The create committed and asked for its drain, which is held from here on.
        await asked;
        // Bounded by looks, not by time: each look is a query and a turn of the event loop (the embedded stores answer
        // without one); without the change the held drain holds the dispatch for good.
        let dispatched: Array<{ id: string }> = [];
        for (let look = 0; look < 100_000 && dispatched.length === 0; look += 1) {
          await new Promise((resolve) => setImmediate(resolve));
          dispatched = await h.db.query<{ id: string }>('SELECT id FROM commands WHERE device_id = ? AND gateway_id = ?', [device, gatewayId]);
        }
        assert.equal(dispatched.length, 1, 'appended to its gateway and recorded while the drain is held');
        assert.equal(drainsAsked, 1);
        release();
        const { command } = await created;
        assert.equal(command.id, dispatched[0]!.id);
        // The create still answers after its drain: the chain holds its entry.
        const [chained] = await h.db.query<{ n: number }>('SELECT COUNT(*) AS n FROM audit_log WHERE subject = ?', [`command:${command.id}`]);
        assert.equal(Number(chained?.n), 1);
      } finally {
        release();
        context.settleAudit = settleAudit;
        // Finished also when an assertion failed, so the device's later tests find no command of this one.
        await h.cp.commands.transition((await created).command.id, 'time_out', h.clock.nowMs());
        await h.cp.context.kv.del(kvKeys.presence(device));
      }
    });

    it('a damaged signed command costs only itself: redelivery and the redispatch sweep send the device\'s other commands', async () => {
      const broken = await create();
      const intact = await create();
      await damage(broken.id, 'signed_json', '{');
      await h.cp.context.kv.set(kvKeys.presence(device), JSON.stringify({ gateway_id: 'gw1' }));
      assert.equal(await h.cp.commands.redeliver(device, 'gw1'), 1, 'the intact command is redelivered');
      h.clock.advance(60_000 - 1);
      // The broken one is due and fails; the device's later command waits behind it this sweep (order), the sweep itself does not throw.
      assert.equal(await h.cp.commands.redispatchDue(), 0);
      // Past both TTLs: the sweep ends both; the damaged signed_json does not stop the expiry.
      h.clock.advance(2);
      assert.equal(await h.cp.commands.expireDue(), 2);
      assert.equal((await h.cp.commands.get(intact.id)).state, 'timed_out');
      const [row] = await h.db.query<{ state: string }>('SELECT state FROM commands WHERE id = ?', [broken.id]);
      assert.equal(row?.state, 'expired', 'never appended to a gateway stream: expired');
      await h.cp.context.kv.del(kvKeys.presence(device));
    });

    it('the state change, its history entry and its audit outbox row commit together: an outbox failure leaves none of them', async () => {
      const command = await create();
      const down = async () => { throw new SdcError('STORE_UNAVAILABLE', 'outbox down'); };
      const failingAudit = { record: down, recordMany: down } as unknown as AuditLog<SqlExecutor>;
      const repository = new CommandRepository({ db: h.db, audit: failingAudit });
      const row = await repository.byId(command.id);
      const decision = decideTransition(row === undefined ? undefined : recordOf(row), { event: 'deliver', atMs: h.clock.nowMs(), actor: 'gateway:gw1' });
      assert.ok(decision.applied);
      const auditedBefore = await audited(command.id);
      await assert.rejects(repository.apply(decision.effects.transaction), (error) => SdcError.is(error, 'STORE_UNAVAILABLE'));
      assert.equal((await h.cp.commands.get(command.id)).state, 'queued');
      assert.equal(await audited(command.id), auditedBefore);
      assert.equal(await countOf('SELECT id FROM command_events WHERE command_id = ?', [command.id]), 1);
      // The real audit log: the same effects now commit, with their outbox row.
      assert.equal(await new CommandRepository({ db: h.db, audit: h.cp.context.audit }).apply(decision.effects.transaction), true);
      assert.equal((await h.cp.commands.get(command.id)).state, 'sent');
      assert.equal(await countOf('SELECT id FROM command_events WHERE command_id = ?', [command.id]), 2);
      await h.cp.commands.transition(command.id, 'time_out', h.clock.nowMs());
    });

    it('a lost compare-and-set (the state moved since it was read) answers false and writes nothing', async () => {
      const command = await create();
      const repository = new CommandRepository({ db: h.db, audit: h.cp.context.audit });
      const stale = await repository.byId(command.id);
      assert.ok(stale !== undefined);
      await h.cp.commands.transition(command.id, 'deliver', h.clock.nowMs());
      const decision = decideTransition(recordOf(stale), { event: 'dead_letter', atMs: h.clock.nowMs(), actor: 'gateway:gw1' });
      assert.ok(decision.applied);
      const auditedBefore = await audited(command.id);
      assert.equal(await repository.apply(decision.effects.transaction), false);
      assert.equal((await h.cp.commands.get(command.id)).state, 'sent');
      assert.equal(await countOf('SELECT id FROM command_events WHERE command_id = ?', [command.id]), 2);
      assert.equal(await audited(command.id), auditedBefore);
      await h.cp.commands.transition(command.id, 'time_out', h.clock.nowMs());
    });

    it('a transition handed a stale row (ownerOf before another event moved the command) decides again on the stored state', async () => {
      const command = await create();
      const owner = await h.cp.commands.ownerOf(command.id);
      assert.ok(owner !== undefined);
      assert.equal(owner.row.state, 'queued');
      await h.cp.commands.transition(command.id, 'deliver', h.clock.nowMs());
      await h.cp.commands.transition(command.id, 'ack', h.clock.nowMs());
      const eventsBefore = await countOf('SELECT id FROM command_events WHERE command_id = ?', [command.id]);
      // On the stale row, deliver would move queued -> sent; the compare-and-set on the state loses, the retry reads ack_received.
      const outcome = await h.cp.commands.transition(command.id, 'deliver', h.clock.nowMs(), { current: owner.row });
      assert.equal((await h.cp.commands.get(command.id)).state, 'ack_received');
      if (outcome.applied) assert.equal(outcome.from, 'ack_received', 'decided on the stored state, not the stale row');
      else assert.equal(outcome.state, 'ack_received');
      if (!outcome.applied) assert.equal(await countOf('SELECT id FROM command_events WHERE command_id = ?', [command.id]), eventsBefore);
      await h.cp.commands.transition(command.id, 'time_out', h.clock.nowMs());
    });

    // Group commit (issue 17): transitions applied while others commit share one transaction.
    const countingTransactions = () => {
      // Round trips as the adapter makes them: a statement alone is one, a batch of them one (its statements all counted).
      const counter = { transactions: 0, statements: 0, roundTrips: 0, committingBatches: 0 };
      const db = new Proxy(h.db, {
        get(target, property, receiver) {
          if (property === 'transaction') {
            return (fn: Parameters<typeof target.transaction>[0]) => {
              counter.transactions += 1;
              return target.transaction((tx) => fn({
                dialect: tx.dialect,
                query: (sql, params) => { counter.statements += 1; counter.roundTrips += 1; return tx.query(sql, params); },
                execute: (sql, params) => { counter.statements += 1; counter.roundTrips += 1; return tx.execute(sql, params); },
                executeBatch: (statements, options) => {
                  counter.statements += statements.length;
                  counter.roundTrips += 1;
                  if (options?.commit === true) counter.committingBatches += 1;
                  return tx.executeBatch(statements, options);
                },
              }));
            };
          }
          const value = Reflect.get(target, property, receiver) as unknown;
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
      return { db, counter };
    };
    const deliverDecision = async (repository: CommandRepository, id: string) => {
      const row = await repository.byId(id);
      const decision = decideTransition(row === undefined ? undefined : recordOf(row), { event: 'deliver', atMs: h.clock.nowMs(), actor: 'gateway:gw1' });
      assert.ok(decision.applied);
      return decision.effects.transaction;
    };

    it('transitions applied together commit in one transaction; a member whose compare-and-set lost writes nothing and answers false', async () => {
      const [a, b, c] = [await create(), await create(), await create()];
      const { db, counter } = countingTransactions();
      const repository = new CommandRepository({ db, audit: h.cp.context.audit });
      const effects = [await deliverDecision(repository, a.id), await deliverDecision(repository, b.id), await deliverDecision(repository, c.id)];
      // The same decision on a twice: the second compare-and-set finds `sent`, not `queued`.
      const auditedBefore = await audited(a.id);
      const outcomes = await Promise.all([...effects, effects[0]!].map((member) => repository.apply(member)));
      assert.deepEqual(outcomes, [true, true, true, false]);
      assert.equal(counter.transactions, 1, 'one transaction for the group');
      for (const command of [a, b, c]) {
        assert.equal((await h.cp.commands.get(command.id)).state, 'sent');
        assert.equal(await countOf('SELECT id FROM command_events WHERE command_id = ?', [command.id]), 2, 'create and deliver, once each');
      }
      assert.equal(await audited(a.id), auditedBefore + 1, 'one audit record for a: the loser recorded none');
      // The group's records chain in the group's order, and the chain verifies.
      await h.cp.context.audit.drainRecorded();
      const chained = await h.db.query<{ subject: string; kind: string }>(
        'SELECT subject, kind FROM audit_log WHERE subject IN (?, ?, ?) AND kind = ? ORDER BY seq ASC', [`command:${a.id}`, `command:${b.id}`, `command:${c.id}`, 'command.state']);
      assert.deepEqual(chained.map((row) => row.subject), [a, b, c].map((command) => `command:${command.id}`));
      assert.equal((await h.cp.context.audit.verify()).ok, true);
      // Alone: its own transaction.
      assert.equal(await repository.apply(effects[1]!, { alone: true }), false);
      assert.equal(counter.transactions, 2);
      for (const command of [a, b, c]) await h.cp.commands.transition(command.id, 'time_out', h.clock.nowMs());
    });

    it('a group of different commands whose compare-and-sets all hold is one UPDATE (no read), one history INSERT and one outbox INSERT', async () => {
      const [a, b, c] = [await create(), await create(), await create()];
      const { db, counter } = countingTransactions();
      const statements: string[] = [];
      const recording = new Proxy(db, {
        get(target, property, receiver) {
          if (property === 'transaction') {
            return (fn: Parameters<typeof target.transaction>[0]) => target.transaction((tx) => fn({
              dialect: tx.dialect,
              query: (sql, params) => { statements.push(sql); return tx.query(sql, params); },
              execute: (sql, params) => { statements.push(sql); return tx.execute(sql, params); },
              executeBatch: (batch) => { statements.push(...batch.map((statement) => statement.sql)); return tx.executeBatch(batch); },
            }));
          }
          const value = Reflect.get(target, property, receiver) as unknown;
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
      const repository = new CommandRepository({ db: recording, audit: h.cp.context.audit });
      const effects = [await deliverDecision(repository, a.id), await deliverDecision(repository, b.id)];
      // c was never dispatched: `expire` holds only for such a command, and it is checked in the same UPDATE.
      const cRow = await repository.byId(c.id);
      const expire = decideTransition(cRow === undefined ? undefined : recordOf(cRow), { event: 'expire', atMs: h.clock.nowMs(), actor: 'system' });
      assert.ok(expire.applied);
      const before = { ...counter };
      const outcomes = await Promise.all([...effects, expire.effects.transaction].map((member) => repository.apply(member)));
      assert.deepEqual(outcomes, [true, true, true]);
      assert.equal(counter.transactions - before.transactions, 1);
      // Was four: a locking read of the group's rows first (issue 17). One round trip: the three in one batch.
      assert.equal(counter.statements - before.statements, 3);
      assert.equal(counter.roundTrips - before.roundTrips, 1);
      assert.deepEqual(statements.map((sql) => sql.trim().split(/\s+/).slice(0, 3).join(' ')), ['UPDATE commands SET', 'INSERT INTO command_events', 'INSERT INTO audit_outbox']);
      for (const command of [a, b]) {
        const stored = await h.cp.commands.get(command.id);
        assert.equal(stored.state, 'sent');
        assert.equal(stored.attempts, 1, 'deliver counts an attempt');
        assert.deepEqual(stored.history.map((entry) => entry.state), ['queued', 'sent']);
      }
      assert.deepEqual((await h.cp.commands.get(c.id)).history.map((entry) => entry.state), ['queued', 'expired']);
      for (const command of [a, b]) await h.cp.commands.transition(command.id, 'time_out', h.clock.nowMs());
    });

    it('a group of creates commits with its INSERTs: the device seqs, then one batch that carries the COMMIT (issue 17; the COMMIT was a round trip of its own)', async () => {
      const { db, counter } = countingTransactions();
      const repository = new CommandRepository({ db, audit: h.cp.context.audit });
      const ids = ['c_group_create_1', 'c_group_create_2', 'c_group_create_3'];
      const build = (id: string) => (deviceSeq: number) => decideCreate({
        row: {
          // Only stored here: the columns a create writes (the signature is not checked by the repository).
          command: { id, device_id: device, opcode: 'EXEC_PING_KERNEL', args: {}, issued_at: h.clock.nowMs(), expires_at: h.clock.nowMs() + 60_000, device_seq: deviceSeq, issuer: 'test', sig: { alg: 'Ed25519', kid: 'k', value: 'AA' } } as unknown as SignedCommand,
          createdBy: actor.name, idempotencyKey: null, argsJson: '{}',
        },
        auditActor: 'user:op', policyRecord: {},
      });
      const before = { ...counter };
      const decided = await Promise.all(ids.map((id) => repository.create(device, build(id))));
      assert.equal(counter.transactions - before.transactions, 1, 'one transaction for the group');
      assert.equal(counter.committingBatches - before.committingBatches, 1, 'its last batch carries the COMMIT');
      // The seqs in arrival order, each stored with its history row and audit record.
      const seqs = decided.map((one) => (one.transaction[0] as { row: { command: { device_seq: number } } }).row.command.device_seq);
      assert.deepEqual(seqs, [seqs[0]!, seqs[0]! + 1, seqs[0]! + 2]);
      for (const id of ids) {
        assert.equal(await countOf('SELECT id FROM command_events WHERE command_id = ?', [id]), 1);
        assert.equal(await audited(id), 1);
        await h.db.execute("UPDATE commands SET state = 'timed_out' WHERE id = ?", [id]);
      }
    });

    it('a transition alone is one round trip with its COMMIT: its compare-and-set, history row and outbox row in one batch (issue 17; were four)', async () => {
      const command = await create();
      const { db, counter } = countingTransactions();
      const repository = new CommandRepository({ db, audit: h.cp.context.audit });
      const deliver = await deliverDecision(repository, command.id);
      const before = { ...counter };
      assert.equal(await repository.apply(deliver), true);
      // And its COMMIT in the same round trip: the history and outbox rows are guarded on the compare-and-set instead of a rollback.
      assert.deepEqual([counter.transactions - before.transactions, counter.statements - before.statements, counter.roundTrips - before.roundTrips, counter.committingBatches - before.committingBatches], [1, 3, 1, 1]);
      assert.equal((await h.cp.commands.get(command.id)).state, 'sent');
      // Lost: the same decision again finds `sent`; the batch's rows are rolled back with it, and it answers false.
      const auditedBefore = await audited(command.id);
      assert.equal(await repository.apply(deliver), false);
      assert.equal(await audited(command.id), auditedBefore, 'no outbox row for the loser');
      assert.deepEqual((await h.cp.commands.get(command.id)).history.map((entry) => entry.state), ['queued', 'sent']);
      // Alone (a retry after a lost compare-and-set): the same one batch.
      const row = await repository.byId(command.id);
      const ack = decideTransition(row === undefined ? undefined : recordOf(row), { event: 'ack', atMs: h.clock.nowMs(), actor: 'gateway:gw1' });
      assert.ok(ack.applied);
      const beforeAlone = { ...counter };
      assert.equal(await repository.apply(ack.effects.transaction, { alone: true }), true);
      assert.equal(counter.roundTrips - beforeAlone.roundTrips, 1);
      await h.cp.commands.transition(command.id, 'time_out', h.clock.nowMs());
    });

    it('a group with an expire for a command that left meanwhile: that member loses (never dispatched is part of its compare-and-set), the others win', async () => {
      const [a, b] = [await create(), await create()];
      const { db, counter } = countingTransactions();
      const repository = new CommandRepository({ db, audit: h.cp.context.audit });
      const deliver = await deliverDecision(repository, a.id);
      const bRow = await repository.byId(b.id);
      const expire = decideTransition(bRow === undefined ? undefined : recordOf(bRow), { event: 'expire', atMs: h.clock.nowMs(), actor: 'system' });
      assert.ok(expire.applied);
      // b leaves the control plane after its expiry was decided: still queued, but a device may have it now.
      assert.equal(await repository.markLeaving(b.id, h.clock.nowMs()), true);
      const before = { ...counter };
      const outcomes = await Promise.all([deliver, expire.effects.transaction].map((member) => repository.apply(member)));
      assert.deepEqual(outcomes, [true, false]);
      // The one UPDATE changed one row of two: rolled back, then the group again with its rows read under lock.
      assert.equal(counter.transactions - before.transactions, 2);
      assert.equal((await h.cp.commands.get(a.id)).state, 'sent');
      assert.equal((await h.cp.commands.get(b.id)).state, 'queued', 'the loser changed nothing');
      assert.deepEqual((await h.cp.commands.get(b.id)).history.map((entry) => entry.state), ['queued']);
      for (const command of [a, b]) await h.cp.commands.transition(command.id, 'time_out', h.clock.nowMs());
    });

    it('a group of different commands with a stale member: its one UPDATE misses, the group runs again deciding on rows read under lock, the winners in one UPDATE', async () => {
      const [a, b, c] = [await create(), await create(), await create()];
      const { db, counter } = countingTransactions();
      const repository = new CommandRepository({ db, audit: h.cp.context.audit });
      const effects = [await deliverDecision(repository, a.id), await deliverDecision(repository, b.id), await deliverDecision(repository, c.id)];
      // c moves on before the group: its decision (from queued) is stale.
      await h.cp.commands.transition(c.id, 'deliver', h.clock.nowMs());
      await h.cp.commands.transition(c.id, 'ack', h.clock.nowMs());
      const before = { ...counter };
      const outcomes = await Promise.all(effects.map((member) => repository.apply(member)));
      assert.deepEqual(outcomes, [true, true, false]);
      assert.equal(counter.transactions - before.transactions, 2, 'the guess, rolled back, then the exact group');
      // The guess's UPDATE with its history and outbox INSERTs (one batch, rolled back); then a locking read, and
      // one UPDATE, one history INSERT, one outbox INSERT in a second batch: three round trips (were five, one per statement).
      assert.equal(counter.statements - before.statements, 7);
      assert.equal(counter.roundTrips - before.roundTrips, 3);
      for (const command of [a, b]) {
        const stored = await h.cp.commands.get(command.id);
        assert.equal(stored.state, 'sent');
        assert.equal(stored.attempts, 1, 'deliver counts an attempt');
        assert.deepEqual(stored.history.map((entry) => entry.state), ['queued', 'sent']);
      }
      assert.equal((await h.cp.commands.get(c.id)).state, 'ack_received', 'the loser changed nothing');
      assert.deepEqual((await h.cp.commands.get(c.id)).history.map((entry) => entry.state), ['queued', 'sent', 'ack_received']);
      for (const command of [a, b, c]) await h.cp.commands.transition(command.id, 'time_out', h.clock.nowMs());
    });

    it('owner reads asked for together go in one query, each answered for its own command (a damaged row only for itself)', async () => {
      const [a, b, damaged] = [await create(), await create(), await create()];
      await damage(damaged.id, 'state', 'bogus');
      let queries = 0;
      const db = new Proxy(h.db, {
        get(target, property, receiver) {
          if (property === 'query') return (sql: string, params?: Parameters<typeof target.query>[1]) => { queries += 1; return target.query(sql, params); };
          const value = Reflect.get(target, property, receiver) as unknown;
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
      const repository = new CommandRepository({ db, audit: h.cp.context.audit });
      const [ownerA, ownerB, missing, corrupt, again] = await Promise.allSettled([
        repository.ownerOf(a.id), repository.ownerOf(b.id), repository.ownerOf('c_missing'), repository.ownerOf(damaged.id), repository.ownerOf(a.id),
      ]);
      assert.equal(queries, 1, 'one query for five reads');
      assert.ok(ownerA.status === 'fulfilled' && ownerA.value?.row.id === a.id && ownerA.value.deviceId === device && ownerA.value.deviceStatus === 'enrolled');
      assert.ok(ownerB.status === 'fulfilled' && ownerB.value?.row.id === b.id && ownerB.value.deviceSeq === b.device_seq);
      assert.deepEqual(missing, { status: 'fulfilled', value: undefined });
      assert.ok(corrupt.status === 'rejected' && SdcError.is(corrupt.reason, 'STORE_CORRUPT'));
      assert.ok(again.status === 'fulfilled' && again.value?.row.id === a.id);
      await damage(damaged.id, 'state', 'queued');
      for (const command of [a, b, damaged]) await h.cp.commands.transition(command.id, 'time_out', h.clock.nowMs());
    });

    it('a group whose transaction fails is applied again member by member: the member whose audit record is refused fails alone', async () => {
      const [bad, good] = [await create(), await create()];
      const real = h.cp.context.audit;
      type Entry = Parameters<typeof real.record>[1];
      const refuse = (entries: readonly Entry[]) => {
        if (entries.some((entry) => entry.subject === `command:${bad.id}`)) throw new SdcError('STORE_UNAVAILABLE', 'outbox refuses this one');
      };
      const refusing = {
        record: async (tx: SqlExecutor, entry: Entry) => { refuse([entry]); return real.record(tx, entry); },
        recordMany: async (tx: SqlExecutor, entries: readonly Entry[]) => { refuse(entries); return real.recordMany(tx, entries); },
      } as unknown as AuditLog<SqlExecutor>;
      const repository = new CommandRepository({ db: h.db, audit: refusing });
      const effects = [await deliverDecision(repository, bad.id), await deliverDecision(repository, good.id)];
      const settled = await Promise.allSettled(effects.map((member) => repository.apply(member)));
      assert.equal(settled[0]!.status, 'rejected');
      assert.ok(SdcError.is((settled[0] as PromiseRejectedResult).reason, 'STORE_UNAVAILABLE'));
      assert.deepEqual(settled[1], { status: 'fulfilled', value: true });
      assert.equal((await h.cp.commands.get(bad.id)).state, 'queued', 'nothing of the failed member');
      assert.equal(await countOf('SELECT id FROM command_events WHERE command_id = ?', [bad.id]), 1);
      assert.equal((await h.cp.commands.get(good.id)).state, 'sent');
      assert.equal(await countOf('SELECT id FROM command_events WHERE command_id = ?', [good.id]), 2);
      for (const command of [bad, good]) await h.cp.commands.transition(command.id, 'time_out', h.clock.nowMs());
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('command repository on mysql + redis', { skip: skipped }, () => {});
