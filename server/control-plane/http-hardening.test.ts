import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

/**
 * Issue 16, findings 5, 8 and 11 and "also noted" (a): requests whose shape the API refused
 * badly (a 500, a silently chosen duplicate member, a body in someone else's shape) or accepted
 * when it should not have. Each test sends the hostile input from the issue.
 */
function suite(pair: StorePair): void {
  describe(`API request hardening on ${pair.name}`, () => {
    let h: Harness;
    let admin = '';
    let operator = '';
    const device = 'dev-hard-1';

    const call = async (method: 'GET' | 'POST', url: string, options: { token?: string; payload?: string | object; headers?: Record<string, string> } = {}) => {
      const response = await h.cp.app.inject({
        method, url,
        headers: { ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }), ...options.headers },
        ...(options.payload === undefined ? {} : { payload: options.payload }),
      });
      return { status: response.statusCode, body: response.body, json: () => response.json() as { error: { code: string; message: string; trace_id: string } } & Record<string, any> };
    };

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }) });
      await h.cp.auth.users.add({ name: 'padmin', role: 'admin', password: 'admin password 123', nowMs: h.clock.nowMs() });
      await h.cp.auth.users.add({ name: 'pviewer', role: 'viewer', password: 'viewer password 123', nowMs: h.clock.nowMs() });
      await h.cp.auth.users.add({ name: 'poperator', role: 'operator', password: 'operator password 123', nowMs: h.clock.nowMs() });
      admin = await h.cp.auth.authority.issue({ sub: 'padmin', role: 'admin' });
      operator = await h.cp.auth.authority.issue({ sub: 'poperator', role: 'operator' });
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [device, h.clock.nowMs()]);
      for (let i = 0; i < 3; i += 1) await h.cp.context.audit.append({ kind: 'test.entry', actor: 'system', subject: `test:${i}`, payload: {} });
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('16.5: refuses query numbers that are not finite safe integers within bounds with 400 API_VALIDATION, never a 500', async () => {
      const hostile = [
        `/v1/devices/${device}/telemetry?from_ms=1e400`, `/v1/devices/${device}/telemetry?to_ms=1e400`, '/v1/alerts?since_ms=1e400',
        '/v1/audit?from_seq=9007199254740993', '/v1/audit?from_seq=1e300', '/v1/audit?limit=Infinity', '/v1/audit?limit=501',
        '/v1/audit?limit=0x10', '/v1/audit?limit=1.5', '/v1/audit?limit=-1', '/v1/audit?limit=', '/v1/audit?limit=1&limit=2',
        `/v1/devices/${device}/telemetry?from_ms=${'9'.repeat(17)}`, '/v1/commands?limit=NaN',
      ];
      for (const url of hostile) {
        const answer = await call('GET', url, { token: admin });
        assert.equal(answer.status, 400, `${url}: ${answer.body}`);
        assert.equal(answer.json().error.code, 'API_VALIDATION', url);
        assert.match(answer.json().error.message, /^querystring\/[a-z_]+: must be one decimal integer from \d+ to \d+$/, url);
      }
    });

    it('16.5: still answers the largest numbers the bounds allow', async () => {
      const max = Number.MAX_SAFE_INTEGER;
      assert.equal((await call('GET', `/v1/devices/${device}/telemetry?from_ms=0&to_ms=${max}&limit=500`, { token: admin })).status, 200);
      assert.equal((await call('GET', `/v1/alerts?since_ms=${max}`, { token: admin })).status, 200);
      const audit = await call('GET', `/v1/audit?from_seq=${max}&limit=500`, { token: admin });
      assert.equal(audit.status, 200, audit.body);
      assert.deepEqual(audit.json().items, []);
      const all = await call('GET', '/v1/audit?from_seq=1&limit=2', { token: admin });
      assert.equal(all.json().items.length, 2);
    });

    it('16.8: refuses duplicate member names in a body with 400 API_JSON_DUPLICATE_KEY (no last-one-wins login)', async () => {
      const login = await call('POST', '/v1/auth/login', {
        headers: { 'content-type': 'application/json' }, payload: '{"name":"padmin","name":"pviewer","password":"viewer password 123"}',
      });
      assert.equal(login.status, 400, login.body);
      assert.equal(login.json().error.code, 'API_JSON_DUPLICATE_KEY');
      assert.equal(login.json().token, undefined);
      const nested = await call('POST', '/v1/commands', {
        token: operator, headers: { 'content-type': 'application/json; charset=utf-8' },
        payload: `{"device_id":"${device}","opcode":"EXEC_PING_KERNEL","args":{"a":1,"a":2}}`,
      });
      assert.equal(nested.status, 400);
      assert.equal(nested.json().error.code, 'API_JSON_DUPLICATE_KEY');
    });

    it('16.8: the strict parser\'s other refusals are typed 400s and 413s', async () => {
      const post = (payload: string) => call('POST', '/v1/auth/login', { headers: { 'content-type': 'application/json' }, payload });
      assert.equal((await post('{"name":"padmin","password":"x",}')).json().error.code, 'API_BAD_JSON');
      assert.equal((await post('')).json().error.code, 'API_BAD_JSON');
      assert.equal((await post('{"name":"\\ud800","password":"x"}')).json().error.code, 'API_BAD_JSON');
      assert.equal((await post('{"name":1e400,"password":"x"}')).json().error.code, 'API_BAD_JSON');
      const deep = await post(`{"name":${'['.repeat(40)}${']'.repeat(40)}}`);
      assert.equal(deep.status, 400);
      assert.equal(deep.json().error.code, 'API_JSON_LIMIT');
      const large = await post(JSON.stringify({ name: 'padmin', password: 'x'.repeat(70_000) }));
      assert.equal(large.status, 413);
      assert.equal(large.json().error.code, 'API_BODY_TOO_LARGE');
      const proto = await post('{"__proto__":{"admin":true},"name":"padmin","password":"x"}');
      assert.equal(proto.json().error.code, 'API_VALIDATION');
      // A well-formed body still works.
      assert.equal((await post('{"name":"pviewer","password":"viewer password 123"}')).status, 200);
    });

    it('16.11: a path parameter over 100 characters is 414 HTTP_URI_TOO_LONG in our shape, without echoing the path', async () => {
      const longId = 'a'.repeat(101);
      const answer = await call('GET', `/v1/devices/${longId}`, { token: admin });
      assert.equal(answer.status, 414);
      assert.equal(answer.json().error.code, 'HTTP_URI_TOO_LONG');
      assert.match(answer.json().error.trace_id, /^[0-9a-f]{32}$/);
      assert.ok(!answer.body.includes(longId), answer.body);
      const badUrl = await call('GET', '/v1/devices/%zz', { token: admin });
      assert.equal(badUrl.status, 400);
      assert.equal(badUrl.json().error.code, 'HTTP_BAD_REQUEST');
      assert.ok(!badUrl.body.includes('%zz'));
    });

    it('(a): refuses a command for a device that never enrolled with 409 API_DEVICE_NOT_ENROLLED', async () => {
      const pairing = await call('POST', '/v1/devices/dev-never-enrolled/pairing-tokens', { token: admin, payload: {} });
      assert.equal(pairing.status, 201, pairing.body);
      const command = await call('POST', '/v1/commands', { token: operator, payload: { device_id: 'dev-never-enrolled', opcode: 'EXEC_PING_KERNEL', args: {} } });
      assert.equal(command.status, 409, command.body);
      assert.equal(command.json().error.code, 'API_DEVICE_NOT_ENROLLED');
      const [row] = await h.db.query<{ n: number }>('SELECT COUNT(*) AS n FROM commands WHERE device_id = ?', ['dev-never-enrolled']);
      assert.equal(Number(row?.n), 0);
      assert.equal((await call('POST', '/v1/commands', { token: operator, payload: { device_id: device, opcode: 'EXEC_PING_KERNEL', args: {} } })).status, 201);
    });
  });
}

/** Sends raw bytes to the server and reads everything it answers until it closes the connection. */
function rawExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.on('data', (chunk: Buffer) => { answer += chunk.toString('utf8'); });
    socket.on('error', (error) => (answer === '' ? reject(error) : resolve(answer)));
    socket.on('close', () => resolve(answer));
    socket.write(request);
  });
}

function parseRawAnswer(answer: string): { statusLine: string; headers: string; body: { error: { code: string; message: string; trace_id: string } } } {
  const split = answer.indexOf('\r\n\r\n');
  const head = answer.slice(0, split).split('\r\n');
  return { statusLine: head[0] ?? '', headers: head.slice(1).join('\n').toLowerCase(), body: JSON.parse(answer.slice(split + 4)) };
}

describe('16.11: Node-level refusals (clientError) in our error shape', () => {
  let h: Harness;
  let port = 0;
  before(async () => {
    h = await makeHarness(storePairs().pairs[0]!.sql);
    ({ port } = await h.cp.listen({ host: '127.0.0.1', port: 0, tls: false }));
  });
  after(async () => h.close());

  it('headers over the size limit: 431 HTTP_HEADERS_TOO_LARGE', async () => {
    const answer = parseRawAnswer(await rawExchange(port, `GET /v1/devices HTTP/1.1\r\nhost: x\r\nx-big: ${'b'.repeat(20_000)}\r\n\r\n`));
    assert.match(answer.statusLine, /^HTTP\/1\.1 431 /);
    assert.match(answer.headers, /content-type: application\/json/);
    assert.equal(answer.body.error.code, 'HTTP_HEADERS_TOO_LARGE');
    assert.match(answer.body.error.trace_id, /^[0-9a-f]{32}$/);
  });

  it('a request that is not HTTP: 400 HTTP_BAD_REQUEST', async () => {
    const answer = parseRawAnswer(await rawExchange(port, 'NOT AN HTTP REQUEST\r\n\r\n'));
    assert.match(answer.statusLine, /^HTTP\/1\.1 400 /);
    assert.equal(answer.body.error.code, 'HTTP_BAD_REQUEST');
  });
});

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('API request hardening on mysql + redis', { skip: skipped }, () => {});
