import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { connectClient, eventually, portOf, startTestChaos, Upstream, type TestChaos } from './test-support.js';

// The HTTP API driven through toxiproxy-node-client, as a scenario would drive Toxiproxy.
describe('chaos proxy API through toxiproxy-node-client', () => {
  let chaos: TestChaos;
  let upstream: Upstream;

  before(async () => {
    upstream = await Upstream.start({ echo: true });
  });
  after(async () => {
    await upstream.close();
  });
  beforeEach(async () => {
    chaos = await startTestChaos();
  });
  afterEach(async () => {
    await chaos.server.close();
  });

  async function echoThrough(listen: string, text: string): Promise<string> {
    const client = await connectClient(portOf(listen));
    client.write(text);
    const received = await client.receivedAtLeast(text.length);
    client.socket.destroy();
    return received.toString('utf8');
  }

  it('answers /version as JSON', async () => {
    assert.deepEqual(JSON.parse(await chaos.toxiproxy.getVersion()), { version: '2.9.0+sdc' });
  });

  it('creates a proxy on a free port (listen port 0), shows, lists and proxies through it', async () => {
    const proxy = await chaos.toxiproxy.createProxy({ name: 'echo_1', listen: '127.0.0.1:0', upstream: upstream.address });
    assert.equal(proxy.enabled, true);
    assert.match(proxy.listen, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(portOf(proxy.listen), 0);
    const shown = await chaos.toxiproxy.get('echo_1');
    assert.deepEqual(shown.toJson(), proxy.toJson());
    assert.deepEqual(Object.keys(await chaos.toxiproxy.getAll()), ['echo_1']);
    assert.equal(await echoThrough(proxy.listen, 'ping'), 'ping');
  });

  it('disabling closes open connections and refuses new ones; enabling listens again on the same address', async () => {
    const proxy = await chaos.toxiproxy.createProxy({ name: 'downable', listen: '127.0.0.1:0', upstream: upstream.address });
    const open = await connectClient(portOf(proxy.listen));
    await eventually('the proxied connection', () => (chaos.server.registry.get('downable').stats().length === 1 ? true : undefined));
    const disabled = await proxy.update({ enabled: false, listen: proxy.listen, upstream: proxy.upstream });
    assert.equal(disabled.enabled, false);
    await open.untilEnded();
    await assert.rejects(connectClient(portOf(proxy.listen)), { code: 'ECONNREFUSED' });
    const enabled = await disabled.update({ enabled: true, listen: disabled.listen, upstream: disabled.upstream });
    assert.equal(enabled.listen, proxy.listen);
    assert.equal(await echoThrough(enabled.listen, 'again'), 'again');
  });

  it('deletes a proxy: its port is closed and it is gone from the list', async () => {
    const proxy = await chaos.toxiproxy.createProxy({ name: 'doomed', listen: '127.0.0.1:0', upstream: upstream.address });
    await proxy.remove();
    await assert.rejects(connectClient(portOf(proxy.listen)), { code: 'ECONNREFUSED' });
    assert.deepEqual(await chaos.toxiproxy.getAll(), {});
    await assert.rejects(chaos.toxiproxy.get('doomed'), /404/);
  });

  it('populates proxies; a second populate keeps an unchanged proxy with its toxics and replaces a changed one', async () => {
    const other = await Upstream.start({ echo: true });
    try {
      const first = await chaos.toxiproxy.populate([
        { name: 'a', listen: '127.0.0.1:0', upstream: upstream.address },
        { name: 'b', listen: '127.0.0.1:0', upstream: upstream.address, enabled: false },
      ]);
      assert.deepEqual(Object.keys(first), ['a', 'b']);
      assert.equal(first.b!.enabled, false);
      await first.a!.addToxic({ name: 'slow', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 1, jitter: 0 } });
      const second = await chaos.toxiproxy.populate([
        { name: 'a', listen: '127.0.0.1:0', upstream: upstream.address },
        { name: 'b', listen: '127.0.0.1:0', upstream: other.address },
      ]);
      assert.equal(second.a!.listen, first.a!.listen, 'unchanged proxy keeps its port');
      assert.deepEqual((await chaos.toxiproxy.get('a')).toJson(), second.a!.toJson());
      assert.equal((await second.a!.getToxic('slow')).name, 'slow');
      assert.equal(second.b!.upstream, other.address);
      assert.equal(second.b!.enabled, true);
      assert.equal(await echoThrough(second.b!.listen, 'via b'), 'via b');
      await other.peer(0);
    } finally {
      await other.close();
    }
  });

  it('reset enables every proxy and removes every toxic', async () => {
    const proxy = await chaos.toxiproxy.createProxy({ name: 'r', listen: '127.0.0.1:0', upstream: upstream.address });
    await proxy.addToxic({ name: 'hold', type: 'timeout', stream: 'upstream', toxicity: 1, attributes: { timeout: 0 } });
    await proxy.update({ enabled: false, listen: proxy.listen, upstream: proxy.upstream });
    await chaos.toxiproxy.reset();
    const shown = await chaos.toxiproxy.get('r');
    assert.equal(shown.enabled, true);
    const toxics = (await (await fetch(`${chaos.server.url}/proxies/r/toxics`)).json()) as unknown[];
    assert.deepEqual(toxics, []);
    assert.equal(await echoThrough(shown.listen, 'free'), 'free');
  });

  it('creates, shows, lists, updates and deletes toxics with Toxiproxy defaults and shapes', async () => {
    const proxy = await chaos.toxiproxy.createProxy({ name: 't', listen: '127.0.0.1:0', upstream: upstream.address });
    // name, stream and toxicity left out: Toxiproxy defaults them to <type>_<stream>, downstream, 1.
    const response = await fetch(`${chaos.server.url}/proxies/t/toxics`, { method: 'POST', body: JSON.stringify({ type: 'latency', attributes: { latency: 5 } }) });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { name: 'latency_downstream', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 5, jitter: 0 } });
    await proxy.addToxic({ name: 'cap', type: 'bandwidth', stream: 'upstream', toxicity: 0.25, attributes: { rate: 100 } });
    const listed = (await (await fetch(`${chaos.server.url}/proxies/t/toxics`)).json()) as Array<{ name: string }>;
    assert.deepEqual(listed.map((t) => t.name), ['cap', 'latency_downstream'], 'upstream toxics first, as Toxiproxy lists them');
    const latency = await proxy.getToxic<{ latency: number; jitter: number }>('latency_downstream');
    const updated = await latency.update({ ...latency.toJson(), attributes: { latency: 7, jitter: 2 }, toxicity: 0.5 });
    assert.deepEqual(updated.toJson(), { name: 'latency_downstream', type: 'latency', stream: 'downstream', toxicity: 0.5, attributes: { latency: 7, jitter: 2 } });
    // An update may give some attributes only: the others keep their values.
    const patched = await fetch(`${chaos.server.url}/proxies/t/toxics/latency_downstream`, { method: 'PATCH', body: JSON.stringify({ attributes: { jitter: 1 } }) });
    assert.deepEqual(((await patched.json()) as { attributes: unknown }).attributes, { latency: 7, jitter: 1 });
    await updated.remove();
    const shown = (await (await fetch(`${chaos.server.url}/proxies/t`)).json()) as { toxics: Array<{ name: string }> };
    assert.deepEqual(shown.toxics.map((t) => t.name), ['cap']);
  });

  it('lists proxies with their toxics in GET /proxies', async () => {
    const proxy = await chaos.toxiproxy.createProxy({ name: 'listed', listen: '127.0.0.1:0', upstream: upstream.address });
    await proxy.addToxic({ name: 'cut', type: 'slicer', stream: 'downstream', toxicity: 1, attributes: { average_size: 4, size_variation: 1, delay: 0 } });
    const index = (await (await fetch(`${chaos.server.url}/proxies`)).json()) as Record<string, { toxics: unknown[] }>;
    assert.deepEqual(index.listed!.toxics, [{ name: 'cut', type: 'slicer', stream: 'downstream', toxicity: 1, attributes: { average_size: 4, size_variation: 1, delay: 0 } }]);
  });
});
