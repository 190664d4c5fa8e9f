// Multi-approval through the whole system (issue 12): a real agent over loopback TLS, a command
// that the policy allows only with two approvals. It waits pending_approval and never reaches the
// device until two distinct approvers signed; then the device runs it, and what it ran carries
// both approvals under the control plane's signature. On the embedded stores always, and on Redis
// + MySQL when REDIS_URL and MYSQL_URL are set (a database of its own: the policy below must not
// leak into other runs sharing the server).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createConnection } from 'mysql2/promise';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { signApproval } from '../../core/protocol/approvals.js';
import { parsePolicy } from '../../core/protocol/policy.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { httpsJson } from '../../runtime/https-json.js';
import { systemClock } from '../../runtime/system.js';
import { historyInOrder, pairAgent, startE2e, storeTargets, waitOnline, waitTerminal, type E2eSystem, type StoreTarget } from './support/e2e-harness.js';

const provider = createNodeEd25519Provider();
const password = 'approvals e2e password';

const policy = parsePolicy({
  version: 1,
  rules: [
    { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
    { id: 'lock-two-eyes', effect: 'allow', roles: ['approver'], opcodes: ['EXEC_LOCK_SCREEN'], devices: '*', conditions: { approval: { count: 2, roles: ['approver', 'admin'] } } },
  ],
});

/** The MySQL target on a database of its own (created here, dropped after). */
async function privateTarget(target: StoreTarget): Promise<{ target: StoreTarget; drop: () => Promise<void> }> {
  if (target.mysqlUrl === undefined) return { target, drop: async () => undefined };
  const name = `sdc_e2e_appr_${randomBytes(4).toString('hex')}`;
  const admin = await createConnection({ uri: target.mysqlUrl });
  await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  await admin.end();
  const url = new URL(target.mysqlUrl);
  url.pathname = `/${name}`;
  return {
    target: { ...target, mysqlUrl: url.toString() },
    drop: async () => {
      const dropper = await createConnection({ uri: target.mysqlUrl! });
      await dropper.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await dropper.end();
    },
  };
}

for (const shared of storeTargets()) {
  describe(`approvals end to end on ${shared.name} stores`, () => {
    let system: E2eSystem;
    let drop: () => Promise<void> = async () => undefined;
    const tokens = new Map<string, string>();
    const seeds = new Map<string, Uint8Array>();
    const kids = new Map<string, string>();

    const call = async <T>(method: 'GET' | 'POST' | 'PUT', path: string, token: string, body?: unknown): Promise<{ status: number; body: T }> =>
      httpsJson<T>({ method, url: new URL(path, system.apiUrl), caPem: system.materials.rootCaPem, token, timeoutMs: 60_000, ...(body === undefined ? {} : { body }) });

    before(async () => {
      const own = await privateTarget(shared);
      drop = own.drop;
      system = await startE2e({ target: own.target });
      const controlPlane = system.deployment.controlPlane!;
      assert.equal(await controlPlane.policy.seed(policy), true, 'a fresh database takes the policy');
      for (const [name, role] of [['req', 'approver'], ['ap1', 'approver'], ['ap2', 'admin']] as const) {
        await controlPlane.auth.users.add({ name, role, password, nowMs: systemClock.nowMs() });
        tokens.set(name, (await system.api<{ token: string }>('POST', '/v1/auth/login', { name, password }, { token: null })).token);
        seeds.set(name, new Uint8Array(randomBytes(32)));
        const key = await call<{ kid: string }>('PUT', '/v1/users/me/signing-key', tokens.get(name)!, { public_key: base64urlFromBytes(provider.publicKeyFromSeed(seeds.get(name)!)), current_password: password });
        assert.equal(key.status, 200, JSON.stringify(key.body));
        kids.set(name, key.body.kid);
      }
    });
    after(async () => {
      await system?.stop();
      await drop();
    });

    const approve = async (by: string, command: { id: string; expires_at_ms: number; approval: { command_sha256: string } }) => {
      const statement = { command_id: command.id, command_sha256: command.approval.command_sha256, decision: 'approve' as const, approver: by, kid: kids.get(by)!, expires_at: command.expires_at_ms };
      return call<{ released: boolean }>('POST', `/v1/commands/${command.id}/approve`, tokens.get(by)!, {
        command_sha256: statement.command_sha256, kid: statement.kid, expires_at_ms: statement.expires_at, signature: signApproval({ statement, seed: seeds.get(by)!, provider }),
      });
    };

    it('the device runs the command only after two distinct approvers signed, and the command it ran carries both', async () => {
      const deviceId = `e2e-appr-${system.tag}`;
      await pairAgent(system, deviceId);
      await waitOnline(system, [deviceId]);
      type Created = { id: string; state: string; expires_at_ms: number; approval: { command_sha256: string } };
      const created = await call<Created>('POST', '/v1/commands', tokens.get('req')!, { device_id: deviceId, opcode: 'EXEC_LOCK_SCREEN', args: {} });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.state, 'pending_approval');

      const first = await approve('ap1', created.body);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.equal(first.body.released, false);
      // The device is online and idle: had the command left the control plane it would run in
      // milliseconds. One second later it is still pending, with no delivery in its history.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const waiting = await call<{ state: string; history: Array<{ state: string }> }>('GET', `/v1/commands/${created.body.id}`, tokens.get('ap1')!);
      assert.equal(waiting.body.state, 'pending_approval');
      assert.deepEqual(waiting.body.history.map((h) => h.state), ['pending_approval']);

      const second = await approve('ap2', created.body);
      assert.equal(second.body.released, true, JSON.stringify(second.body));
      const record = await waitTerminal(system, created.body.id);
      assert.equal(record.state, 'succeeded', JSON.stringify(record));
      const { states, ordered } = historyInOrder(record);
      assert.deepEqual(states, ['pending_approval', 'queued', 'sent', 'ack_received', 'executing', 'succeeded']);
      assert.ok(ordered);
      const full = await system.api<{ signed: { approval?: { requested_by: string; approvals: Array<{ approver: string }> } } }>('GET', `/v1/commands/${created.body.id}`);
      assert.equal(full.signed.approval?.requested_by, 'req');
      assert.deepEqual(full.signed.approval?.approvals.map((a) => a.approver), ['ap1', 'ap2']);
      const audit = await system.api<{ ok: boolean }>('GET', '/v1/audit/verify');
      assert.equal(audit.ok, true);
    });
  });
}
