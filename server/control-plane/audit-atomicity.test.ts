// Issue 16.1, 18.3 and 18.4: a change and its audit entry commit together (the outbox,
// docs/audit.md); one entry that cannot be hashed never takes other entries with it; a create
// that committed is answered as created; what a crash leaves between the commit and the chain
// append is chained by the next start. Runs on sql.js and, with MYSQL_URL, on MySQL (the bus and
// key/value stores play no part in the audit; test/e2e/audit-crash.test.ts runs the same
// invariants on the embedded and the Redis + MySQL deployment).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { kvKeys, streamNames } from '../bus-contract/streams.js';
import { SdcError } from '../../core/errors/index.js';
import type { ErrorCode } from '../../core/errors/registry.js';
import type { AuditEntry } from '../../core/protocol/audit-chain.js';
import { systemRandom, systemScheduler } from '../../runtime/system.js';
import type { SqlDatabase } from '../stores/sql/sql-port.js';
import { createControlPlane } from './control-plane.js';
import { deviceFrame, makeDeviceKey, makeHarness, mysqlTarget, progressEntry, sqlJsTarget, type Harness, type SqlTarget } from './test-support.js';
import { withOneByOneBatches } from '../stores/sql/sql-batch.js';

const adminPassword = 'correct horse battery staple';
const operatorPassword = 'operator password 123';
const loneSurrogateName = '\ud800x';
/** Every write into the hash chain, whatever path it takes. */
const isChainAppend = (sql: string): boolean => sql.startsWith('INSERT INTO audit_log');
const refusedWith = (code: ErrorCode) => (error: unknown): boolean => SdcError.is(error, code);

/**
 * The database as the control plane sees it, with every statement failing while `failWhen`
 * matches its SQL: a chain append that fails after the change committed (the crash window of
 * issue 18.3), or a read-back that fails right after a commit (issue 18.4).
 */
function faultyDatabase(db: SqlDatabase): { db: SqlDatabase; failWhen(match: ((sql: string) => boolean) | undefined): void } {
  let failing: ((sql: string) => boolean) | undefined;
  const check = (sql: string): void => {
    if (failing?.(sql) === true) throw new SdcError('STORE_UNAVAILABLE', 'injected: the database went away after the commit');
  };
  const wrapped: SqlDatabase = {
    dialect: db.dialect,
    query: async (sql, params) => { check(sql); return db.query(sql, params); },
    execute: async (sql, params) => { check(sql); return db.execute(sql, params); },
    transaction: (fn) => db.transaction((tx) => fn(withOneByOneBatches({
      dialect: tx.dialect,
      query: async (sql, params) => { check(sql); return tx.query(sql, params); },
      execute: async (sql, params) => { check(sql); return tx.execute(sql, params); },
    }))),
    close: () => db.close(),
  };
  return { db: wrapped, failWhen: (match) => { failing = match; } };
}

function suite(target: SqlTarget): void {
  describe(`audit atomicity on ${target.name}`, () => {
    let h: Harness;
    let faults: ReturnType<typeof faultyDatabase>;
    let operatorToken: string;
    const device = 'audit-dev-1';
    let deviceKey: { seed: Uint8Array; csrPem: string };

    const inject = async (method: 'GET' | 'POST', url: string, options: { token?: string; body?: unknown; headers?: Record<string, string> } = {}) => {
      const response = await h.cp.app.inject({
        method, url,
        headers: { ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }), 'content-type': 'application/json', ...(options.headers ?? {}) },
        ...(options.body === undefined ? {} : { payload: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) }),
      });
      return { status: response.statusCode, json: () => response.json() as Record<string, any>, text: response.body };
    };
    const createCommand = (key?: string) => inject('POST', '/v1/commands', {
      token: operatorToken, body: { device_id: device, opcode: 'EXEC_PING_KERNEL', args: {} }, ...(key === undefined ? {} : { headers: { 'idempotency-key': key } }),
    });
    const chain = async (): Promise<AuditEntry[]> => h.cp.auditStore.scan(1, 10_000);
    const entriesOf = (entries: readonly AuditEntry[], commandId: string): AuditEntry[] => entries.filter((e) => e.subject === `command:${commandId}`);

    before(async () => {
      const faultyTarget: SqlTarget = { name: target.name, open: async (dir) => (faults = faultyDatabase(await target.open(dir))).db, cleanup: () => target.cleanup() };
      h = await makeHarness(faultyTarget);
      await h.cp.auth.users.add({ name: 'root', role: 'admin', password: adminPassword, nowMs: h.clock.nowMs() });
      await h.cp.auth.users.add({ name: 'op', role: 'operator', password: operatorPassword, nowMs: h.clock.nowMs() });
      operatorToken = (await h.cp.auth.login('op', operatorPassword)).token;
      deviceKey = await makeDeviceKey(device);
      const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId: device });
      await h.cp.devices.enroll({ deviceId: device, token, csrPem: deviceKey.csrPem });
    });
    after(async () => {
      await h.close();
      await target.cleanup();
    });

    it('refuses a login with a lone surrogate (API_LOGIN_NOT_UNICODE) and audits it as a failed login with the name escaped', async () => {
      await assert.rejects(h.cp.auth.login(loneSurrogateName, 'any password at all'), refusedWith('API_LOGIN_NOT_UNICODE'));
      await assert.rejects(h.cp.auth.login('op', 'password \udc00'), refusedWith('API_LOGIN_NOT_UNICODE'));
      // A well-formed name whose cut at 128 characters would split a surrogate pair.
      const longName = `${'a'.repeat(127)}\u{1F600}`;
      await assert.rejects(h.cp.auth.login(longName, 'any password at all'), refusedWith('API_LOGIN_FAILED'));
      const failed = (await chain()).filter((e) => e.kind === 'auth.login_failed').slice(-3);
      assert.deepEqual(failed.map((e) => [e.subject, e.payload]), [
        ['user:\\ud800x', { reason: 'not_unicode' }], ['user:op', { reason: 'not_unicode' }], [`user:${'a'.repeat(127)}`, {}],
      ]);
      // Over HTTP it is a typed 400 (the body parser may refuse the lone surrogate first), never a 5xx.
      const http = await inject('POST', '/v1/auth/login', { body: '{"name":"\\ud800x","password":"any password at all"}' });
      assert.equal(http.status, 400, http.text);
      assert.ok(['API_LOGIN_NOT_UNICODE', 'API_BAD_JSON'].includes(http.json().error.code as string), http.text);
      assert.equal((await h.cp.context.audit.verify()).ok, true);
    });

    it('gives every operator command created among lone-surrogate logins and unhashable appends its command.created (issue 16.1)', async () => {
      const rounds = 24;
      const work: Array<Promise<unknown>> = [];
      const creates: Array<Promise<{ status: number; json: () => Record<string, any>; text: string }>> = [];
      const unhashable: Array<Promise<unknown>> = [];
      for (let i = 0; i < rounds; i += 1) {
        creates.push(createCommand(`concurrent-${target.name}-${i}`));
        work.push(h.cp.auth.login(loneSurrogateName, 'any password at all').catch((error: unknown) => assert.ok(SdcError.is(error, 'API_LOGIN_NOT_UNICODE'))));
        // The original fault: an entry that cannot be hashed, queued with the others.
        unhashable.push(h.cp.context.audit.append({ kind: 'auth.login_failed', actor: 'anonymous', subject: 'user:\ud800x', payload: {} })
          .then(() => assert.fail('an entry that cannot be hashed was stored'), (error: unknown) => assert.ok(SdcError.is(error, 'AUDIT_ENTRY_INVALID'), String(error))));
      }
      const answers = await Promise.all(creates);
      await Promise.all(work);
      await Promise.all(unhashable);
      assert.deepEqual(answers.map((a) => a.status), answers.map(() => 201), answers.map((a) => a.text).join('\n'));
      const entries = await chain();
      for (const answer of answers) {
        assert.deepEqual(entriesOf(entries, answer.json().id as string).map((e) => e.kind), ['command.created']);
      }
      assert.equal((await h.cp.context.audit.verify()).ok, true);
    });

    it('answers a committed create as created when every step after the commit fails, and a retry with its key returns it (issue 18.4)', async () => {
      // After the commit: the chain append and the read-back fail.
      faults.failWhen((sql) => isChainAppend(sql) || sql.startsWith('SELECT * FROM commands WHERE id = ?'));
      const created = await createCommand(`after-commit-${target.name}`);
      faults.failWhen(undefined);
      assert.equal(created.status, 201, created.text);
      const command = created.json();
      assert.deepEqual([command.state, command.device_id, command.history.length], ['queued', device, 1]);
      assert.equal(command.signed.id, command.id);
      assert.deepEqual(entriesOf(await chain(), command.id as string), [], 'the chain append failed: the entry waits in the outbox');
      assert.equal(await h.cp.auditStore.recordedCount(), 1);

      const retry = await createCommand(`after-commit-${target.name}`);
      assert.equal(retry.status, 200, retry.text);
      assert.equal(retry.json().id, command.id);
      await h.cp.context.settleAudit();
      assert.deepEqual(entriesOf(await chain(), command.id as string).map((e) => e.kind), ['command.created']);
      assert.equal(await h.cp.auditStore.recordedCount(), 0);
    });

    it('chains at the next start every entry a crash left between commit and chain append: one per command state change (issue 18.3)', async () => {
      // Every chain append fails from here on, as if the process died right after each commit.
      faults.failWhen(isChainAppend);
      const ids: string[] = [];
      for (let i = 0; i < 4; i += 1) {
        const created = await createCommand();
        assert.equal(created.status, 201, created.text);
        ids.push(created.json().id as string);
      }
      const [delivered, succeeded] = ids as [string, string];
      const t0 = h.clock.nowMs();
      const [row] = await h.db.query<{ device_seq: number }>('SELECT device_seq FROM commands WHERE id = ?', [succeeded]);
      const progress = (commandId: string, event: 'deliver' | 'ack' | 'start', at: number) =>
        progressEntry({ command: { id: commandId, device_id: device, device_seq: Number(row!.device_seq) }, event, atMs: at, seed: deviceKey.seed });
      await h.bus.append(streamNames.events, progress(delivered, 'deliver', t0 + 1));
      for (const [event, at] of [['deliver', 2], ['ack', 3], ['start', 4]] as const) await h.bus.append(streamNames.events, progress(succeeded, event, t0 + at));
      const frame = deviceFrame({ deviceId: device, seed: deviceKey.seed, type: 'COMMAND_RESULT', ts: t0 + 5,
        body: { command_id: succeeded, device_seq: Number(row!.device_seq), status: 'succeeded', output: { ok: true }, finished_at: t0 + 5 } });
      await h.bus.append(streamNames.events, encodeBusEntry('command_result', { command_id: succeeded, device_id: device, gateway_id: 'gw1', at_ms: t0 + 6, frame }));
      await h.cp.eventsConsumer.drain();
      const alertId = await h.cp.events.raiseAlert({ deviceId: device, kind: 'test', severity: 'warning', message: 'crash window', atMs: t0, detail: {}, actor: 'system' });
      await h.cp.alerts.acknowledge({ alertId, actor: 'op' });
      assert.equal((await h.cp.commands.get(succeeded)).state, 'succeeded');
      // A device paired, enrolled, paired and enrolled again (superseding the first certificate), and revoked.
      const second = 'audit-dev-2';
      const secondKey = await makeDeviceKey(second);
      for (let round = 0; round < 2; round += 1) {
        const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId: second });
        await h.cp.devices.enroll({ deviceId: second, token, csrPem: secondKey.csrPem });
      }
      const serials = (await h.db.query<{ serial: string }>('SELECT serial FROM device_certificates WHERE device_id = ? ORDER BY issued_at ASC, serial ASC', [second]))
        .map((r) => r.serial);
      const revoked = await h.cp.devices.revoke({ actor: 'root', deviceId: second, reason: 'keyCompromise' });
      assert.ok(await h.cp.auditStore.recordedCount() >= 4 + 5 + 2 + 5, 'the entries wait in the outbox');

      // The restart: a new control plane on the same database chains them when it starts.
      faults.failWhen(undefined);
      const restarted = await createControlPlane({
        materials: h.materials, stores: { sql: h.db, bus: h.bus, kv: h.cp.context.kv }, clock: h.clock, random: systemRandom, scheduler: systemScheduler,
        gatewayUrls: ['wss://127.0.0.1:9443/v1/agent'], scryptParams: { N: 1024, r: 8, p: 1 }, persistJwtKeys: false,
      });
      await restarted.start();
      await restarted.stop();
      assert.equal(await restarted.auditStore.recordedCount(), 0);
      const entries = await chain();
      const commands = await h.db.query<{ id: string }>('SELECT id FROM commands');
      for (const { id } of commands) {
        const changes = await h.db.query<{ state: string }>('SELECT state FROM command_events WHERE command_id = ? ORDER BY id ASC', [id]);
        const kinds = entriesOf(entries, id).map((e) => e.kind);
        assert.equal(kinds.filter((k) => k === 'command.created').length, 1, `${id}: ${kinds.join(',')}`);
        assert.equal(kinds.length, changes.length, `${id}: one entry per state change (${changes.map((c) => c.state).join(',')} vs ${kinds.join(',')})`);
      }
      // deliver is the gateway's word (command.state); ack and start the device's signed frames (command.ack).
      assert.deepEqual(entriesOf(entries, succeeded).map((e) => e.kind), ['command.created', 'command.state', 'command.ack', 'command.ack', 'command.result']);
      assert.equal(entriesOf(entries, succeeded).at(-1)?.payload.frame, frame);
      assert.deepEqual(entries.filter((e) => e.payload.alert_id === alertId).map((e) => e.kind), ['alert.raised', 'alert.acknowledged']);
      const deviceEntries = entries.filter((e) => e.subject === `device:${second}`);
      assert.deepEqual(deviceEntries.map((e) => e.kind), ['pairing.token_created', 'device.enrolled', 'pairing.token_created', 'device.enrolled', 'device.revoked']);
      assert.equal(serials.length, 2);
      assert.deepEqual(deviceEntries[3]!.payload.superseded, [deviceEntries[1]!.payload.serial], 'the second enrollment superseded the first certificate');
      assert.deepEqual(deviceEntries[4]!.payload, { serial: revoked.serial, reason: 'keyCompromise', crl_number: revoked.crl_number });
      assert.equal((await restarted.context.audit.verify()).ok, true);
      // The device's presence key is untouched by any of this.
      assert.equal(await h.cp.context.kv.get(kvKeys.presence(device)), null);
    });
  });
}

suite(sqlJsTarget);
const mysqlUrl = process.env['MYSQL_URL'];
if (mysqlUrl !== undefined && mysqlUrl !== '') suite(mysqlTarget(mysqlUrl));
else describe('audit atomicity on mysql', { skip: 'MYSQL_URL is not set; the same suite runs on sql.js above' }, () => {});
