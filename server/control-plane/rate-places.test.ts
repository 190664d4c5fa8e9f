import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { SdcError } from '../../core/errors/index.js';
import { signApproval } from '../../core/protocol/approvals.js';
import { parsePolicy } from '../../core/protocol/policy.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import type { SqlDatabase } from '../stores/sql/sql-port.js';
import { addAndLogIn, apiCaller, makeHarness, personMaker, refusalCodeOf, storePairs, type ApiPerson, type Harness, type StorePair } from './test-support.js';

/**
 * Review h1, finding 3: a command's rate-limit places (policy `rateLimit`, reserved at admission)
 * count only commands that were stored and could run. Given back: a create that stored nothing
 * (it lost its Idempotency-Key's race and is answered with the winner's command, or the store
 * failed), and a command that waited for approvals and was rejected without running (by an
 * approver, or at its device's revocation). Kept: a requester's own cancel, and an expiry (the
 * requester chooses the TTL; CommandService.givePendingPlacesBack says why).
 * Through the HTTP API and the service on both store pairs (sql.js + memory kv; MySQL + Redis).
 */

const provider = createNodeEd25519Provider();
const password = 'correct horse battery staple';
const hourMs = 3_600_000;

const policy = parsePolicy({
  version: 1,
  rules: [
    { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
    { id: 'ping', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_PING_KERNEL'], devices: '*', conditions: { rateLimit: { per: ['actor'], count: 2, windowMs: hourMs } } },
    { id: 'lock', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_LOCK_SCREEN'], devices: '*', conditions: { approval: { count: 1, roles: ['admin'] }, rateLimit: { per: ['actor'], count: 1, windowMs: hourMs } } },
  ],
});

/** The database with every transaction refused STORE_UNAVAILABLE while `failing` is set (nothing committed). */
function transactionsFailing(db: SqlDatabase, switchboard: { failing: boolean }): SqlDatabase {
  return {
    dialect: db.dialect,
    query: (sql, params) => db.query(sql, params),
    execute: (sql, params) => db.execute(sql, params),
    transaction: async (fn) => {
      if (switchboard.failing) throw new SdcError('STORE_UNAVAILABLE', 'injected: the store refused the transaction');
      return db.transaction(fn);
    },
    close: () => db.close(),
  };
}

function suite(pair: StorePair): void {
  describe(`rate-limit places of commands that never ran, on ${pair.name}`, () => {
    let h: Harness;
    const switchboard = { failing: false };
    const tag = randomBytes(3).toString('hex');
    const device = `rp-${tag}`;
    const people: ApiPerson[] = [];
    const person = personMaker(tag, people);
    const racer = person('racer', 'operator');
    const unlucky = person('unlucky', 'operator');
    const rejected = person('rejected', 'operator');
    const expired = person('expired', 'operator');
    const canceller = person('canceller', 'operator');
    const adm = person('adm', 'admin');
    const call = apiCaller(() => h);

    const ping = (by: ApiPerson, idempotencyKey?: string) => h.cp.commands.create({
      actor: { name: by.name, role: by.role }, deviceId: device, opcode: 'EXEC_PING_KERNEL', args: {}, ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
    });
    const lock = async (by: ApiPerson, ttlMs?: number) => call('POST', '/v1/commands', by.token, { device_id: device, opcode: 'EXEC_LOCK_SCREEN', args: {}, ...(ttlMs === undefined ? {} : { ttl_ms: ttlMs }) });
    const pending = async (by: ApiPerson, ttlMs?: number): Promise<Record<string, any>> => {
      const created = await lock(by, ttlMs);
      assert.equal(created.json().state, 'pending_approval', created.text);
      return created.json();
    };
    const reject = (by: ApiPerson, command: Record<string, any>) => {
      const statement = { command_id: command.id as string, command_sha256: command.approval.command_sha256 as string, decision: 'reject' as const, approver: by.name, kid: by.kid, expires_at: command.expires_at_ms as number, reason: 'not today' };
      return call('POST', `/v1/commands/${command.id}/reject`, by.token, {
        command_sha256: statement.command_sha256, kid: statement.kid, expires_at_ms: statement.expires_at, signature: signApproval({ statement, seed: by.seed, provider }), reason: statement.reason,
      });
    };

    before(async () => {
      h = await makeHarness({ ...pair.sql, open: async (dir) => transactionsFailing(await pair.sql.open(dir), switchboard) }, {
        ...(pair.kv === undefined ? {} : { kv: pair.kv }), controlPlane: { policy },
      });
      await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', ?, ?)", [device, h.clock.nowMs(), base64urlFromBytes(new Uint8Array(32))]);
      await addAndLogIn(h, call, people, password);
      const registered = await call('PUT', '/v1/users/me/signing-key', adm.token, { public_key: base64urlFromBytes(provider.publicKeyFromSeed(adm.seed)), current_password: password });
      adm.kid = registered.json().kid as string;
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('two creates racing with one Idempotency-Key use one place: the loser, answered with the winner\'s command, gives its place back', async () => {
      const [first, second] = await Promise.all([ping(racer, `race-${tag}`), ping(racer, `race-${tag}`)]);
      assert.equal(first.command.id, second.command.id);
      assert.deepEqual([first.created, second.created].sort(), [false, true], 'one stored, one answered as a retry');
      // Limit 2: the race's one command and one more.
      assert.equal((await ping(racer)).created, true);
      assert.equal(await refusalCodeOf(ping(racer)), 'COMMAND_RATE_LIMITED', 'the limit still holds');
    });

    it('a create the store refused gives its place back', async () => {
      switchboard.failing = true;
      try {
        assert.equal(await refusalCodeOf(ping(unlucky)), 'STORE_UNAVAILABLE');
        assert.equal(await refusalCodeOf(ping(unlucky)), 'STORE_UNAVAILABLE');
      } finally {
        switchboard.failing = false;
      }
      assert.equal((await ping(unlucky)).created, true);
      assert.equal((await ping(unlucky)).created, true);
      assert.equal(await refusalCodeOf(ping(unlucky)), 'COMMAND_RATE_LIMITED');
    });

    it('a command waiting for approvals holds its place; rejected by an approver, it gives it back', async () => {
      const waiting = await pending(rejected);
      assert.equal((await lock(rejected)).json().error?.code, 'COMMAND_RATE_LIMITED', 'held while it waits');
      const refused = await reject(adm, waiting);
      assert.equal(refused.json().command?.state, 'rejected', refused.text);
      await pending(rejected);
      assert.equal((await lock(rejected)).json().error?.code, 'COMMAND_RATE_LIMITED');
    });

    it('an expired request keeps its place: asking with ttl_ms 1 and letting it expire, again and again, puts one request in the inbox (review h9, finding 1)', async () => {
      const states: string[] = [];
      for (let round = 0; round < 20; round += 1) {
        const asked = await lock(expired, 1);
        states.push(asked.json().state ?? asked.json().error?.code);
        h.clock.advance(5_000);
        await h.cp.commands.expireDue();
      }
      assert.deepEqual(states, ['pending_approval', ...Array.from({ length: 19 }, () => 'COMMAND_RATE_LIMITED')], 'a limit of 1 an hour: 1 created in 100 s');
    });

    it('a requester\'s own cancel keeps the place until its window passes (asking and cancelling again is bounded)', async () => {
      const mine = await pending(canceller);
      assert.equal((await call('POST', `/v1/commands/${mine.id}/cancel`, canceller.token, {})).status, 200);
      assert.equal((await lock(canceller)).json().error?.code, 'COMMAND_RATE_LIMITED');
      h.clock.advance(hourMs + hourMs / 5);
      canceller.token = (await call('POST', '/v1/auth/login', undefined, { name: canceller.name, password })).json().token as string;
      await pending(canceller);
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('rate-limit places on MySQL + Redis', () => it.skip(skipped, () => {}));
