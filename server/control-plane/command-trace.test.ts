import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { decodeBusEntry, encodeBusEntry } from '../bus-contract/entries.js';
import { gatewayCommandStream, kvKeys, streamNames } from '../bus-contract/streams.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { signApproval } from '../../core/protocol/approvals.js';
import { parsePolicy } from '../../core/protocol/policy.js';
import { parseTraceparent } from '../../core/trace/trace-context.js';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

/**
 * A command's trace (issue 12, "Structured logs") survives every way it leaves the control plane
 * again after its creation: each `deliver` entry carries the traceparent of the API request that
 * created it (migration 017) when the redelivery sweep re-sends it, when the device's presence
 * redelivers it, when an operator retries it from the dead letters, and when approvals release
 * it. The `command.created` (or `command.approval_requested`) audit entry names it too. On sql.js
 * + embedded kv, and MySQL + Redis when set.
 */

const provider = createNodeEd25519Provider();
const password = 'correct horse battery staple';
const device = 'trace-dev-1';
const policy = parsePolicy({
  version: 1,
  rules: [
    { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
    { id: 'ops', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_GET_STATUS', 'EXEC_PING_KERNEL'], devices: '*' },
    { id: 'one-admin', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_LOCK_SCREEN'], devices: '*', conditions: { approval: { count: 1, roles: ['admin'] } } },
  ],
});

const newTraceparent = (): string => `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;

function suite(pair: StorePair): void {
  describe(`a command's trace on every dispatch path on ${pair.name}`, () => {
    let h: Harness;
    const tokens: Record<string, string> = {};
    const adminSeed = new Uint8Array(randomBytes(32));
    let adminKid = '';
    const stream = gatewayCommandStream('gw1');

    const call = async (method: 'GET' | 'POST' | 'PUT', url: string, token: string, body?: unknown, headers: Record<string, string> = {}) => {
      const response = await h.cp.app.inject({ method, url, headers: { authorization: `Bearer ${token}`, ...headers }, ...(body === undefined ? {} : { payload: body as object }) });
      return { status: response.statusCode, traceparent: response.headers.traceparent as string | undefined, json: () => response.json() as Record<string, any>, text: response.body };
    };
    /** The traceparent of every `deliver` entry of `commandId` on gw1's stream, in order. */
    const deliveries = async (commandId: string): Promise<Array<string | undefined>> => {
      const group = `probe-${randomBytes(4).toString('hex')}`;
      await h.bus.ensureGroup(stream, group, '0');
      const entries = await h.bus.readGroup(stream, group, 'probe', { count: 10_000 });
      return entries.map((entry) => decodeBusEntry(entry.fields)).flatMap((decoded) => {
        assert.equal(decoded.kind, 'deliver');
        const data = decoded.data as { command: { id: string }; traceparent?: string };
        return data.command.id === commandId ? [data.traceparent] : [];
      });
    };
    const auditEntry = async (kind: string, commandId: string) => ((await h.cp.auditStore.scan(1, 10_000)) as Array<{ kind: string; subject: string; payload: Record<string, unknown> }>)
      .find((entry) => entry.kind === kind && entry.subject === `command:${commandId}`);
    /** Creates a command through the API with a caller's traceparent; returns its id and the traceparent the answer named. */
    const create = async (opcode: string, token = tokens.operator!): Promise<{ id: string; traceparent: string; body: Record<string, any> }> => {
      const caller = newTraceparent();
      const created = await call('POST', '/v1/commands', token, { device_id: device, opcode, args: {} }, { traceparent: caller });
      assert.equal(created.status, 201, created.text);
      assert.equal(parseTraceparent(created.traceparent)?.traceId, parseTraceparent(caller)?.traceId);
      return { id: created.json().id as string, traceparent: created.traceparent!, body: created.json() };
    };

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }), controlPlane: { policy, redispatchIntervalMs: 1_000 } });
      await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', ?, ?)", [device, h.clock.nowMs(), base64urlFromBytes(new Uint8Array(32))]);
      await h.cp.context.kv.set(kvKeys.presence(device), JSON.stringify({ gateway_id: 'gw1' }));
      for (const role of ['admin', 'operator'] as const) {
        await h.cp.auth.users.add({ name: role, role, password, nowMs: h.clock.nowMs() });
        const login = await h.cp.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { name: role, password } });
        tokens[role] = login.json().token as string;
      }
      const registered = await call('PUT', '/v1/users/me/signing-key', tokens.admin!, { public_key: base64urlFromBytes(provider.publicKeyFromSeed(adminSeed)), current_password: password });
      assert.equal(registered.status, 200, registered.text);
      adminKid = registered.json().kid as string;
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('the first dispatch, the redelivery sweep and the presence redelivery carry the request\'s traceparent', async () => {
      const { id, traceparent } = await create('EXEC_GET_STATUS');
      assert.equal((await auditEntry('command.created', id))?.payload.traceparent, traceparent, 'the audit names the trace');
      assert.deepEqual(await deliveries(id), [traceparent]);
      h.clock.advance(1_001);
      assert.ok((await h.cp.commands.redispatchDue()) >= 1);
      await h.cp.commands.redeliver(device, 'gw1');
      assert.deepEqual(await deliveries(id), [traceparent, traceparent, traceparent]);
    });

    it('a dead-letter retry carries it', async () => {
      const { id, traceparent } = await create('EXEC_PING_KERNEL');
      for (const event of ['deliver', 'dead_letter'] as const) {
        await h.bus.append(streamNames.events, encodeBusEntry('command_progress', {
          command_id: id, device_id: device, gateway_id: 'gw1', at_ms: h.clock.nowMs(), event, attempt: 5, traceparent,
          ...(event === 'dead_letter' ? { detail: 'no ACK after 5 attempts' } : {}),
        }));
      }
      await h.cp.eventsConsumer.drain();
      assert.equal((await h.cp.commands.get(id)).state, 'dead_lettered');
      const retried = await call('POST', '/v1/dead-letters/retry', tokens.operator!, { ids: [id] });
      assert.equal(retried.status, 200, retried.text);
      assert.equal(retried.json().results[0].outcome, 'retried');
      const sent = await deliveries(id);
      assert.equal(sent.length, 2);
      assert.deepEqual(sent, [traceparent, traceparent]);
    });

    it('a command held for approval is released under the trace of the request that created it', async () => {
      const { id, traceparent, body } = await create('EXEC_LOCK_SCREEN');
      assert.equal(body.state, 'pending_approval');
      assert.equal((await auditEntry('command.approval_requested', id))?.payload.traceparent, traceparent);
      assert.deepEqual(await deliveries(id), []);
      const commandSha256 = body.approval.command_sha256 as string;
      const expiresAtMs = body.expires_at_ms as number;
      const signature = signApproval({
        statement: { command_id: id, command_sha256: commandSha256, decision: 'approve', approver: 'admin', kid: adminKid, expires_at: expiresAtMs }, seed: adminSeed, provider,
      });
      // The approver's request has a trace of its own; the release still dispatches under the creator's.
      const approved = await call('POST', `/v1/commands/${id}/approve`, tokens.admin!, { command_sha256: commandSha256, kid: adminKid, expires_at_ms: expiresAtMs, signature }, { traceparent: newTraceparent() });
      assert.equal(approved.status, 200, approved.text);
      assert.equal(approved.json().released, true);
      assert.deepEqual(await deliveries(id), [traceparent]);
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('a command\'s trace on MySQL + Redis', () => { it.skip(skipped, () => undefined); });
