import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { gatewayCommandStream, kvKeys, streamNames } from '../bus-contract/streams.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { deadLetterStream } from '../stores/bus/bus-port.js';
import { parseCertificate } from '../../trust/x509-provider.js';
import { deviceFrame, makeDeviceKey, makeHarness, mysqlTarget, progressEntry, sqlJsTarget, type Harness, type SqlTarget } from './test-support.js';

const adminPassword = 'correct horse battery staple';

function suite(target: SqlTarget): void {
  describe(`control plane on ${target.name}`, () => {
    let h: Harness;
    const tokens: Record<string, string> = {};
    const device = 'dev-1';
    let deviceKey: { seed: Uint8Array; csrPem: string };

    const call = async (method: 'GET' | 'POST', url: string, options: { token?: string; body?: unknown; headers?: Record<string, string> } = {}) => {
      const response = await h.cp.app.inject({
        method, url,
        headers: { ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }), ...(options.headers ?? {}) },
        ...(options.body === undefined ? {} : { payload: options.body as object }),
      });
      return { status: response.statusCode, json: () => response.json() as Record<string, any>, text: response.body, headers: response.headers };
    };

    before(async () => {
      h = await makeHarness(target);
      await h.cp.auth.users.add({ name: 'root', role: 'admin', password: adminPassword, nowMs: h.clock.nowMs() });
      deviceKey = await makeDeviceKey(device);
    });
    after(async () => {
      await h.close();
      await target.cleanup();
    });

    it('logs in, audits success and failure, and refuses a wrong password without saying which part was wrong', async () => {
      const ok = await call('POST', '/v1/auth/login', { body: { name: 'root', password: adminPassword } });
      assert.equal(ok.status, 200);
      tokens.admin = ok.json().token as string;
      const bad = await call('POST', '/v1/auth/login', { body: { name: 'root', password: 'wrong password!!' } });
      assert.equal(bad.status, 401);
      assert.equal(bad.json().error.code, 'API_LOGIN_FAILED');
      assert.match(bad.json().error.trace_id, /^[0-9a-f]{32}$/);
      const unknown = await call('POST', '/v1/auth/login', { body: { name: 'nobody', password: 'wrong password!!' } });
      assert.deepEqual(unknown.json().error.message, bad.json().error.message);
      const audit = await call('GET', '/v1/audit?limit=10', { token: tokens.admin });
      assert.deepEqual(audit.json().items.map((e: { kind: string }) => e.kind), ['auth.login', 'auth.login_failed', 'auth.login_failed']);
    });

    it('creates users through the API and enforces roles per route', async () => {
      for (const role of ['viewer', 'operator']) {
        const created = await call('POST', '/v1/users', { token: tokens.admin, body: { name: role, role, password: `${role} password 123` } });
        assert.equal(created.status, 201);
        tokens[role] = (await call('POST', '/v1/auth/login', { body: { name: role, password: `${role} password 123` } })).json().token as string;
      }
      const forbidden = await call('POST', '/v1/devices/dev-x/pairing-tokens', { token: tokens.operator, body: {} });
      assert.equal(forbidden.status, 403);
      assert.equal(forbidden.json().error.code, 'API_FORBIDDEN');
      assert.equal((await call('POST', '/v1/commands', { token: tokens.viewer, body: { device_id: device, opcode: 'EXEC_PING_KERNEL', args: {} } })).status, 403);
      assert.equal((await call('GET', '/v1/devices', { token: tokens.viewer })).status, 200);
      assert.equal((await call('GET', '/v1/audit', { token: tokens.operator })).status, 403);
    });

    it('refuses unauthenticated calls, bad tokens, wrong audiences and expired tokens', async () => {
      const none = await call('GET', '/v1/devices');
      assert.equal(none.status, 401);
      assert.equal(none.json().error.code, 'API_UNAUTHENTICATED');
      const garbage = await call('GET', '/v1/devices', { token: 'a.b.c' });
      assert.equal(garbage.status, 401);
      assert.match(garbage.json().error.code, /^JWT_/);
      const { JwtAuthority } = await import('../../trust/jwt-authority.js');
      const { MemoryJwtKeyStore } = await import('../../trust/jwt-key-store.js');
      // Signed by a key the control plane does not publish, for the right audience: refused on kid.
      const foreign = await JwtAuthority.create({ store: new MemoryJwtKeyStore(), clock: h.clock, issuer: 'sdc-control-plane', audience: 'sdc-api' });
      assert.equal((await call('GET', '/v1/devices', { token: await foreign.issue({ sub: 'root', role: 'admin' }) })).json().error.code, 'JWT_UNKNOWN_KID');
      const otherAudience = await h.cp.auth.authority.issue({ sub: 'root', role: 'admin' });
      assert.equal((await call('GET', '/v1/devices', { token: otherAudience })).status, 200);
      h.clock.advance(2 * 60 * 60 * 1000);
      const expired = await call('GET', '/v1/devices', { token: tokens.viewer });
      assert.equal(expired.status, 401);
      assert.equal(expired.json().error.code, 'JWT_EXPIRED');
      for (const role of ['admin', 'viewer', 'operator']) {
        const name = role === 'admin' ? 'root' : role;
        tokens[role] = (await call('POST', '/v1/auth/login', { body: { name, password: role === 'admin' ? adminPassword : `${role} password 123` } })).json().token as string;
      }
    });

    it('maps validation, unknown routes, bad JSON and large bodies to the error format', async () => {
      const invalid = await call('POST', '/v1/commands', { token: tokens.admin, body: { device_id: 'BAD ID', opcode: 'EXEC_PING_KERNEL', args: {} } });
      assert.equal(invalid.status, 400);
      assert.equal(invalid.json().error.code, 'API_VALIDATION');
      assert.match(invalid.json().error.message, /body\/device_id/);
      const extra = await call('POST', '/v1/auth/login', { body: { name: 'root', password: 'x', admin: true } });
      assert.equal(extra.json().error.code, 'API_VALIDATION');
      const missing = await call('GET', '/v1/nothing-here');
      assert.equal(missing.status, 404);
      assert.equal(missing.json().error.code, 'API_NOT_FOUND');
      const badJson = await h.cp.app.inject({ method: 'POST', url: '/v1/auth/login', headers: { 'content-type': 'application/json' }, payload: '{"name":' });
      assert.equal(badJson.statusCode, 400);
      assert.equal(badJson.json().error.code, 'API_BAD_JSON');
      const large = await call('POST', '/v1/auth/login', { body: { name: 'root', password: 'x'.repeat(100_000) } });
      assert.equal(large.status, 413);
      assert.equal(large.json().error.code, 'API_BODY_TOO_LARGE');
      assert.ok(!large.text.includes('    at '), 'no stack trace in a response');
      const badLimit = await call('GET', '/v1/commands?limit=100000', { token: tokens.viewer });
      assert.equal(badLimit.json().error.code, 'API_VALIDATION');
    });

    it('pairs and enrolls a device, which is then listed with its certificate', async () => {
      const pairing = await call('POST', `/v1/devices/${device}/pairing-tokens`, { token: tokens.admin, body: { ttl_ms: 600_000 } });
      assert.equal(pairing.status, 201);
      const token = pairing.json().token as string;
      const wrong = await call('POST', '/v1/enroll', { body: { device_id: device, token: `sdcpt_${'A'.repeat(43)}`, csr_pem: deviceKey.csrPem } });
      assert.equal(wrong.json().error.code, 'TRUST_PAIRING_TOKEN_INVALID');
      const enrolled = await call('POST', '/v1/enroll', { body: { device_id: device, token, csr_pem: deviceKey.csrPem } });
      assert.equal(enrolled.status, 201, enrolled.text);
      const answer = enrolled.json();
      assert.equal(parseCertificate(answer.certificate_pem as string).subject, `CN=${device}`);
      assert.equal(answer.chain_pems.length, 2);
      assert.equal(answer.command_keys[0].kid, h.materials.commandSigner.kid);
      assert.deepEqual(answer.gateway_urls, ['wss://127.0.0.1:9443/v1/agent']);
      const again = await call('POST', '/v1/enroll', { body: { device_id: device, token, csr_pem: deviceKey.csrPem } });
      assert.equal(again.json().error.code, 'TRUST_PAIRING_TOKEN_USED');
      const list = await call('GET', '/v1/devices?limit=10', { token: tokens.viewer });
      assert.deepEqual(list.json().items.map((d: { id: string }) => d.id), [device]);
      const detail = (await call('GET', `/v1/devices/${device}`, { token: tokens.viewer })).json();
      assert.equal(detail.status, 'enrolled');
      assert.equal(detail.online, false);
      assert.match(detail.cert_serial as string, /^[0-9a-f]+$/);
    });

    it('creates a command once per idempotency key and refuses the key with another body', async () => {
      const body = { device_id: device, opcode: 'EXEC_PING_KERNEL', args: {} };
      const first = await call('POST', '/v1/commands', { token: tokens.operator, body, headers: { 'idempotency-key': 'k1' } });
      assert.equal(first.status, 201, first.text);
      const retry = await call('POST', '/v1/commands', { token: tokens.operator, body, headers: { 'idempotency-key': 'k1' } });
      assert.equal(retry.status, 200);
      assert.equal(retry.json().id, first.json().id);
      const conflict = await call('POST', '/v1/commands', { token: tokens.operator, body: { ...body, opcode: 'EXEC_GET_STATUS' }, headers: { 'idempotency-key': 'k1' } });
      assert.equal(conflict.status, 409);
      assert.equal(conflict.json().error.code, 'COMMAND_IDEMPOTENCY_CONFLICT');
      const list = await call('GET', `/v1/commands?device_id=${device}`, { token: tokens.viewer });
      assert.equal(list.json().items.length, 1);
      assert.equal(first.json().state, 'queued');
      assert.equal(first.json().device_seq, 1);
    });

    it('records a policy denial in the audit log', async () => {
      const denied = await call('POST', '/v1/commands', { token: tokens.operator, body: { device_id: device, opcode: 'EXEC_ROLLBACK_UPDATE', args: {} } });
      assert.equal(denied.status, 403);
      assert.equal(denied.json().error.code, 'COMMAND_POLICY_DENIED');
      const audit = (await call('GET', '/v1/audit?limit=500', { token: tokens.admin })).json().items as Array<{ kind: string; payload: any }>;
      const entry = audit.find((e) => e.kind === 'command.denied');
      assert.equal(entry?.payload.policy.decision, 'deny');
      assert.equal(entry?.payload.policy.reason, 'no rule allows');
      assert.equal(audit.find((e) => e.kind === 'command.created')?.payload.policy.decision, 'allow');
    });

    it('dispatches on presence and advances the command through progress and a signed result, in order with times', async () => {
      const [queued] = (await call('GET', `/v1/commands?device_id=${device}`, { token: tokens.viewer })).json().items as Array<{ id: string; device_seq: number }>;
      assert.ok(queued);
      const t0 = h.clock.nowMs();
      await h.cp.context.kv.set(kvKeys.presence(device), JSON.stringify({ gateway_id: 'gw1' }));
      await h.bus.append(streamNames.events, encodeBusEntry('presence', { device_id: device, gateway_id: 'gw1', session_id: 's1', online: true, at_ms: t0, last_command_seq: 0 }));
      await h.cp.eventsConsumer.drain();
      assert.equal(await h.bus.length(gatewayCommandStream('gw1')), 1);
      const progress = (event: 'deliver' | 'ack' | 'start', at: number) => progressEntry({ command: { ...queued, device_id: device }, event, atMs: at, seed: deviceKey.seed });
      await h.bus.append(streamNames.events, progress('deliver', t0 + 1));
      await h.bus.append(streamNames.events, progress('ack', t0 + 2));
      await h.bus.append(streamNames.events, progress('start', t0 + 3));
      await h.bus.append(streamNames.events, progress('start', t0 + 4)); // illegal now: ignored, not fatal
      const frame = deviceFrame({ deviceId: device, seed: deviceKey.seed, type: 'COMMAND_RESULT', ts: t0 + 5,
        body: { command_id: queued.id, device_seq: queued.device_seq, status: 'succeeded', output: { ok: true }, finished_at: t0 + 5 } });
      await h.bus.append(streamNames.events, encodeBusEntry('command_result', { command_id: queued.id, device_id: device, gateway_id: 'gw1', at_ms: t0 + 6, frame }));
      await h.cp.eventsConsumer.drain();
      const detail = (await call('GET', `/v1/commands/${queued.id}`, { token: tokens.viewer })).json();
      assert.equal(detail.state, 'succeeded');
      assert.deepEqual(detail.history.map((e: { state: string; at_ms: number }) => [e.state, e.at_ms - t0]),
        [['queued', (detail.history[0].at_ms as number) - t0], ['sent', 1], ['ack_received', 2], ['executing', 3], ['succeeded', 6]]);
      // The signed result is an object in the answer, not a JSON string inside it; its canonical form is the signed text.
      assert.deepEqual(detail.result_frame, JSON.parse(frame));
      assert.equal(canonicalize(detail.result_frame), frame);
      // The device view follows the result: the seq it finished and when it was last heard from.
      const deviceView = (await call('GET', `/v1/devices/${device}`, { token: tokens.viewer })).json();
      assert.equal(deviceView.last_command_seq, queued.device_seq);
      assert.equal(deviceView.last_seen_at_ms, t0 + 6);
      const audit = (await call('GET', '/v1/audit?limit=500', { token: tokens.admin })).json().items as Array<{ kind: string; payload: any }>;
      assert.equal(audit.find((e) => e.kind === 'command.result')?.payload.frame, frame);
      assert.equal((await h.bus.pending(streamNames.events, 'control-plane')).length, 0);
    });

    it('dead-letters malformed entries and forged results without stopping', async () => {
      await h.bus.append(streamNames.events, { kind: 'presence', data: '{"device_id":' });
      await h.bus.append(streamNames.events, { kind: 'bogus', data: '{}' });
      const created = (await call('POST', '/v1/commands', { token: tokens.operator, body: { device_id: device, opcode: 'EXEC_GET_STATUS', args: {} } })).json();
      const forger = await makeDeviceKey(device);
      const forged = deviceFrame({ deviceId: device, seed: forger.seed, type: 'COMMAND_RESULT', ts: h.clock.nowMs(),
        body: { command_id: created.id, device_seq: created.device_seq, status: 'succeeded', output: {}, finished_at: h.clock.nowMs() } });
      await h.bus.append(streamNames.events, encodeBusEntry('command_result', { command_id: created.id, device_id: device, gateway_id: 'gw1', at_ms: h.clock.nowMs(), frame: forged }));
      await h.cp.eventsConsumer.drain();
      assert.equal(await h.bus.length(deadLetterStream(streamNames.events)), 3);
      assert.equal((await call('GET', `/v1/commands/${created.id as string}`, { token: tokens.viewer })).json().state, 'queued');
    });

    it('ends commands past their TTL in the sweep: timed_out, as it was sent to the gateway holding the device (command-outcomes.test.ts has the rest)', async () => {
      const created = (await call('POST', '/v1/commands', { token: tokens.operator, body: { device_id: device, opcode: 'EXEC_PING_KERNEL', args: {}, ttl_ms: 1000 } })).json();
      h.clock.advance(1001);
      assert.ok((await h.cp.commands.expireDue()) >= 1);
      assert.equal((await call('GET', `/v1/commands/${created.id as string}`, { token: tokens.viewer })).json().state, 'timed_out');
    });

    it('stores telemetry and raises an alert above the risk threshold', async () => {
      const now = h.clock.nowMs();
      const sample = (cpu: number) => deviceFrame({ deviceId: device, seed: deviceKey.seed, type: 'TELEMETRY', ts: now,
        body: { sampled_at: now, metrics: { cpu_pct: cpu, mem_pct: cpu, disk_pct: cpu, net_rx_bytes_per_sec: 0, net_tx_bytes_per_sec: cpu === 100 ? 50 * 2 ** 20 : 0, process_count: cpu === 100 ? 2_000 : 10 } } });
      await h.bus.append(streamNames.telemetry, encodeBusEntry('telemetry', { device_id: device, gateway_id: 'gw1', received_at_ms: now, frame: sample(10) }));
      await h.bus.append(streamNames.telemetry, encodeBusEntry('telemetry', { device_id: device, gateway_id: 'gw1', received_at_ms: now, frame: sample(100) }));
      await h.cp.telemetryConsumer.drain();
      const samples = (await call('GET', `/v1/devices/${device}/telemetry?limit=10`, { token: tokens.viewer })).json().items as Array<{ risk_score: number }>;
      assert.equal(samples.length, 2);
      const alerts = await h.db.query<{ kind: string }>('SELECT kind FROM alerts WHERE device_id = ?', [device]);
      assert.deepEqual(alerts.map((a) => a.kind), ['risk_score']);
    });

    it('revokes a device: kv revoked key, CRL entry, audit', async () => {
      const detail = (await call('GET', `/v1/devices/${device}`, { token: tokens.viewer })).json();
      const revoked = await call('POST', `/v1/devices/${device}/revoke`, { token: tokens.admin, body: { reason: 'keyCompromise' } });
      assert.equal(revoked.status, 200, revoked.text);
      assert.notEqual(await h.cp.context.kv.get(kvKeys.revoked(detail.cert_serial as string)), null);
      const crl = await call('GET', '/v1/crl');
      assert.match(crl.text, /BEGIN X509 CRL/);
      const { x509 } = await import('../../trust/x509-provider.js');
      const parsed = new x509.X509Crl(crl.text);
      assert.equal(parsed.entries.length, 1);
      assert.equal((await call('POST', '/v1/commands', { token: tokens.admin, body: { device_id: device, opcode: 'EXEC_PING_KERNEL', args: {} } })).json().error.code, 'API_DEVICE_REVOKED');
    });

    it('serves the JWKS and an OpenAPI document covering every route', async () => {
      const jwks = (await call('GET', '/.well-known/jwks.json')).json();
      assert.equal(jwks.keys[0].kty, 'OKP');
      const doc = (await call('GET', '/openapi.json')).json();
      assert.equal(doc.openapi, '3.1.0');
      for (const path of ['/v1/commands', '/v1/commands/{id}', '/v1/devices/{id}/pairing-tokens', '/v1/enroll', '/v1/live', '/v1/audit/verify']) {
        assert.ok(doc.paths[path], path);
      }
      assert.equal(doc.paths['/v1/commands'].post.requestBody.content['application/json'].schema.properties.opcode.type, 'string');
    });

    it('verifies the audit chain, and names the seq of a row changed in SQL', async () => {
      const ok = (await call('GET', '/v1/audit/verify', { token: tokens.admin })).json();
      assert.equal(ok.ok, true);
      assert.ok(ok.count > 10);
      await h.db.execute("UPDATE audit_log SET actor = 'user:mallory' WHERE seq = 3");
      const broken = (await call('GET', '/v1/audit/verify', { token: tokens.admin })).json();
      assert.equal(broken.ok, false);
      assert.equal(broken.firstBrokenSeq, 3);
    });
  });
}

suite(sqlJsTarget);
const mysqlUrl = process.env['MYSQL_URL'];
if (mysqlUrl !== undefined && mysqlUrl !== '') suite(mysqlTarget(mysqlUrl));
else describe('control plane on mysql', { skip: 'MYSQL_URL is not set; the same suite runs on sql.js above' }, () => {});

describe('control plane over real HTTPS', () => {
  it('serves login and the API with the deployment server certificate', async () => {
    const h = await makeHarness(sqlJsTarget);
    try {
      await h.cp.auth.users.add({ name: 'root', role: 'admin', password: adminPassword, nowMs: h.clock.nowMs() });
      const { port, url } = await h.cp.listen({ host: '127.0.0.1', port: 0, tls: true });
      assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const post = (path: string, body: unknown) => new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, path, method: 'POST', ca: h.materials.serverTls.caPem, headers: { 'content-type': 'application/json' } }, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => { text += chunk.toString('utf8'); });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        });
        req.on('error', reject);
        req.end(JSON.stringify(body));
      });
      const login = await post('/v1/auth/login', { name: 'root', password: adminPassword });
      assert.equal(login.status, 200, login.body);
      assert.ok((JSON.parse(login.body) as { token: string }).token.split('.').length === 3);
    } finally {
      await h.close();
    }
  });
});

describe('live updates', () => {
  it('streams published changes to an authenticated SSE client and refuses one without a token', async () => {
    const h = await makeHarness(sqlJsTarget);
    try {
      await h.cp.start();
      const { url } = await h.cp.listen({ host: '127.0.0.1', port: 0, tls: false });
      await h.cp.auth.users.add({ name: 'watcher', role: 'viewer', password: 'watcher password 1', nowMs: h.clock.nowMs() });
      const token = await h.cp.auth.authority.issue({ sub: 'watcher', role: 'viewer' });
      assert.equal((await fetch(`${url}/v1/live`)).status, 401);
      const controller = new AbortController();
      const issued = await fetch(`${url}/v1/live/tickets`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      const { ticket } = (await issued.json()) as { ticket: string };
      const response = await fetch(`${url}/v1/live?ticket=${ticket}`, { signal: controller.signal });
      assert.equal(response.headers.get('content-type'), 'text/event-stream');
      const reader = response.body!.getReader();
      let text = '';
      const readUntil = async (needle: string) => {
        for (let i = 0; i < 50 && !text.includes(needle); i += 1) text += new TextDecoder().decode((await reader.read()).value);
      };
      await readUntil('event: hello');
      h.cp.context.publishLive({ type: 'presence', device_id: 'dev-9', online: true, gateway_id: 'gw1', at_ms: 1 });
      await readUntil('dev-9');
      assert.match(text, /event: presence\ndata: \{"type":"presence","device_id":"dev-9"/);
      controller.abort();
    } finally {
      await h.close();
    }
  });
});
