import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { ErrorCode } from '../../core/errors/index.js';
import { connectClient, eventually, portOf, startTestChaos, Upstream, type TestChaos } from './test-support.js';

// Bad input to the proxy API: each case is refused with Toxiproxy's status and error body, logged
// with our typed code, and leaves the server and the other proxies as they were.

interface Case {
  readonly what: string;
  readonly method: string;
  readonly path: string;
  /** A string is sent as it is; anything else as JSON. */
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  readonly status: number;
  readonly error: string | RegExp;
  readonly code: ErrorCode;
}

const bad = (what: string, body: unknown, error: string | RegExp, code: ErrorCode = 'CHAOS_BAD_REQUEST_BODY', status = 400) =>
  ({ what, body, error, code, status });

const proxyCases = [
  bad('malformed JSON', '{"name": "x",', /^bad request body: /),
  bad('an empty body', '', /^bad request body: /),
  bad('duplicate JSON members', '{"name": "a", "name": "b", "upstream": "127.0.0.1:1"}', /^bad request body: /),
  bad('JSON nested past the depth limit', `${'['.repeat(100)}${']'.repeat(100)}`, /^bad request body: /),
  bad('an array instead of an object', [1, 2], 'bad request body: proxy must be a JSON object'),
  bad('a number as the name', { name: 5, upstream: '127.0.0.1:1' }, 'bad request body: name must be a string'),
  bad('a string as enabled', { name: 'x', upstream: '127.0.0.1:1', enabled: 'yes' }, 'bad request body: enabled must be true or false'),
  bad('no name', { upstream: '127.0.0.1:1' }, 'missing required field: name', 'CHAOS_MISSING_FIELD'),
  bad('no upstream', { name: 'x' }, 'missing required field: upstream', 'CHAOS_MISSING_FIELD'),
  ...['a b', '../etc', 'x/y', 'café', '.hidden', '-x', 'q?x', 'n'.repeat(129)].map((name) =>
    bad(`the odd name ${JSON.stringify(name.slice(0, 12))}`, { name, upstream: '127.0.0.1:1' }, /^bad request body: name must be 1 to 128 letters/)),
  ...['nohost', '127.0.0.1:99999', '127.0.0.1:0', ':80', 'a_b.example:80', '[zz]:80'].map((upstream) =>
    bad(`the upstream ${upstream}`, { name: 'x', upstream }, /^bad request body: upstream must be host:port/)),
  ...['::1:80', ':8474', '127.0.0.1:-1', '127.0.0.1'].map((listen) =>
    bad(`the listen address ${listen}`, { name: 'x', upstream: '127.0.0.1:1', listen }, /^bad request body: listen must be host:port/)),
].map((c) => ({ ...c, method: 'POST', path: '/proxies' }));

const toxic = (type: string, attributes: unknown, extra: object = {}) => ({ name: 'bad', type, stream: 'downstream', toxicity: 1, attributes, ...extra });

const toxicCases = [
  bad('an unknown toxic type', toxic('meteor', {}), 'invalid toxic type', 'CHAOS_INVALID_TOXIC_TYPE'),
  bad('no toxic type', { attributes: {} }, 'invalid toxic type', 'CHAOS_INVALID_TOXIC_TYPE'),
  bad('the stream sideways', toxic('latency', {}, { stream: 'sideways' }), 'stream was invalid, can be either upstream or downstream', 'CHAOS_INVALID_STREAM'),
  bad('a negative latency', toxic('latency', { latency: -1 }), 'bad request body: attribute latency must be an integer from 0 to 86400000'),
  bad('an absurd latency', toxic('latency', { latency: 1e12 }), /attribute latency must be an integer/),
  bad('an absurd jitter', toxic('latency', { jitter: 1e300 }), /attribute jitter must be an integer/),
  bad('a fractional latency', toxic('latency', { latency: 1.5 }), /attribute latency must be an integer/),
  bad('a latency as a string', toxic('latency', { latency: '100' }), /attribute latency must be an integer/),
  bad('a misspelt attribute', toxic('latency', { jiter: 10 }), 'bad request body: latency has no attribute jiter'),
  bad('attributes as an array', toxic('latency', [100]), 'bad request body: attributes must be a JSON object'),
  bad('a negative rate', toxic('bandwidth', { rate: -5 }), /attribute rate must be an integer/),
  bad('an absurd rate', toxic('bandwidth', { rate: 1e15 }), /attribute rate must be an integer/),
  bad('a negative slow_close delay', toxic('slow_close', { delay: -1 }), /attribute delay must be an integer/),
  bad('a negative timeout', toxic('timeout', { timeout: -1 }), /attribute timeout must be an integer/),
  bad('a negative reset_peer timeout', toxic('reset_peer', { timeout: -10 }), /attribute timeout must be an integer/),
  bad('a slicer without average_size', toxic('slicer', {}), /attribute average_size must be an integer from 1/),
  bad('a slicer variation not below the average', toxic('slicer', { average_size: 4, size_variation: 4 }), 'bad request body: size_variation must be smaller than average_size'),
  bad('an absurd slicer delay', toxic('slicer', { average_size: 4, delay: 1e10 }), /attribute delay must be an integer/),
  bad('a negative limit_data', toxic('limit_data', { bytes: -1 }), /attribute bytes must be an integer/),
  bad('an absurd limit_data', toxic('limit_data', { bytes: 2 ** 60 }), /attribute bytes must be an integer/),
  bad('toxicity 2', toxic('latency', {}, { toxicity: 2 }), 'bad request body: toxicity must be a number from 0 to 1'),
  bad('a negative toxicity', toxic('latency', {}, { toxicity: -0.1 }), 'bad request body: toxicity must be a number from 0 to 1'),
  bad('toxicity as a string', toxic('latency', {}, { toxicity: '1' }), 'bad request body: toxicity must be a number from 0 to 1'),
  bad('an odd toxic name', toxic('latency', {}, { name: 'a/b' }), /^bad request body: name must be 1 to 128 letters/),
  bad('duplicate toxic name', toxic('latency', {}, { name: 'existing' }), 'toxic already exists', 'CHAOS_TOXIC_EXISTS', 409),
].map((c) => ({ ...c, method: 'POST', path: '/proxies/bystander/toxics' }));

const routeCases: Case[] = [
  { what: 'a duplicate proxy name', method: 'POST', path: '/proxies', body: { name: 'bystander', upstream: '127.0.0.1:1' }, status: 409, error: 'proxy already exists', code: 'CHAOS_PROXY_EXISTS' },
  { what: 'an unknown proxy', method: 'GET', path: '/proxies/ghost', status: 404, error: 'proxy not found', code: 'CHAOS_PROXY_NOT_FOUND' },
  { what: 'deleting an unknown proxy', method: 'DELETE', path: '/proxies/ghost', status: 404, error: 'proxy not found', code: 'CHAOS_PROXY_NOT_FOUND' },
  { what: 'a toxic on an unknown proxy', method: 'POST', path: '/proxies/ghost/toxics', body: toxic('latency', {}), status: 404, error: 'proxy not found', code: 'CHAOS_PROXY_NOT_FOUND' },
  { what: 'an odd name in the path', method: 'GET', path: '/proxies/a%20b%2F..', status: 404, error: 'proxy not found', code: 'CHAOS_PROXY_NOT_FOUND' },
  { what: 'a bad escape in the path', method: 'GET', path: '/proxies/%zz', status: 404, error: 'proxy not found', code: 'CHAOS_PROXY_NOT_FOUND' },
  { what: 'an unknown toxic', method: 'GET', path: '/proxies/bystander/toxics/ghost', status: 404, error: 'toxic not found', code: 'CHAOS_TOXIC_NOT_FOUND' },
  { what: 'updating an unknown toxic', method: 'POST', path: '/proxies/bystander/toxics/ghost', body: { attributes: {} }, status: 404, error: 'toxic not found', code: 'CHAOS_TOXIC_NOT_FOUND' },
  { what: 'deleting an unknown toxic', method: 'DELETE', path: '/proxies/bystander/toxics/ghost', status: 404, error: 'toxic not found', code: 'CHAOS_TOXIC_NOT_FOUND' },
  { what: 'an update with a bad field', method: 'POST', path: '/proxies/bystander', body: { enabled: 'no' }, status: 400, error: 'bad request body: enabled must be true or false', code: 'CHAOS_BAD_REQUEST_BODY' },
  { what: 'an update to a bad upstream', method: 'PATCH', path: '/proxies/bystander', body: { upstream: 'nowhere' }, status: 400, error: /upstream must be host:port/, code: 'CHAOS_BAD_REQUEST_BODY' },
  { what: 'a toxic update out of range', method: 'POST', path: '/proxies/bystander/toxics/existing', body: { attributes: { latency: -5 } }, status: 400, error: /attribute latency must be an integer/, code: 'CHAOS_BAD_REQUEST_BODY' },
  { what: 'an unknown route', method: 'GET', path: '/metrics', status: 404, error: 'not found', code: 'CHAOS_ROUTE_NOT_FOUND' },
  { what: 'a method the route does not take', method: 'PUT', path: '/proxies', body: {}, status: 405, error: 'method not allowed', code: 'CHAOS_METHOD_NOT_ALLOWED' },
  { what: 'a browser', method: 'GET', path: '/proxies', headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64)' }, status: 403, error: 'User agent not allowed', code: 'CHAOS_BROWSER_REFUSED' },
  { what: 'a body over the limit', method: 'POST', path: '/proxies', body: `{"name": "${'x'.repeat(300_000)}"}`, status: 413, error: /^request body larger than/, code: 'CHAOS_BODY_TOO_LARGE' },
  { what: 'populate with an object', method: 'POST', path: '/populate', body: { name: 'x' }, status: 400, error: 'bad request body: populate takes a JSON array of proxies', code: 'CHAOS_BAD_REQUEST_BODY' },
  {
    what: 'populate with a bad second entry (nothing is applied)', method: 'POST', path: '/populate',
    body: [{ name: 'first', upstream: '127.0.0.1:1' }, { name: 'second' }], status: 400, error: 'missing required field: upstream at proxy 2', code: 'CHAOS_MISSING_FIELD',
  },
  // Review h1, F7: the API has no authentication, so a proxy listens on loopback unless the server allows more.
  ...['0.0.0.0:0', '[::]:0', '10.1.2.3:0', 'example.com:0'].map((listen): Case => ({
    what: `the listen address ${listen}`, method: 'POST', path: '/proxies', body: { name: 'exposed', listen, upstream: '127.0.0.1:1' },
    status: 403, error: `listen ${listen}: not a loopback address (start the proxy with --allow-external-listen to listen on others)`, code: 'CHAOS_LISTEN_NOT_LOOPBACK',
  })),
  {
    what: 'an update to listen on every interface', method: 'POST', path: '/proxies/bystander', body: { listen: '0.0.0.0:0' },
    status: 403, error: /^listen 0\.0\.0\.0:0: not a loopback address/, code: 'CHAOS_LISTEN_NOT_LOOPBACK',
  },
  {
    what: 'populate with a second entry on every interface (nothing is applied)', method: 'POST', path: '/populate',
    body: [{ name: 'first', upstream: '127.0.0.1:1' }, { name: 'second', listen: '0.0.0.0:0', upstream: '127.0.0.1:1' }],
    status: 403, error: /^listen 0\.0\.0\.0:0: not a loopback address/, code: 'CHAOS_LISTEN_NOT_LOOPBACK',
  },
  {
    what: 'populate with a name twice', method: 'POST', path: '/populate',
    body: [{ name: 'twin', upstream: '127.0.0.1:1' }, { name: 'twin', upstream: '127.0.0.1:2' }], status: 400, error: 'bad request body: duplicate proxy name "twin"', code: 'CHAOS_BAD_REQUEST_BODY',
  },
];

describe('chaos proxy API refuses bad input', () => {
  let upstream: Upstream;
  let chaos: TestChaos;
  let bystanderListen: string;
  let indexBefore: unknown;

  async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const response = await fetch(`${chaos.server.url}${path}`, { method, headers, ...(payload === undefined ? {} : { body: payload }) });
    const text = await response.text();
    return { status: response.status, body: text.length === 0 ? undefined : JSON.parse(text) as unknown };
  }

  async function assertRefusal(c: Case): Promise<void> {
    const from = chaos.logged.length;
    const { status, body } = await call(c.method, c.path, c.body, c.headers);
    assert.equal(status, c.status, `${c.what}: ${JSON.stringify(body)}`);
    const { error, status: bodyStatus } = body as { error: string; status: number };
    assert.equal(bodyStatus, c.status, c.what);
    if (typeof c.error === 'string') assert.equal(error, c.error, c.what);
    else assert.match(error, c.error, c.what);
    assert.ok(chaos.logged.slice(from).some((entry) => entry.fields.code === c.code), `${c.what}: logged ${c.code}`);
  }

  before(async () => {
    upstream = await Upstream.start({ echo: true });
    chaos = await startTestChaos();
    const bystander = await chaos.toxiproxy.createProxy({ name: 'bystander', listen: '127.0.0.1:0', upstream: upstream.address });
    await bystander.addToxic({ name: 'existing', type: 'latency', stream: 'upstream', toxicity: 1, attributes: { latency: 0, jitter: 0 } });
    bystanderListen = bystander.listen;
    indexBefore = (await call('GET', '/proxies')).body;
  });

  after(async () => {
    // The other proxies untouched: the same index, and the bystander still proxies.
    assert.deepEqual((await call('GET', '/proxies')).body, indexBefore);
    const client = await connectClient(portOf(bystanderListen));
    client.write('still here');
    assert.equal((await client.receivedAtLeast(10)).toString(), 'still here');
    client.socket.destroy();
    await chaos.server.close();
    await upstream.close();
  });

  for (const c of [...proxyCases, ...toxicCases, ...routeCases]) {
    it(`refuses ${c.what} with ${c.status}`, () => assertRefusal(c));
  }

  // Review h2, finding 4: `new URL` threw on these targets and the API answered 500, logged as CHAOS_INTERNAL.
  for (const target of ['//[', 'http://[', '//[::1']) {
    it(`refuses the request target ${target} with 400 CHAOS_BAD_REQUEST_TARGET`, async () => {
      const from = chaos.logged.length;
      const client = await connectClient(portOf(new URL(chaos.server.url).host));
      client.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      await client.untilEnded();
      assert.match(client.text, /^HTTP\/1\.1 400 /);
      assert.ok(client.text.includes('{"error":"bad request target","status":400}'), client.text);
      const logged = chaos.logged.slice(from);
      assert.ok(logged.some((entry) => entry.fields.code === 'CHAOS_BAD_REQUEST_TARGET' && entry.level === 'warn'), JSON.stringify(logged));
      assert.ok(!logged.some((entry) => entry.fields.code === 'CHAOS_INTERNAL'));
      client.socket.destroy();
    });
  }

  // Review h2, finding 5: a client gone mid-body was logged as an internal error (CHAOS_INTERNAL).
  it('a client that closes the connection mid-body is logged as CHAOS_REQUEST_ABORTED at info, and nothing is created', async () => {
    const from = chaos.logged.length;
    const client = await connectClient(portOf(new URL(chaos.server.url).host));
    client.write('POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"name": "half", "upst');
    // The headers and part of the body go out before the FIN, so the server reads the request, then the close.
    client.socket.end();
    const entry = await eventually('the abort to be logged', () => chaos.logged.slice(from).find((e) => e.fields.code === 'CHAOS_REQUEST_ABORTED'));
    assert.equal(entry.level, 'info');
    assert.ok(!chaos.logged.slice(from).some((e) => e.level === 'error' || e.fields.code === 'CHAOS_INTERNAL'));
    assert.equal((await call('GET', '/proxies/half')).status, 404);
  });

  it('refuses a chunked body that grows past the limit with 413 (no content-length to check first)', async () => {
    const from = chaos.logged.length;
    const piece = new TextEncoder().encode(' '.repeat(65_536));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 8) controller.enqueue(piece);
        else controller.close();
      },
    });
    const response = await fetch(`${chaos.server.url}/proxies`, { method: 'POST', body, duplex: 'half' } as RequestInit);
    assert.equal(response.status, 413);
    assert.deepEqual(await response.json(), { error: 'request body larger than 262144 bytes', status: 413 });
    assert.ok(chaos.logged.slice(from).some((entry) => entry.fields.code === 'CHAOS_BODY_TOO_LARGE'));
  });

  it('refuses a listen address that is taken with 500 and Go\'s words, and adds no proxy', async () => {
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const port = (squatter.address() as { port: number }).port;
    try {
      await assertRefusal({
        what: 'a taken listen address', method: 'POST', path: '/proxies', body: { name: 'squat', listen: `127.0.0.1:${port}`, upstream: upstream.address },
        status: 500, error: `listen tcp 127.0.0.1:${port}: bind: address already in use`, code: 'CHAOS_LISTEN_FAILED',
      });
      assert.equal((await call('GET', '/proxies/squat')).status, 404);
      // A populate that fails on its second entry answers with the error and the proxy it applied.
      const { status, body } = await call('POST', '/populate', [
        { name: 'applied', upstream: upstream.address }, { name: 'squat', listen: `127.0.0.1:${port}`, upstream: upstream.address },
      ]);
      assert.equal(status, 500);
      const answer = body as { error: string; status: number; proxies: Array<{ name: string }> };
      assert.equal(answer.error, `listen tcp 127.0.0.1:${port}: bind: address already in use`);
      assert.deepEqual(answer.proxies.map((p) => p.name), ['applied']);
      assert.equal((await call('DELETE', '/proxies/applied')).status, 204);
    } finally {
      squatter.close();
    }
  });

  it('refuses a proxy or toxic past the limits with 409', async () => {
    const small = await startTestChaos({ limits: { proxiesMax: 1, toxicsPerProxyMax: 1 } });
    try {
      const proxy = await small.toxiproxy.createProxy({ name: 'only', listen: '127.0.0.1:0', upstream: upstream.address });
      await proxy.addToxic({ name: 'one', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 0, jitter: 0 } });
      const more = await fetch(`${small.server.url}/proxies`, { method: 'POST', body: JSON.stringify({ name: 'two', upstream: upstream.address }) });
      assert.equal(more.status, 409);
      assert.deepEqual(await more.json(), { error: 'the server holds at most 1 proxies', status: 409 });
      const toxicMore = await fetch(`${small.server.url}/proxies/only/toxics`, { method: 'POST', body: JSON.stringify({ type: 'timeout' }) });
      assert.deepEqual(await toxicMore.json(), { error: 'a proxy holds at most 1 toxics', status: 409 });
      assert.ok(small.logged.filter((l) => l.fields.code === 'CHAOS_LIMIT_REACHED').length === 2);
    } finally {
      await small.server.close();
    }
  });

  it('closes a client past the connection limit, logging the code; the open connection goes on', async () => {
    const small = await startTestChaos({ limits: { connectionsPerProxyMax: 1 } });
    try {
      const proxy = await small.toxiproxy.createProxy({ name: 'narrow', listen: '127.0.0.1:0', upstream: upstream.address });
      const first = await connectClient(portOf(proxy.listen));
      first.write('one');
      await first.receivedAtLeast(3);
      const second = await connectClient(portOf(proxy.listen));
      await second.untilEnded();
      assert.ok(small.logged.some((l) => l.fields.code === 'CHAOS_CONNECTIONS_FULL' && l.fields.proxy === 'narrow'));
      first.write('two');
      assert.equal((await first.receivedAtLeast(6)).toString(), 'onetwo');
      first.socket.destroy();
    } finally {
      await small.server.close();
    }
  });

  it('closes the client when the upstream cannot be reached, logging the code', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const deadPort = (closed.address() as { port: number }).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const dead = await chaos.toxiproxy.createProxy({ name: 'dead_end', listen: '127.0.0.1:0', upstream: `127.0.0.1:${deadPort}` });
    const client = await connectClient(portOf(dead.listen));
    await client.untilEnded();
    assert.ok(chaos.logged.some((l) => l.fields.code === 'CHAOS_UPSTREAM_UNREACHABLE' && l.fields.proxy === 'dead_end'));
    await dead.remove();
  });
});
