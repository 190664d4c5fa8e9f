import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { blobRoutes } from './blob-routes.js';
import { EmbeddedBlobStore, loadOrCreateBlobCredentials } from './blob-store.js';

test('mounted on a Fastify app, the embedded store takes a presigned PUT, serves a presigned ranged GET and refuses a tampered URL with S3 XML', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'sdc-blob-routes-'));
  const app = Fastify();
  let store: EmbeddedBlobStore | undefined;
  await app.register(blobRoutes, { store: () => store });
  await app.listen({ port: 0, host: '127.0.0.1' });
  try {
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    store = new EmbeddedBlobStore({ directory: join(directory, 'blobs'), publicBaseUrl: base, credentials: await loadOrCreateBlobCredentials(directory), clock: { nowMs: () => Date.now() }, putBytesMax: 1 << 20 });
    const body = Buffer.from('artifact bytes '.repeat(1000));
    const put = await fetch(await store.presign('PUT', 'releases/r1/a.bin', 300), { method: 'PUT', body, headers: { 'content-type': 'application/json' } });
    assert.equal(put.status, 200);
    const url = await store.presign('GET', 'releases/r1/a.bin', 300);
    const ranged = await fetch(url, { headers: { range: 'bytes=15-29' } });
    assert.equal(ranged.status, 206);
    assert.equal(await ranged.text(), 'artifact bytes ');
    const tampered = new URL(url);
    tampered.searchParams.set('X-Amz-Expires', '3600');
    const refused = await fetch(tampered);
    assert.equal(refused.status, 403);
    assert.match(await refused.text(), /<Code>SignatureDoesNotMatch<\/Code>/);
  } finally {
    await app.close();
    await rm(directory, { recursive: true, force: true });
  }
});
