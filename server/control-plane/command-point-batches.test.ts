import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { SqlDatabase, SqlExecutor, SqlValue } from '../stores/sql/sql-port.js';
import { CommandRepository } from './command-repository.js';
import { PolicyStore } from './policy-store.js';
import { defaultPolicy } from '../../core/protocol/policy.js';
import { decideCreate } from '../../core/protocol/command-decisions.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { SdcError } from '../../core/errors/index.js';
import { deviceFrame, makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';
import { randomBytes } from 'node:crypto';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';

const ed25519 = createNodeEd25519Provider();

/** The database, with every statement it is given outside a transaction recorded (the point statements under test run outside one). */
function counting(db: SqlDatabase): { db: SqlDatabase; statements: string[] } {
  const statements: string[] = [];
  return {
    db: {
      dialect: db.dialect,
      query: (sql: string, params?: readonly SqlValue[]) => { statements.push(sql); return db.query(sql, params); },
      execute: (sql: string, params?: readonly SqlValue[]) => { statements.push(sql); return db.execute(sql, params); },
      transaction: <T>(fn: (tx: SqlExecutor) => Promise<T>) => db.transaction(fn),
      close: () => db.close(),
    } as SqlDatabase,
    statements,
  };
}

/** A command as the create path signs it; the repository stores it as given (the signature is checked by devices, not here). */
function fakeSigned(id: string, deviceId: string, deviceSeq: number): SignedCommand {
  return { id, device_id: deviceId, opcode: 'EXEC_PING_KERNEL', args: {}, issued_at: 1_000, expires_at: 61_000, device_seq: deviceSeq, issuer: 'test', kid: 'k', sig: 'AA' } as unknown as SignedCommand;
}

const matching = (statements: readonly string[], pattern: RegExp): number => statements.filter((sql) => pattern.test(sql)).length;

async function insertDevice(db: SqlDatabase, id: string, status: string): Promise<void> {
  await db.execute('INSERT INTO devices (id, status, created_at) VALUES (?, ?, 0)', [id, status]);
}

/** A queued command row as the create transaction stores it (only the columns these statements read matter). */
async function insertQueued(db: SqlDatabase, row: { id: string; deviceId: string; seq: number; expiresAtMs?: number; state?: string }): Promise<void> {
  await db.execute(
    `INSERT INTO commands (id, device_id, opcode, args_json, state, created_by, idempotency_key, device_seq, signed_json, expires_at, attempts, created_at, updated_at)
     VALUES (?, ?, 'EXEC_PING_KERNEL', '{}', ?, 'op', ?, ?, ?, ?, 0, 0, 0)`,
    [row.id, row.deviceId, row.state ?? 'queued', `key-${row.id}`, row.seq, JSON.stringify({ id: row.id }), row.expiresAtMs ?? 1_000_000],
  );
}

/** The target's database, with its transactions counted and every statement outside a transaction recorded. */
function countingTarget(pair: StorePair): { target: StorePair['sql']; transactions: () => number; statements: string[] } {
  let transactions = 0;
  const statements: string[] = [];
  const target = {
    ...pair.sql,
    open: async (dir: string): Promise<SqlDatabase> => {
      const db = await pair.sql.open(dir);
      return {
        dialect: db.dialect, close: () => db.close(),
        query: (sql, params) => { statements.push(sql); return db.query(sql, params); },
        execute: (sql, params) => { statements.push(sql); return db.execute(sql, params); },
        transaction: <T>(fn: (tx: SqlExecutor) => Promise<T>) => {
          transactions += 1;
          return db.transaction(fn);
        },
      } as SqlDatabase;
    },
  };
  return { target, transactions: () => transactions, statements };
}

function suite(pair: StorePair): void {
  // One control plane per store pair for every test here (each test uses devices of its own).
  const counted = countingTarget(pair);
  let h: Harness;
  before(async () => { h = await makeHarness(counted.target, pair.kv === undefined ? {} : { kv: pair.kv }); });
  after(async () => { await h.close(); });

  describe(`creates asked for meanwhile commit together (issue 17), on ${pair.name}`, () => {
    const actor = { name: 'op', role: 'operator' as const };
    const send = (h: Harness, deviceId: string, idempotencyKey?: string) => h.cp.commands.create({
      actor, deviceId, opcode: 'EXEC_PING_KERNEL', args: {}, ttlMs: 60_000, ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
    });
    const audited = async (h: Harness, id: string) => (await h.db.query('SELECT id FROM audit_outbox WHERE subject = ?', [`command:${id}`])).length
      + (await h.db.query('SELECT seq FROM audit_log WHERE subject = ?', [`command:${id}`])).length;

    it('one transaction for the creates that queue behind the first, each with its seq, history row and audit entry', async () => {
      {
        const devices = ['pg-a', 'pg-b', 'pg-c', 'pg-d'];
        for (const id of devices) await insertDevice(h.db, id, 'enrolled');
        const before = counted.transactions();
        const created = await Promise.all([...devices, 'pg-d'].map((id) => send(h, id)));
        // The first commits alone and the ones behind it in a group (they reach the repository a few turns apart, so one or two groups): were five transactions.
        assert.ok(counted.transactions() - before <= 3, `${counted.transactions() - before} transactions for five creates`);
        assert.deepEqual(created.map(({ command }) => [command.device_id, command.device_seq]), [['pg-a', 1], ['pg-b', 1], ['pg-c', 1], ['pg-d', 1], ['pg-d', 2]]);
        for (const { command } of created) {
          assert.deepEqual((await h.cp.commands.get(command.id)).history.map((entry) => entry.state), ['queued']);
          assert.equal(await audited(h, command.id), 1, `one command.created entry for ${command.id}`);
          assert.equal(command.signed?.device_seq, command.device_seq);
        }
      }
    });

    it('a member that fails (an Idempotency-Key already taken) costs only itself: the group runs again one by one, the others keep their seqs, history and audit', async () => {
      {
        for (const id of ['pf-a', 'pf-b']) await insertDevice(h.db, id, 'enrolled');
        await insertQueued(h.db, { id: 'c-pf-taken', deviceId: 'pf-b', seq: 0 });
        let transactions = 0;
        const db = { dialect: h.db.dialect, query: h.db.query.bind(h.db), execute: h.db.execute.bind(h.db), close: h.db.close.bind(h.db),
          transaction: <T>(fn: (tx: SqlExecutor) => Promise<T>) => { transactions += 1; return h.db.transaction(fn); } } as SqlDatabase;
        const repository = new CommandRepository({ db, audit: h.cp.context.audit });
        const create = (id: string, deviceId: string, idempotencyKey: string | null) => repository.create(deviceId, (deviceSeq) => decideCreate({
          row: { command: fakeSigned(id, deviceId, deviceSeq), createdBy: 'op', idempotencyKey, argsJson: '{}' }, auditActor: 'user:op', policyRecord: {},
        }));
        // Asked in one turn: one group; 'key-c-pf-taken' is the stored command's key, so the group's INSERT fails.
        const outcomes = await Promise.allSettled([
          create('c-pf-1', 'pf-a', 'k-1'), create('c-pf-2', 'pf-b', 'key-c-pf-taken'), create('c-pf-3', 'pf-b', 'k-3'), create('c-pf-4', 'pf-a', null),
        ]);
        assert.equal(transactions, 5, 'the group, rolled back, then each of the four alone');
        assert.equal(outcomes[1]!.status, 'rejected');
        assert.ok(SdcError.is((outcomes[1] as PromiseRejectedResult).reason, 'STORE_UNIQUE_VIOLATION'));
        const seqs = outcomes.map((outcome) => outcome.status === 'fulfilled' ? (outcome.value.transaction[0] as { row: { command: { device_seq: number } } }).row.command.device_seq : null);
        // Each device's seqs in the order asked, the failed member's seq not taken (its transaction rolled back).
        assert.deepEqual(seqs, [1, null, 1, 2]);
        const rows = await h.db.query<{ id: string; device_seq: number }>("SELECT id, device_seq FROM commands WHERE id LIKE 'c-pf-%' ORDER BY id");
        assert.deepEqual(rows.map((row) => [row.id, Number(row.device_seq)]), [['c-pf-1', 1], ['c-pf-3', 1], ['c-pf-4', 2], ['c-pf-taken', 0]]);
        for (const id of ['c-pf-1', 'c-pf-3', 'c-pf-4']) {
          assert.deepEqual((await repository.history(id, 10)).map((entry) => entry.state), ['queued']);
          assert.equal(await audited(h, id), 1, `one command.created entry for ${id}`);
        }
        assert.equal(await audited(h, 'c-pf-2'), 0);
        await h.cp.context.settleAudit();
        assert.equal((await h.cp.context.audit.verify()).ok, true);
      }
    });
  });

  describe(`the create and dispatch path's point statements, batched (issue 17), on ${pair.name}`, () => {
    it('admissions asked for meanwhile share one statement; each device gets its own status and every one the revision committed before it asked', async () => {
      {
        await insertDevice(h.db, 'pb-a', 'enrolled');
        await insertDevice(h.db, 'pb-b', 'revoked');
        await insertDevice(h.db, 'pb-c', 'enrolled');
        const { db, statements } = counting(h.db);
        const repository = new CommandRepository({ db, audit: h.cp.context.audit });
        const asked = ['pb-a', 'pb-b', 'pb-c', 'pb-missing', 'pb-a'];
        const facts = await Promise.all(asked.map((id) => repository.admissionFacts(id)));
        assert.deepEqual(facts.map((fact) => fact.deviceStatus), ['enrolled', 'revoked', 'enrolled', undefined, 'enrolled']);
        assert.deepEqual(facts.map((fact) => fact.policyRevision), [0, 0, 0, 0, 0]);
        // One statement for the five (one device asked twice): were ten, a status and a revision each.
        assert.equal(statements.length, 1);
        // A revision stored by another control plane sharing the database counts for the next admission.
        const other = new PolicyStore(h.cp.context);
        await other.set({ document: defaultPolicy, expectedRevision: 0, actor: 'user:admin' });
        const next = await repository.admissionFacts('pb-c');
        assert.equal(next.policyRevision, 1);
        assert.equal((await new PolicyStore(h.cp.context).at(next.policyRevision)).revision, 1);
      }
    });

    it('idempotency lookups asked for meanwhile share one statement, each answered with its own row', async () => {
      {
        await insertDevice(h.db, 'pi-a', 'enrolled');
        await insertQueued(h.db, { id: 'c-pi-1', deviceId: 'pi-a', seq: 1 });
        await insertQueued(h.db, { id: 'c-pi-2', deviceId: 'pi-a', seq: 2 });
        const { db, statements } = counting(h.db);
        const repository = new CommandRepository({ db, audit: h.cp.context.audit });
        const rows = await Promise.all([
          repository.byIdempotencyKey('op', 'key-c-pi-2'), repository.byIdempotencyKey('op', 'key-c-pi-1'),
          repository.byIdempotencyKey('someone-else', 'key-c-pi-1'), repository.byIdempotencyKey('op', 'key-none'),
        ]);
        assert.deepEqual(rows.map((row) => row?.id), ['c-pi-2', 'c-pi-1', undefined, undefined]);
        assert.equal(statements.length, 1);
      }
    });

    it("waiting commands of several devices in one statement, each device's own in seq order and within its limit", async () => {
      {
        for (const id of ['pw-a', 'pw-b', 'pw-c']) await insertDevice(h.db, id, 'enrolled');
        await insertQueued(h.db, { id: 'c-pw-a3', deviceId: 'pw-a', seq: 3 });
        await insertQueued(h.db, { id: 'c-pw-a1', deviceId: 'pw-a', seq: 1 });
        await insertQueued(h.db, { id: 'c-pw-a2', deviceId: 'pw-a', seq: 2 });
        await insertQueued(h.db, { id: 'c-pw-b1', deviceId: 'pw-b', seq: 1 });
        await insertQueued(h.db, { id: 'c-pw-b2', deviceId: 'pw-b', seq: 2, expiresAtMs: 10 }); // expired: not waiting
        await insertQueued(h.db, { id: 'c-pw-b3', deviceId: 'pw-b', seq: 3, state: 'sent' }); // left already
        const { db, statements } = counting(h.db);
        const repository = new CommandRepository({ db, audit: h.cp.context.audit });
        const [a, b, c] = await Promise.all([repository.waitingOf('pw-a', 100, 2), repository.waitingOf('pw-b', 100, 2), repository.waitingOf('pw-c', 100, 2)]);
        assert.deepEqual(a!.map((command) => command.id), ['c-pw-a1', 'c-pw-a2']);
        assert.deepEqual(b!.map((command) => command.id), ['c-pw-b1']);
        assert.deepEqual(c, []);
        assert.equal(statements.length, 1);
      }
    });

    it("device keys of frames from several devices read in one statement; a key that does not decode fails only its own device's frame", async () => {
      const seeds = ['pk-a', 'pk-b', 'pk-c'].map((id) => ({ id, seed: new Uint8Array(randomBytes(32)) }));
      for (const { id, seed } of seeds) {
        await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', 0, ?)", [id, base64urlFromBytes(ed25519.publicKeyFromSeed(seed))]);
      }
      await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES ('pk-bad', 'enrolled', 0, 'AAAA')");
      const ack = (deviceId: string, seed: Uint8Array) => deviceFrame({ deviceId, seed, type: 'COMMAND_ACK', ts: h.clock.nowMs(), body: { command_id: `c-${deviceId}`, device_seq: 1, stage: 'received' } });
      counted.statements.length = 0;
      const outcomes = await Promise.allSettled([
        ...seeds.map(({ id, seed }) => h.cp.devices.verifyDeviceFrame(id, ack(id, seed), 'COMMAND_ACK')),
        h.cp.devices.verifyDeviceFrame('pk-bad', ack('pk-bad', seeds[0]!.seed), 'COMMAND_ACK'),
      ]);
      assert.deepEqual(outcomes.map((outcome) => outcome.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
      assert.ok(SdcError.is((outcomes[3] as PromiseRejectedResult).reason, 'CRYPTO_BAD_KEY'));
      // One read for the four devices: were four.
      assert.equal(matching(counted.statements, /FROM devices WHERE id/), 1);
    });

    it('dispatch marks and records of several commands in one UPDATE each; a finished command among them is still answered false alone', async () => {
      {
        await insertDevice(h.db, 'pd-a', 'enrolled');
        await insertQueued(h.db, { id: 'c-pd-1', deviceId: 'pd-a', seq: 1 });
        await insertQueued(h.db, { id: 'c-pd-2', deviceId: 'pd-a', seq: 2 });
        await insertQueued(h.db, { id: 'c-pd-3', deviceId: 'pd-a', seq: 3, state: 'expired' });
        const { db, statements } = counting(h.db);
        const repository = new CommandRepository({ db, audit: h.cp.context.audit });
        assert.deepEqual(await Promise.all([repository.markLeaving('c-pd-1', 50), repository.markLeaving('c-pd-2', 60)]), [true, true]);
        assert.equal(matching(statements, /^UPDATE commands SET first_dispatched_at/), 1);
        // The expired one makes the batch match fewer rows than it names: each is asked again alone.
        statements.length = 0;
        assert.deepEqual(await Promise.all([repository.markLeaving('c-pd-1', 70), repository.markLeaving('c-pd-3', 70), repository.markLeaving('c-pd-2', 70)]), [true, false, true]);
        assert.equal(matching(statements, /^UPDATE commands SET first_dispatched_at/), 4);
        statements.length = 0;
        await Promise.all([repository.recordDispatch('c-pd-1', 'gw-1', 80), repository.recordDispatch('c-pd-2', 'gw-2', 90)]);
        assert.equal(matching(statements, /^UPDATE commands SET gateway_id/), 1);
        const rows = await h.db.query<{ id: string; first_dispatched_at: number | null; gateway_id: string | null; dispatched_at: number | null }>(
          "SELECT id, first_dispatched_at, gateway_id, dispatched_at FROM commands WHERE device_id = 'pd-a' ORDER BY id");
        // The first mark's time stays (COALESCE); each record its own gateway and time.
        assert.deepEqual(rows.map((row) => [row.id, row.first_dispatched_at === null ? null : Number(row.first_dispatched_at), row.gateway_id, row.dispatched_at === null ? null : Number(row.dispatched_at)]), [
          ['c-pd-1', 50, 'gw-1', 80], ['c-pd-2', 60, 'gw-2', 90], ['c-pd-3', null, null, null],
        ]);
      }
    });

    it("a create's Idempotency-Key lookup and admission facts are one statement, batched with the other creates, lookups and admissions asked for meanwhile", async () => {
      {
        await insertDevice(h.db, 'pr-a', 'enrolled');
        await insertDevice(h.db, 'pr-b', 'revoked');
        await insertQueued(h.db, { id: 'c-pr-1', deviceId: 'pr-a', seq: 1 });
        const { db, statements } = counting(h.db);
        const repository = new CommandRepository({ db, audit: h.cp.context.audit });
        const [retry, fresh, revoked, missing, lookup, admission] = await Promise.all([
          repository.createFacts('pr-a', { createdBy: 'op', key: 'key-c-pr-1' }), repository.createFacts('pr-a', { createdBy: 'op', key: 'key-new' }),
          repository.createFacts('pr-b', { createdBy: 'someone-else', key: 'key-c-pr-1' }), repository.createFacts('pr-missing'),
          repository.byIdempotencyKey('op', 'key-c-pr-1'), repository.admissionFacts('pr-a'),
        ]);
        // Six callers, one statement: were two per create (the lookup, then the admission facts), one per other caller.
        assert.equal(statements.length, 1, statements.join('\n'));
        assert.ok(/idempotency_key/.test(statements[0]!) && /policy_revisions/.test(statements[0]!), 'one statement reads both');
        assert.equal(retry.existing?.id, 'c-pr-1');
        assert.equal(fresh.existing, undefined);
        assert.deepEqual([fresh.deviceStatus, revoked.deviceStatus, missing.deviceStatus, admission.deviceStatus], ['enrolled', 'revoked', undefined, 'enrolled']);
        assert.equal(revoked.existing, undefined, "another operator's key is not this one's");
        assert.equal(lookup?.id, 'c-pr-1');
        assert.ok([retry, revoked, missing, admission].every((facts) => facts.policyRevision === fresh.policyRevision), 'one revision for the batch');
        // The lookup alone (the create's retry after a unique violation) and an admission alone are one statement each, as before.
        statements.length = 0;
        assert.equal((await repository.byIdempotencyKey('op', 'key-c-pr-1'))?.id, 'c-pr-1');
        assert.equal((await repository.admissionFacts('pr-b')).deviceStatus, 'revoked');
        assert.equal(statements.length, 2);
      }
    });

    it('a damaged device status or Idempotency-Key row fails only the creates it answers', async () => {
      {
        await insertDevice(h.db, 'px-a', 'enrolled');
        // Longer than any status: STORE_CORRUPT. MySQL's VARCHAR(32) cannot hold it, so there only the damaged command row is tried.
        const damagedStatus = h.db.dialect !== 'mysql';
        await insertDevice(h.db, 'px-bad', damagedStatus ? 'x'.repeat(40) : 'enrolled');
        await insertQueued(h.db, { id: 'c-px-1', deviceId: 'px-a', seq: 1 });
        await insertQueued(h.db, { id: 'c-px-2', deviceId: 'px-bad', seq: 1 });
        await h.db.execute("UPDATE commands SET state = 'bogus' WHERE id = 'c-px-1'");
        const { db, statements } = counting(h.db);
        const repository = new CommandRepository({ db, audit: h.cp.context.audit });
        const settled = await Promise.allSettled([
          repository.createFacts('px-a', { createdBy: 'op', key: 'key-c-px-1' }), repository.createFacts('px-bad'),
          repository.createFacts('px-bad', { createdBy: 'op', key: 'key-c-px-2' }), repository.createFacts('px-a'),
        ]);
        assert.equal(statements.length, 1);
        const codes = settled.map((outcome) => outcome.status === 'rejected' && SdcError.is(outcome.reason) ? outcome.reason.code : 'fulfilled');
        // The damaged row fails its retry; the damaged status fails its device's admission, not a retry that needs no admission.
        assert.deepEqual(codes, ['STORE_CORRUPT', damagedStatus ? 'STORE_CORRUPT' : 'fulfilled', 'fulfilled', 'fulfilled']);
        assert.equal((settled[2] as PromiseFulfilledResult<{ existing?: { id: string } }>).value.existing?.id, 'c-px-2');
        assert.equal((settled[3] as PromiseFulfilledResult<{ deviceStatus?: string }>).value.deviceStatus, 'enrolled');
        await h.db.execute("UPDATE commands SET state = 'queued' WHERE id = 'c-px-1'");
      }
    });

    it('through the command service: a create with an Idempotency-Key costs one read before its transaction; a retry answers the stored command first, even for a device revoked since', async () => {
      {
        await insertDevice(h.db, 'ps-a', 'enrolled');
        await insertDevice(h.db, 'ps-b', 'enrolled');
        const actor = { name: 'op', role: 'operator' as const };
        const send = (deviceId: string, idempotencyKey: string) => h.cp.commands.create({ actor, deviceId, opcode: 'EXEC_PING_KERNEL', args: {}, ttlMs: 60_000, idempotencyKey });
        const reads = () => counted.statements.filter((sql) => /idempotency_key = \?|MAX\(revision\)/.test(sql));
        const before = reads().length;
        const created = await Promise.all([send('ps-a', 'ps-k1'), send('ps-b', 'ps-k2')]);
        assert.deepEqual(created.map((one) => one.created), [true, true]);
        // Were four: each create's lookup, then its admission facts.
        assert.equal(reads().length - before, 1, reads().slice(before).join('\n'));
        await h.db.execute("UPDATE devices SET status = 'revoked' WHERE id = 'ps-a'");
        const retried = await send('ps-a', 'ps-k1');
        assert.equal(retried.created, false);
        assert.equal(retried.command.id, created[0]!.command.id);
        await assert.rejects(send('ps-a', 'ps-k3'), (error) => SdcError.is(error, 'API_DEVICE_REVOKED'));
        await assert.rejects(send('ps-missing', 'ps-k4'), (error) => SdcError.is(error, 'API_DEVICE_NOT_FOUND'));
      }
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('the create path\'s point statements on mysql + redis', { skip: skipped }, () => {});
