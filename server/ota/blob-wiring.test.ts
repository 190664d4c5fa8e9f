import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import { sqlJsTarget, type Harness } from '../control-plane/test-support.js';
import type { OtaServices } from './ota-service.js';
import type { RepositoryKeys } from './repository-init.js';
import { makeOtaHarness } from './test-support.js';

/**
 * The blob store as the control plane wires it (attachOta): embedded in the data directory,
 * mounted on the real HTTP app at /v1/blobs (with the app's own hooks, parsers and limits), and
 * presigning for the API's listen address unless a public base URL is configured.
 */
async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

describe('the control plane\'s embedded blob store', () => {
  let h: Harness & { ota: OtaServices; keys: RepositoryKeys | undefined };
  let apiUrl: string;

  before(async () => {
    h = await makeOtaHarness(sqlJsTarget);
  });
  after(async () => { await h.close(); await sqlJsTarget.cleanup(); });

  it('presigns nothing before the API listens (no address to name), then URLs for the listen address', async () => {
    assert.equal(h.cp.blobStore.kind, 'embedded');
    await assert.rejects(h.cp.blobStore.presign('GET', 'x/y.bin', 60), (error: unknown) => SdcError.is(error, 'OTA_PRESIGN_INVALID'));
    ({ url: apiUrl } = await h.cp.listen({ host: '127.0.0.1', port: 0, tls: false }));
    assert.ok((await h.cp.blobStore.presign('GET', 'x/y.bin', 60)).startsWith(`${apiUrl}/v1/blobs/sdc/x/y.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256&`));
  });

  it('takes a presigned PUT (any content type) and serves a presigned ranged GET through the app; a tampered URL is 403 with S3 XML', async () => {
    const body = randomBytes(50_000);
    // application/json: the app's JSON parser must not touch a blob's body.
    const put = await fetch(await h.cp.blobStore.presign('PUT', 'uploads/a.bin', 300), { method: 'PUT', body, headers: { 'content-type': 'application/json' } });
    assert.equal(put.status, 200, await put.text());
    assert.deepEqual(await readAll((await h.cp.blobStore.read('uploads/a.bin'))!), body);
    const url = await h.cp.blobStore.presign('GET', 'uploads/a.bin', 300);
    const ranged = await fetch(url, { headers: { range: 'bytes=1000-1999' } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get('content-range'), `bytes 1000-1999/${body.length}`);
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), body.subarray(1000, 2000));
    const otherObject = url.replace('/uploads/a.bin?', '/uploads/b.bin?');
    const refused = await fetch(otherObject);
    assert.equal(refused.status, 403);
    assert.match(await refused.text(), /<Code>SignatureDoesNotMatch<\/Code>/);
    const wrongMethod = await fetch(url, { method: 'PUT', body: 'x' });
    assert.equal(wrongMethod.status, 403, 'a GET URL does not authorise a PUT');
  });

  it('a URL past its expiry on the control plane\'s clock is 403 AccessDenied', async () => {
    await h.cp.blobStore.put('uploads/c.bin', [Buffer.from('c')], { bytesMax: 10 });
    const url = await h.cp.blobStore.presign('GET', 'uploads/c.bin', 60);
    h.clock.advance(60_000);
    const expired = await fetch(url);
    assert.equal(expired.status, 403);
    assert.match(await expired.text(), /<Code>AccessDenied<\/Code>/);
  });
});

describe('a configured public base URL', () => {
  let h: Harness & { ota: OtaServices; keys: RepositoryKeys | undefined };
  before(async () => { h = await makeOtaHarness(sqlJsTarget, { otaBlobs: { publicBaseUrl: 'https://cp.example:9443' } }); });
  after(async () => { await h.close(); await sqlJsTarget.cleanup(); });

  it('is what presigned URLs name, before and after the API listens', async () => {
    assert.ok((await h.cp.blobStore.presign('GET', 'x.bin', 60)).startsWith('https://cp.example:9443/v1/blobs/sdc/x.bin?'));
    await h.cp.listen({ host: '127.0.0.1', port: 0, tls: false });
    assert.ok((await h.cp.blobStore.presign('PUT', 'x.bin', 60)).startsWith('https://cp.example:9443/v1/blobs/sdc/x.bin?'));
  });
});
