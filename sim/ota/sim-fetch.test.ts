import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Fastify, { type FastifyInstance } from 'fastify';
import { SdcError } from '../../core/errors/index.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { OtaObserver } from './ota-observer.js';
import { SimFetch, type CutWindow } from './sim-fetch.js';

// The simulated devices' fetch adapter against a small Fastify app in process (the simulator
// gives it the control plane's): metadata answered with the byte limit applied, the artifact's
// body delivered chunk by chunk on virtual time, a cut window that breaks a body at its share of
// the artifact and finds no server for new requests, and a destroy that ends a pending read.

const artifact = Buffer.from(Uint8Array.from({ length: 4_096 }, (_, i) => i & 0xff));

describe('SimFetch: the devices\' OTA network on virtual time', () => {
  let app: FastifyInstance;
  const hosts: string[] = [];

  before(async () => {
    app = Fastify();
    app.get('/meta/:file', async (request, reply) => {
      hosts.push(String(request.headers.host));
      const { file } = request.params as { file: string };
      return file === 'root.json' ? reply.send('{"signed":{}}') : reply.status(404).send('no');
    });
    app.get('/blob', async (request, reply) => {
      const match = /^bytes=(\d+)-$/.exec(String(request.headers.range ?? ''));
      const first = match === null ? 0 : Number(match[1]);
      reply.header('etag', '"abc"');
      if (match !== null) reply.status(206).header('content-range', `bytes ${first}-${artifact.length - 1}/${artifact.length}`);
      return reply.send(artifact.subarray(first));
    });
    await app.ready();
  });
  after(async () => { await app.close(); });

  const make = (time: VirtualTime, cuts: CutWindow[], observer = new OtaObserver(), up = true) => new SimFetch({
    deviceId: 'dev-1', app: () => (up ? app : undefined), time, cuts, observer, trace: () => undefined, hold: () => undefined,
    rate: { bytesPerSecond: 1_024_000, chunkBytes: 1_024 },
  });

  it('metadata: the bytes, a status refusal, the byte limit, and no server while the control plane is down', async () => {
    const time = new VirtualTime(0);
    const fetch = make(time, []);
    const ok = await fetch.fetch('https://cp.sim.invalid/meta/root.json', { bytesMax: 100 }, 'root');
    assert.ok(ok.ok && new TextDecoder().decode(ok.bytes) === '{"signed":{}}');
    assert.equal(hosts.at(-1), 'cp.sim.invalid', 'the host the URL names (a presigned URL signs it)');
    const missing = await fetch.fetch('https://cp.sim.invalid/meta/2.root.json', { bytesMax: 100 }, 'next root');
    assert.ok(!missing.ok && missing.status === 404 && SdcError.is(missing.error, 'TUF_DOWNLOAD_FAILED'));
    const big = await fetch.fetch('https://cp.sim.invalid/meta/root.json', { bytesMax: 4 }, 'root');
    assert.ok(!big.ok && SdcError.is(big.error, 'TUF_TOO_LARGE'));
    const down = await make(time, [], new OtaObserver(), false).fetch('https://cp.sim.invalid/meta/root.json', { bytesMax: 100 }, 'root');
    assert.ok(!down.ok && SdcError.is(down.error, 'TUF_DOWNLOAD_FAILED'));
  });

  it('the artifact: one chunk per chunk time on virtual time; in a cut window the body breaks at its share and a new request finds no server', async () => {
    const time = new VirtualTime(0);
    const observer = new OtaObserver();
    observer.taken('dev-1', { executionId: 'ex-1', wave: 0, brick: null, length: artifact.length, targetsRoute: false });
    const fetch = make(time, [{ startMs: 2, endMs: 100, cutAtPercent: 50 }], observer);
    const response = await fetch.get(new URL('https://cp.sim.invalid/blob'), {}, new AbortController().signal);
    assert.equal(response.status, 200);
    const pending = response.next();
    time.advance(1);
    assert.equal((await pending)?.length, 1_024, 'the first chunk after 1 ms at 1,024,000 bytes/s');
    const received: number[] = [1_024];
    let cut: unknown;
    for (let i = 0; i < 8 && cut === undefined; i += 1) {
      const next = response.next();
      time.advance(1);
      await next.then((chunk) => { if (chunk !== undefined) received.push(chunk.length); }, (error: unknown) => { cut = error; });
    }
    assert.deepEqual(received, [1_024, 1_024], 'cut once it held 50 % (2,048 of 4,096 bytes)');
    assert.ok(cut instanceof Error && !(cut instanceof SdcError), 'a cut is a broken connection, not a refusal');
    assert.equal(observer.records.get('dev-1')!.attempts[0]!.cutAtOffset, 2_048);
    await assert.rejects(fetch.get(new URL('https://cp.sim.invalid/blob'), { range: 'bytes=2048-', 'if-range': '"abc"' }, new AbortController().signal));
    assert.deepEqual(observer.records.get('dev-1')!.attempts.map((a) => [a.startOffset, a.status]), [[0, 200], [2_048, 'unreachable']]);
    time.advance(200);
    const resumed = await fetch.get(new URL('https://cp.sim.invalid/blob'), { range: 'bytes=2048-', 'if-range': '"abc"' }, new AbortController().signal);
    assert.equal(resumed.status, 206);
    assert.equal(resumed.contentRange, 'bytes 2048-4095/4096');
    const read = resumed.next();
    resumed.destroy(new Error('stopped'));
    await assert.rejects(read, /stopped/);
  });
});
