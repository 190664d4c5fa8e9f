// Each bad input of issue 3 over the real sockets and API: it gets a typed error (HTTP status and
// code, or an ERROR / AUTH_ERROR frame), it is logged with a trace id, the services keep running,
// and commands accepted around it still reach succeeded.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT, importJWK } from 'jose';
import { ensureEnrolled } from '../../agent/enrollment.js';
import { deploymentPaths } from '../../server/materials/materials.js';
import { systemClock, systemRandom } from '../../runtime/system.js';
import { JwtAuthority } from '../../trust/jwt-authority.js';
import { JWT_ALG, JWT_TYP } from '../../trust/jwt-keys.js';
import { FileJwtKeyStore } from '../../trust/jwt-file-key-store.js';
import { MemoryJwtKeyStore } from '../../trust/jwt-key-store.js';
import {
  agentDir, createCommand, eventually, pairAgent, rawApi, restartAgent, startE2e, storeTargets, waitOnline, waitTerminal,
  type CommandRecord, type E2eSystem,
} from './support/e2e-harness.js';
import { issueUnenrolledDevice, RawDevice, type DeviceCredentials } from './support/raw-device.js';

for (const target of storeTargets()) {
  describe(`bad input on ${target.name} stores`, () => {
    let system: E2eSystem;
    let good: string;
    let spare: string;
    let raw: DeviceCredentials;
    let device: RawDevice;
    const acceptedBefore: CommandRecord[] = [];

    /** The refusal was logged with this code and a trace id. */
    const assertLogged = async (code: string) => {
      await eventually(`a log line with ${code} and a trace id`, () => (system.logs.withCode(code).length > 0 ? true : undefined), 5_000);
    };
    /** An API refusal: status, code, a trace id in the body, and the same code in the log. */
    const assertApiRefusal = async (answer: Awaited<ReturnType<typeof rawApi>>, status: number, code: string) => {
      assert.equal(answer.status, status, JSON.stringify(answer.body));
      assert.equal(answer.body.error?.code, code, JSON.stringify(answer.body));
      assert.match(answer.body.error?.trace_id ?? '', /^[0-9a-f]{32}$/);
      await assertLogged(code);
      const line = system.logs.lines.find((l) => l.code === code && l.traceId === answer.body.error?.trace_id);
      assert.ok(line, `no log line with ${code} and trace id ${answer.body.error?.trace_id}`);
    };

    before(async () => {
      system = await startE2e({ target });
      good = `e2e-bad-${system.tag}-good`;
      spare = `e2e-bad-${system.tag}-spare`;
      await Promise.all([pairAgent(system, good), pairAgent(system, spare)]);
      // A device enrolled through the real API whose frames the test writes by hand.
      const rawId = `e2e-bad-${system.tag}-raw`;
      const { token } = await system.api<{ token: string }>('POST', `/v1/devices/${rawId}/pairing-tokens`, {});
      const { identity } = await ensureEnrolled({
        dir: agentDir(system, rawId), serverUrl: system.apiUrl, deviceId: rawId, pairingToken: token, caPem: system.materials.rootCaPem,
        random: systemRandom, clock: systemClock,
      });
      raw = { deviceId: rawId, certPem: identity.certPem + identity.chainPem, keyPem: identity.keyPem, seed: identity.seed };
      await waitOnline(system, [good, spare]);
      // Accepted before any bad input; they must all still succeed at the end.
      for (let i = 0; i < 3; i++) acceptedBefore.push(await createCommand(system, good, 'EXEC_PING_KERNEL'));
      device = await RawDevice.connect(system.deployment.gatewayUrl, raw, system.materials);
      await device.waitReady();
    });
    after(async () => {
      device?.close();
      await system?.stop();
    });

    it('answers a malformed frame with ERROR PROTO_JSON_SYNTAX and keeps the session', async () => {
      device.sendRaw('{"v":1,"type":');
      assert.equal(await device.nextErrorCode(1), 'PROTO_JSON_SYNTAX');
      await assertLogged('PROTO_JSON_SYNTAX');
      assert.equal(device.closed, undefined);
    });

    it('answers an oversized frame with ERROR PROTO_FRAME_TOO_LARGE', async () => {
      device.sendRaw(JSON.stringify({ v: 1, type: 'HEARTBEAT', pad: 'x'.repeat(70 * 1024) }));
      assert.equal(await device.nextErrorCode(2), 'PROTO_FRAME_TOO_LARGE');
      await assertLogged('PROTO_FRAME_TOO_LARGE');
      assert.equal(device.closed, undefined);
    });

    it('answers a frame with a bad signature with ERROR CRYPTO_SIGNATURE_INVALID', async () => {
      const frame = JSON.parse(Buffer.from(device.heartbeatFrame()).toString('utf8')) as { sig: { value: string } };
      const first = frame.sig.value[0] === 'A' ? 'B' : 'A';
      frame.sig.value = first + frame.sig.value.slice(1);
      device.sendRaw(JSON.stringify(frame));
      assert.equal(await device.nextErrorCode(3), 'CRYPTO_SIGNATURE_INVALID');
      await assertLogged('CRYPTO_SIGNATURE_INVALID');
      assert.equal(device.closed, undefined);
    });

    it('answers a replayed frame with ERROR PROTO_REPLAY', async () => {
      const frame = device.heartbeatFrame();
      device.sendRaw(frame);
      device.sendRaw(frame);
      assert.equal(await device.nextErrorCode(4), 'PROTO_REPLAY');
      await assertLogged('PROTO_REPLAY');
      // Four refusals stay under the session's limit: the session and its presence survive.
      assert.equal(device.closed, undefined);
      assert.equal((await system.api<{ online: boolean }>('GET', `/v1/devices/${raw.deviceId}`)).online, true);
    });

    it('refuses a certificate from our CA for a device that was never enrolled with AUTH_ERROR', async () => {
      const stranger = await issueUnenrolledDevice(system.materials, `e2e-bad-${system.tag}-stranger`);
      const client = await RawDevice.connect(system.deployment.gatewayUrl, stranger, system.materials);
      try {
        assert.equal(await client.authError(), 'GATEWAY_DEVICE_UNKNOWN');
        await eventually('the refused connection closed', () => client.closed, 5_000);
        assert.equal(client.closed?.code, 1008);
        assert.equal(client.ready, false);
        await assertLogged('GATEWAY_DEVICE_UNKNOWN');
      } finally {
        client.close();
      }
    });

    it('refuses a revoked certificate with AUTH_ERROR TRUST_CERT_REVOKED', async () => {
      const agent = system.agents.get(spare)!;
      const identity = agent.identity;
      await agent.stop();
      system.agents.delete(spare);
      const revoked = await system.api<Record<string, unknown>>('POST', `/v1/devices/${spare}/revoke`, { reason: 'keyCompromise' });
      assert.ok(revoked);
      const client = await RawDevice.connect(system.deployment.gatewayUrl,
        { deviceId: spare, certPem: identity.certPem + identity.chainPem, keyPem: identity.keyPem, seed: identity.seed }, system.materials);
      try {
        assert.equal(await client.authError(), 'TRUST_CERT_REVOKED');
        await eventually('the refused connection closed', () => client.closed, 5_000);
        assert.equal(client.ready, false);
        await assertLogged('TRUST_CERT_REVOKED');
      } finally {
        client.close();
      }
      // Commands to a revoked device are refused at the API.
      const answer = await rawApi(system, 'POST', '/v1/commands', { token: system.token, body: { device_id: spare, opcode: 'EXEC_PING_KERNEL', args: {} } });
      await assertApiRefusal(answer, 403, 'API_DEVICE_REVOKED');
    });

    it('refuses an expired JWT and a JWT for another audience with 401', async () => {
      // The control plane's own key ring, so only the claim under test is wrong.
      // Read as the control plane reads it: the newest generation file (decision 0017).
      const ring = await new FileJwtKeyStore({ path: deploymentPaths(system.dataDir).jwtKeysPath }).load();
      assert.ok(ring !== undefined, 'the control plane wrote its key ring');
      const active = ring.keys.find((k) => k.retiredAtMs === null)!;
      const nowS = Math.floor(systemClock.nowMs() / 1000);
      const expired = await new SignJWT({ role: 'admin' })
        .setProtectedHeader({ alg: JWT_ALG, kid: active.kid, typ: JWT_TYP })
        .setIssuer('sdc-control-plane').setAudience('sdc-api').setSubject(`e2e-admin-${system.tag}`)
        .setIssuedAt(nowS - 7200).setExpirationTime(nowS - 3600).setJti('expired-e2e')
        .sign(await importJWK(active.privateJwk, JWT_ALG));
      await assertApiRefusal(await rawApi(system, 'GET', '/v1/devices', { token: expired }), 401, 'JWT_EXPIRED');

      const store = new MemoryJwtKeyStore();
      await store.save(ring);
      const otherAudience = await JwtAuthority.create({ store, clock: systemClock, issuer: 'sdc-control-plane', audience: 'another-api', random: systemRandom });
      const token = await otherAudience.issue({ sub: `e2e-admin-${system.tag}`, role: 'admin' });
      assert.equal(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid, active.kid, 'same key, other audience');
      await assertApiRefusal(await rawApi(system, 'GET', '/v1/devices', { token }), 401, 'JWT_BAD_AUDIENCE');
    });

    it('refuses an unauthenticated API call with 401 and has no unauthenticated presence webhook', async () => {
      await assertApiRefusal(await rawApi(system, 'GET', '/v1/devices'), 401, 'API_UNAUTHENTICATED');
      await assertApiRefusal(await rawApi(system, 'POST', '/v1/commands', { body: { device_id: good, opcode: 'EXEC_PING_KERNEL', args: {} } }), 401, 'API_UNAUTHENTICATED');
      // Presence travels on the bus between services; nothing over HTTP can set it.
      const body = { device_id: good, online: false };
      await assertApiRefusal(await rawApi(system, 'POST', '/v1/presence', { body }), 404, 'API_NOT_FOUND');
      await assertApiRefusal(await rawApi(system, 'POST', '/v1/webhooks/presence', { body }), 404, 'API_NOT_FOUND');
      assert.equal((await system.api<{ online: boolean }>('GET', `/v1/devices/${good}`)).online, true);
    });

    it('refuses an unknown opcode with 400 PROTO_UNKNOWN_OPCODE', async () => {
      const answer = await rawApi(system, 'POST', '/v1/commands', { token: system.token, body: { device_id: good, opcode: 'EXEC_SELF_DESTRUCT', args: {} } });
      await assertApiRefusal(answer, 400, 'PROTO_UNKNOWN_OPCODE');
      const malformedOpcode = await rawApi(system, 'POST', '/v1/commands', { token: system.token, body: { device_id: good, opcode: 'rm -rf /', args: {} } });
      await assertApiRefusal(malformedOpcode, 400, 'API_VALIDATION');
      const listed = await system.api<{ items: CommandRecord[] }>('GET', `/v1/commands?device_id=${good}&limit=100`);
      assert.ok(listed.items.every((c) => c.opcode !== 'EXEC_SELF_DESTRUCT'), 'a refused command is not stored');
    });

    it('expires a command whose TTL runs out while its device is offline, and never runs it', async () => {
      const agent = system.agents.get(good)!;
      await agent.stop();
      system.agents.delete(good);
      await waitOnline(system, [good], false);
      const command = await createCommand(system, good, 'EXEC_LOCK_SCREEN', {}, { ttlMs: 500 });
      assert.equal(command.state, 'queued');
      const record = await waitTerminal(system, command.id, 15_000);
      assert.equal(record.state, 'expired', JSON.stringify(record));
      assert.deepEqual(record.history.map((h) => h.state), ['queued', 'expired']);
      // The device comes back: the expired command is not delivered, new ones are.
      await restartAgent(system, good);
      await waitOnline(system, [good]);
      const after = await createCommand(system, good, 'EXEC_PING_KERNEL');
      assert.equal((await waitTerminal(system, after.id)).state, 'succeeded');
      const final = await system.api<CommandRecord>('GET', `/v1/commands/${command.id}`);
      assert.deepEqual(final.history.map((h) => h.state), ['queued', 'expired'], 'never sent after the device came back');
    });

    it('lost no accepted command, and the gateway and API still serve', async () => {
      for (const command of acceptedBefore) {
        const record = await waitTerminal(system, command.id);
        assert.equal(record.state, 'succeeded', JSON.stringify(record));
      }
      const fresh = await createCommand(system, good, 'EXEC_GET_STATUS');
      assert.equal((await waitTerminal(system, fresh.id)).state, 'succeeded');
      // The raw session took four refusals and is still served: its heartbeats are echoed, none refused since.
      const echoes = device.frames.filter((f) => f.type === 'HEARTBEAT').length;
      await eventually('another heartbeat echo', () => (device.frames.filter((f) => f.type === 'HEARTBEAT').length > echoes ? true : undefined), 5_000);
      assert.deepEqual(device.errorCodes(), ['PROTO_JSON_SYNTAX', 'PROTO_FRAME_TOO_LARGE', 'CRYPTO_SIGNATURE_INVALID', 'PROTO_REPLAY']);
      assert.equal(device.closed, undefined);
      const audit = await system.api<{ ok: boolean }>('GET', '/v1/audit/verify');
      assert.equal(audit.ok, true, JSON.stringify(audit));
    });
  });
}
