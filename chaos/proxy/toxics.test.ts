import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { SeededRandom } from '../../core/random/prng.js';
import type { LinkStats } from './link.js';
import { connectClient, eventually, portOf, startTestChaos, Upstream, type Peer, type TestChaos } from './test-support.js';
import type { ToxicStream } from './toxics/types.js';

// Each toxic's behaviour on real sockets on 127.0.0.1, in each direction. The toxics run on
// virtual time: a test moves the clock and asserts what the proxy let through before and after,
// never how long anything took on the wall clock.

interface Pair {
  readonly client: Peer;
  readonly server: Peer;
  /** The peer whose bytes the toxic's stream carries, and the one that receives them. */
  readonly sender: Peer;
  readonly receiver: Peer;
  /** The proxy's view of the toxic's direction of this connection. */
  link(): LinkStats;
}

describe('chaos proxy toxics on real sockets', () => {
  let upstream: Upstream;
  let chaos: TestChaos;
  let time: VirtualTime;

  before(async () => {
    upstream = await Upstream.start();
  });
  after(async () => {
    await upstream.close();
  });
  beforeEach(async () => {
    time = new VirtualTime(0);
    chaos = await startTestChaos({ time });
  });
  afterEach(async () => {
    await chaos.server.close();
  });

  async function createProxy(name: string) {
    return chaos.toxiproxy.createProxy({ name, listen: '127.0.0.1:0', upstream: upstream.address });
  }

  /** Connects through the proxy and waits until the proxy holds the connection to the upstream. */
  async function openPair(name: string, stream: ToxicStream): Promise<Pair> {
    const proxy = chaos.server.registry.get(name);
    const before = upstream.peers.length;
    const client = await connectClient(portOf(proxy.toJSON().listen));
    const server = await upstream.peer(before);
    // The newest connection: the tests open theirs one after another (older ones may close meanwhile).
    const link = () => proxy.stats().at(-1)!.find((l) => l.stream === stream)!;
    return stream === 'upstream'
      ? { client, server, sender: client, receiver: server, link }
      : { client, server, sender: server, receiver: client, link };
  }

  async function linkHasRead(pair: Pair, bytes: number): Promise<void> {
    await eventually(`the proxy to read ${bytes} bytes`, () => (pair.link().bytesIn >= bytes ? true : undefined));
  }

  for (const stream of ['upstream', 'downstream'] as const) {
    describe(`${stream} stream`, () => {
      it('latency: bytes leave after latency +/- jitter, not before', async () => {
        const proxy = await createProxy('lat');
        await proxy.addToxic({ name: 'lat', type: 'latency', stream, toxicity: 1, attributes: { latency: 100, jitter: 50 } });
        const pair = await openPair('lat', stream);
        pair.sender.write('abc');
        await linkHasRead(pair, 3);
        time.advance(49);
        assert.equal(pair.link().bytesOut, 0, 'nothing leaves before latency - jitter');
        assert.equal(pair.link().heldBytes, 3);
        time.advance(101);
        assert.equal(pair.link().bytesOut, 3, 'everything has left by latency + jitter');
        assert.equal((await pair.receiver.receivedAtLeast(3)).toString(), 'abc');
      });

      it('latency: removing the toxic lets held bytes go at once, in order', async () => {
        const proxy = await createProxy('lat2');
        const toxic = await proxy.addToxic({ name: 'slow', type: 'latency', stream, toxicity: 1, attributes: { latency: 60_000, jitter: 0 } });
        const pair = await openPair('lat2', stream);
        pair.sender.write('first,');
        await linkHasRead(pair, 6);
        pair.sender.write('second');
        await linkHasRead(pair, 12);
        assert.equal(pair.link().bytesOut, 0);
        await toxic.remove();
        assert.equal((await pair.receiver.receivedAtLeast(12)).toString(), 'first,second');
      });

      it('bandwidth: at most rate bytes per second leave, in order', async () => {
        const proxy = await createProxy('bw');
        await proxy.addToxic({ name: 'bw', type: 'bandwidth', stream, toxicity: 1, attributes: { rate: 1 } });
        const pair = await openPair('bw', stream);
        const data = randomBytes(1000);
        pair.sender.write(data);
        await linkHasRead(pair, 1000);
        assert.equal(pair.link().bytesOut, 0, 'the first slice leaves when the wire has sent it');
        time.advance(100);
        assert.equal(pair.link().bytesOut, 100, '1 KB/s: 100 bytes after 100 ms');
        time.advance(400);
        assert.equal(pair.link().bytesOut, 500);
        time.advance(500);
        assert.deepEqual(await pair.receiver.receivedAtLeast(1000), data);
      });

      it('slow_close: bytes pass at once; the FIN is held for the delay', async () => {
        const proxy = await createProxy('sc');
        await proxy.addToxic({ name: 'sc', type: 'slow_close', stream, toxicity: 1, attributes: { delay: 500 } });
        const pair = await openPair('sc', stream);
        pair.sender.socket.end('bye');
        assert.equal((await pair.receiver.receivedAtLeast(3)).toString(), 'bye');
        await eventually('the FIN to reach the proxy', () => (pair.link().sourceEnded ? true : undefined));
        time.advance(499);
        assert.equal(pair.link().sinkEnded, false);
        assert.equal(pair.receiver.ended, false);
        time.advance(1);
        await pair.receiver.untilEnded();
      });

      it('timeout: nothing passes and the connection closes after the timeout', async () => {
        const proxy = await createProxy('to');
        await proxy.addToxic({ name: 'to', type: 'timeout', stream, toxicity: 1, attributes: { timeout: 1000 } });
        const pair = await openPair('to', stream);
        pair.sender.write('lost');
        await linkHasRead(pair, 4);
        time.advance(999);
        assert.equal(pair.link().bytesOut, 0);
        assert.equal(pair.link().sinkEnded, false, 'not closed before the timeout');
        time.advance(1);
        await pair.receiver.untilEnded();
        await pair.sender.untilEnded();
        assert.equal(pair.receiver.received.length, 0);
      });

      it('timeout 0: never closes; held bytes go on, in order, once the toxic is removed', async () => {
        const proxy = await createProxy('to0');
        const toxic = await proxy.addToxic({ name: 'to0', type: 'timeout', stream, toxicity: 1, attributes: { timeout: 0 } });
        const pair = await openPair('to0', stream);
        pair.sender.write('held');
        await linkHasRead(pair, 4);
        time.advance(86_400_000);
        assert.equal(pair.link().bytesOut, 0);
        assert.equal(pair.link().sinkEnded, false);
        await toxic.remove();
        assert.equal((await pair.receiver.receivedAtLeast(4)).toString(), 'held');
        pair.sender.write('+more');
        assert.equal((await pair.receiver.receivedAtLeast(9)).toString(), 'held+more');
      });

      it('reset_peer: the first bytes reset the connection on both sides', async () => {
        const proxy = await createProxy('rp');
        await proxy.addToxic({ name: 'rp', type: 'reset_peer', stream, toxicity: 1, attributes: { timeout: 0 } });
        const pair = await openPair('rp', stream);
        pair.sender.write('x');
        await eventually('ECONNRESET at the client', () => (pair.client.errorCode === 'ECONNRESET' ? true : undefined));
        await eventually('ECONNRESET at the upstream', () => (pair.server.errorCode === 'ECONNRESET' ? true : undefined));
        assert.equal(pair.receiver.received.length, 0);
      });

      it('reset_peer with a timeout: the reset comes that long after the first bytes', async () => {
        const proxy = await createProxy('rpt');
        await proxy.addToxic({ name: 'rpt', type: 'reset_peer', stream, toxicity: 1, attributes: { timeout: 300 } });
        const pair = await openPair('rpt', stream);
        pair.sender.write('x');
        await linkHasRead(pair, 1);
        time.advance(299);
        assert.equal(pair.link().sinkEnded, false);
        assert.equal(pair.client.errorCode, undefined);
        time.advance(1);
        await eventually('ECONNRESET at the client', () => (pair.client.errorCode === 'ECONNRESET' ? true : undefined));
      });

      it('slicer: writes leave in slices of average_size, delay apart', async () => {
        const proxy = await createProxy('sl');
        await proxy.addToxic({ name: 'sl', type: 'slicer', stream, toxicity: 1, attributes: { average_size: 10, size_variation: 0, delay: 1000 } });
        const pair = await openPair('sl', stream);
        const data = randomBytes(35);
        pair.sender.write(data);
        await linkHasRead(pair, 35);
        const sent = [pair.link().bytesOut];
        for (let step = 0; step < 3; step++) {
          time.advance(1);
          sent.push(pair.link().bytesOut);
        }
        assert.deepEqual(sent, [10, 20, 30, 35]);
        assert.deepEqual(await pair.receiver.receivedAtLeast(35), data);
      });

      it('limit_data: the first N bytes pass, then the connection closes', async () => {
        const proxy = await createProxy('ld');
        await proxy.addToxic({ name: 'ld', type: 'limit_data', stream, toxicity: 1, attributes: { bytes: 10 } });
        const pair = await openPair('ld', stream);
        pair.sender.write('0123456789abcdefghijklmno');
        await pair.receiver.untilEnded();
        assert.equal(pair.receiver.text, '0123456789');
        await pair.sender.untilEnded();
      });
    });
  }

  it('slicer with size_variation: every slice is within average_size +/- size_variation', async () => {
    const proxy = await createProxy('slv');
    await proxy.addToxic({ name: 'slv', type: 'slicer', stream: 'downstream', toxicity: 1, attributes: { average_size: 10, size_variation: 3, delay: 1000 } });
    const pair = await openPair('slv', 'downstream');
    pair.sender.write(randomBytes(200));
    await linkHasRead(pair, 200);
    const sizes: number[] = [];
    for (let sent = 0; pair.link().bytesOut < 200; time.advance(1)) {
      sizes.push(pair.link().bytesOut - sent);
      sent = pair.link().bytesOut;
    }
    for (const size of sizes.slice(0, -1)) assert.ok(size >= 7 && size <= 13, `slice of ${size} bytes`);
    assert.ok(new Set(sizes).size > 1, 'the sizes vary');
  });

  it('a toxic added to an open connection applies to it; an updated one takes over what it held', async () => {
    const proxy = await createProxy('live');
    const pair = await openPair('live', 'downstream');
    pair.sender.write('a');
    await pair.receiver.receivedAtLeast(1);
    const toxic = await proxy.addToxic({ name: 'later', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 60_000, jitter: 0 } });
    pair.sender.write('b');
    await linkHasRead(pair, 2);
    assert.equal(pair.link().bytesOut, 1, 'the added latency holds the new byte');
    await toxic.update({ ...toxic.toJson(), attributes: { latency: 0, jitter: 0 } });
    assert.equal((await pair.receiver.receivedAtLeast(2)).toString(), 'ab');
  });

  it('toxicity 0 never applies, toxicity 1 always does', async () => {
    const proxy = await createProxy('tx');
    const never = await proxy.addToxic({ name: 'never', type: 'timeout', stream: 'downstream', toxicity: 0, attributes: { timeout: 0 } });
    const pair = await openPair('tx', 'downstream');
    pair.sender.write('through');
    await pair.receiver.receivedAtLeast(7);
    await never.remove();
    await proxy.addToxic({ name: 'always', type: 'timeout', stream: 'downstream', toxicity: 1, attributes: { timeout: 0 } });
    const held = await openPair('tx', 'downstream');
    held.sender.write('held');
    await linkHasRead(held, 4);
    assert.equal(held.link().bytesOut, 0);
  });

  it('toxicity between 0 and 1 draws once per connection from the seeded PRNG, so a seed pins which ones', async () => {
    const seed = 11;
    await chaos.server.close();
    chaos = await startTestChaos({ time, seed });
    const proxy = await createProxy('half');
    await proxy.addToxic({ name: 'half', type: 'timeout', stream: 'downstream', toxicity: 0.5, attributes: { timeout: 0 } });
    const replica = new SeededRandom(seed);
    const expected = Array.from({ length: 8 }, () => replica.intBelow(1_000_000) < 500_000);
    assert.ok(expected.includes(true) && expected.includes(false), 'the seed gives both outcomes');
    const applied: boolean[] = [];
    for (let i = 0; i < expected.length; i++) {
      const pair = await openPair('half', 'downstream');
      pair.sender.write('?');
      await linkHasRead(pair, 1);
      applied.push(pair.link().heldBytes === 1);
      pair.client.socket.destroy();
    }
    assert.deepEqual(applied, expected);
  });

  it('backpressure: a toxic holding bytes pauses the reading socket at its limit; nothing is lost', async () => {
    await chaos.server.close();
    const heldMax = 65_536;
    chaos = await startTestChaos({ time, limits: { toxicHeldBytesMax: heldMax } });
    const proxy = await createProxy('bp');
    const toxic = await proxy.addToxic({ name: 'hold', type: 'timeout', stream: 'upstream', toxicity: 1, attributes: { timeout: 0 } });
    const pair = await openPair('bp', 'upstream');
    const data = randomBytes(4 * 1024 * 1024);
    pair.sender.write(data);
    await eventually('the proxy to pause reading', () => (pair.link().paused ? true : undefined));
    const readChunkMax = 65_536;
    assert.ok(pair.link().heldBytes <= heldMax + readChunkMax, `held ${pair.link().heldBytes} bytes`);
    assert.ok(pair.link().bytesIn < data.length, 'the client is held back, not buffered');
    await toxic.remove();
    assert.ok((await pair.receiver.receivedAtLeast(data.length)).equals(data));
    assert.equal(pair.link().paused, false);
  });
});

describe('chaos proxy latency on the real clock', () => {
  it('delays bytes by at least the latency (a lower bound only: a busy machine is only slower)', async () => {
    const upstream = await Upstream.start({ echo: true });
    const chaos = await startTestChaos();
    try {
      const proxy = await chaos.toxiproxy.createProxy({ name: 'real', listen: '127.0.0.1:0', upstream: upstream.address });
      await proxy.addToxic({ name: 'lat', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 150, jitter: 0 } });
      const client = await connectClient(portOf(proxy.listen));
      const sentAtMs = performance.now();
      client.write('tick');
      await client.receivedAtLeast(4);
      assert.ok(performance.now() - sentAtMs >= 150, `arrived after ${performance.now() - sentAtMs} ms`);
      client.socket.destroy();
    } finally {
      await chaos.server.close();
      await upstream.close();
    }
  });
});
