import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { createHttpFetcher } from './http-fetcher.js';

/**
 * The HTTP fetcher against a real local server: byte limits are enforced on the socket (declared
 * and undeclared lengths), statuses come back for the workflow to judge, and a silent server is
 * cut off by the idle limit on virtual time (the test advances it once the server holds the request).
 */

async function withServer(handler: (request: IncomingMessage, response: ServerResponse) => void,
  body: (baseUrl: string) => Promise<void>): Promise<void> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await body(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

const limits = { bytesMax: 1_000, idleTimeoutMs: 30_000, totalTimeoutMs: 300_000 };

test('answers the bytes of a 200 within the limit, and the status of anything else', async () => {
  await withServer((request, response) => {
    if (request.url === '/ok') response.end('hello');
    else if (request.url === '/moved') response.writeHead(302, { location: '/ok' }).end();
    else response.writeHead(404).end();
  }, async (base) => {
    const fetcher = createHttpFetcher({ scheduler: new VirtualTime() });
    const ok = await fetcher.fetch(`${base}/ok`, limits, 'ok');
    assert.ok(ok.ok);
    assert.equal(new TextDecoder().decode(ok.bytes), 'hello');
    const moved = await fetcher.fetch(`${base}/moved`, limits, 'moved');
    assert.ok(!moved.ok && moved.status === 302 && moved.error.code === 'TUF_DOWNLOAD_FAILED', 'redirects are not followed');
    const missing = await fetcher.fetch(`${base}/missing`, limits, 'missing');
    assert.ok(!missing.ok && missing.status === 404);
    const badUrl = await fetcher.fetch('file:///etc/passwd', limits, 'file');
    assert.ok(!badUrl.ok && badUrl.error.code === 'TUF_DOWNLOAD_FAILED');
  });
});

test('refuses a declared length over the limit at once, and an undeclared endless body at the limit', async () => {
  let endlessStopped: Promise<void> | undefined;
  await withServer((request, response) => {
    if (request.url === '/declared') {
      response.writeHead(200, { 'content-length': '5000' });
      response.end(Buffer.alloc(5_000));
      return;
    }
    response.writeHead(200); // chunked: no length declared
    const chunk = Buffer.alloc(256);
    endlessStopped = new Promise((resolve) => response.on('close', () => resolve()));
    const pump = (): void => {
      while (!response.destroyed && response.write(chunk));
      if (!response.destroyed) response.once('drain', pump);
    };
    pump();
  }, async (base) => {
    const fetcher = createHttpFetcher({ scheduler: new VirtualTime() });
    const declared = await fetcher.fetch(`${base}/declared`, limits, 'declared');
    assert.ok(!declared.ok && declared.error.code === 'TUF_TOO_LARGE');
    const endless = await fetcher.fetch(`${base}/endless`, limits, 'endless');
    assert.ok(!endless.ok && endless.error.code === 'TUF_TOO_LARGE');
    await endlessStopped; // the client closed the connection: the server's stream ended
  });
});

test('a server that never answers is cut off by the idle limit (virtual time)', async () => {
  let held: () => void = () => undefined;
  const requestArrived = new Promise<void>((resolve) => {
    held = resolve;
  });
  await withServer(() => held(), async (base) => {
    const time = new VirtualTime();
    const fetcher = createHttpFetcher({ scheduler: time });
    const pending = fetcher.fetch(`${base}/silent`, limits, 'silent');
    await requestArrived;
    time.advance(limits.idleTimeoutMs - 1);
    let settled = false;
    void pending.then(() => {
      settled = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, false, 'not before the limit');
    time.advance(1);
    const outcome = await pending;
    assert.ok(!outcome.ok && outcome.error.code === 'TUF_DOWNLOAD_TIMEOUT');
  });
});
