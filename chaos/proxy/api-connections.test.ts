import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { connectClient, eventually, startTestChaos, type Peer, type TestChaos } from './test-support.js';

// The chaos API's connections (review h1, LOW): idle keep-alive connections used to be kept forever
// and new ones refused at apiConnectionsMax, so a local caller holding that many idle connections
// locked every other client out. An idle connection is now closed after apiIdleTimeoutMs, and at
// the bound a new client closes the connection idle longest; one serving a request is never taken.
// Order and outcomes are asserted, not times: the waits are generous (a busy machine is slow).

/** Long enough for any machine to answer; a wait that passes never fails for being long. */
const closeWaitMs = 30_000;

async function apiClient(chaos: TestChaos): Promise<Peer> {
  return connectClient(Number(new URL(chaos.server.url).port));
}

/** One keep-alive GET on `peer`; resolves with the raw answer once it is whole. */
async function get(peer: Peer, path = '/version'): Promise<string> {
  const before = peer.received.length;
  peer.write(`GET ${path} HTTP/1.1\r\nHost: chaos\r\nUser-Agent: test\r\n\r\n`);
  return eventually('an answer', () => {
    const text = peer.received.subarray(before).toString('utf8');
    const head = text.indexOf('\r\n\r\n');
    if (head < 0) return undefined;
    const length = Number(/content-length: (\d+)/i.exec(text.slice(0, head))?.[1] ?? 0);
    return text.length >= head + 4 + length ? text : undefined;
  });
}

describe('chaos API connections', () => {
  const started: TestChaos[] = [];
  const peers: Peer[] = [];
  const chaosWith = async (limits: Parameters<typeof startTestChaos>[0]) => {
    const chaos = await startTestChaos(limits);
    started.push(chaos);
    return chaos;
  };
  const idleClient = async (chaos: TestChaos): Promise<Peer> => {
    const peer = await apiClient(chaos);
    peers.push(peer);
    assert.match(await get(peer), /^HTTP\/1\.1 200 /);
    return peer;
  };
  after(async () => {
    for (const peer of peers) peer.socket.destroy();
    for (const chaos of started) await chaos.server.close();
  });

  it('closes a keep-alive connection idle for apiIdleTimeoutMs, and hints a much shorter idle time to clients', async () => {
    const chaos = await chaosWith({ limits: { apiIdleTimeoutMs: 300 } });
    const peer = await idleClient(chaos);
    await eventually('the idle connection closed by the server', () => (peer.ended ? true : undefined), closeWaitMs);

    const defaults = await chaosWith({});
    const answer = await get(await idleClient(defaults));
    assert.match(answer, /\r\nConnection: keep-alive\r\n/i);
    assert.match(answer, /\r\nKeep-Alive: timeout=5\r\n/i, 'clients are told 5 s; the server waits 65 s');
  });

  /** A connection serving a request: a POST whose body has not all arrived, past the server's 100 Continue (its request event has run). */
  const busyClient = async (chaos: TestChaos, body: string): Promise<Peer> => {
    const peer = await apiClient(chaos);
    peers.push(peer);
    peer.write(`POST /proxies HTTP/1.1\r\nHost: chaos\r\nUser-Agent: test\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 4)}`);
    await eventually('100 Continue', () => (peer.text.startsWith('HTTP/1.1 100 Continue\r\n\r\n') ? true : undefined));
    return peer;
  };

  it('at apiConnectionsMax a new client closes the connection idle longest, never one serving a request', async () => {
    const chaos = await chaosWith({ limits: { apiConnectionsMax: 3 } });
    const body = JSON.stringify({ name: 'late', upstream: '127.0.0.1:1', listen: '127.0.0.1:0' });
    const busy = await busyClient(chaos, body);
    const [first, second] = [await idleClient(chaos), await idleClient(chaos)];
    // `first` used again: now `second` is the one idle longest.
    await get(first);

    const newcomer = await idleClient(chaos);
    await second.untilEnded();
    assert.deepEqual([busy.ended, first.ended, newcomer.ended], [false, false, false], 'only the connection idle longest was taken');

    // Toxiproxy's client gets in too (its connection takes `first`), and the next newcomer takes the one idle longest after it.
    assert.deepEqual(Object.keys(await chaos.toxiproxy.getAll()), []);
    await first.untilEnded();
    await idleClient(chaos);
    await newcomer.untilEnded();
    assert.equal(busy.ended, false, 'the connection serving a request is kept throughout');

    // The busy request finishes and is answered on its connection.
    busy.write(body.slice(4));
    const answered = await eventually('the POST answered', () => (/\r\n\r\nHTTP\/1\.1 \d{3} /.test(busy.text) ? busy.text : undefined));
    assert.match(answered, /\r\n\r\nHTTP\/1\.1 201 /);
  });

  it('refuses a new client only when every connection is serving a request', async () => {
    const chaos = await chaosWith({ limits: { apiConnectionsMax: 2 } });
    const body = JSON.stringify({ name: 'never', upstream: '127.0.0.1:1' });
    await busyClient(chaos, body);
    await busyClient(chaos, body);
    const refused = await apiClient(chaos);
    peers.push(refused);
    await refused.untilEnded();
    assert.ok(chaos.logged.some((line) => line.fields['code'] === 'CHAOS_CONNECTIONS_FULL' && line.fields['api'] === true));
  });
});
