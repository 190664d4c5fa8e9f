import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { SdcError } from '../../core/errors/index.js';
import { chooseRange, loadOrCreateBlobCredentials } from './blob-store.js';
import { blobFixtures, bytesMax, embedded } from './blob-store-test-support.js';
import type { BlobFixture } from './blob-store-test-support.js';

async function refused(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => error instanceof SdcError && error.code === code);
}

async function errorCode(response: Response): Promise<string> {
  const body = await response.text();
  return /<Code>([^<]+)<\/Code>/.exec(body)?.[1] ?? `no S3 error code in: ${body.slice(0, 200)}`;
}

for (const [name, make] of blobFixtures) {
  describe(`blob store contract: ${name}`, () => {
    let fixture: BlobFixture;
    before(async () => { fixture = await make(); });
    after(async () => { await fixture.close(); });

    test('a presigned PUT stores the object, a presigned GET returns it, head and ETag agree', async () => {
      const body = randomBytes(70_000);
      const put = await fetch(await fixture.store.presign('PUT', 'uploads/dev-1/cmd-1.bin', 300), { method: 'PUT', body });
      assert.equal(put.status, 200, await put.text());
      const head = await fixture.store.head('uploads/dev-1/cmd-1.bin');
      assert.equal(head?.length, body.length);
      const get = await fetch(await fixture.store.presign('GET', 'uploads/dev-1/cmd-1.bin', 300));
      assert.equal(get.status, 200);
      assert.equal(get.headers.get('etag'), head?.etag);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), body);
      assert.equal(await fixture.store.head('uploads/dev-1/other.bin'), undefined);
    });

    test('Range: 206 with the right Content-Range; If-Range with the current ETag continues; past the end 416', async () => {
      const first = Buffer.from('0123456789'.repeat(100));
      const stored = await fixture.store.put('ranges/a.bin', [first], { bytesMax });
      const url = await fixture.store.presign('GET', 'ranges/a.bin', 300);
      const etag = (await fixture.store.head('ranges/a.bin'))!.etag;
      assert.equal(stored.length, 1000);
      const partial = await fetch(url, { headers: { range: 'bytes=990-' } });
      assert.equal(partial.status, 206);
      assert.equal(partial.headers.get('content-range'), 'bytes 990-999/1000');
      assert.equal(await partial.text(), '0123456789');
      const matching = await fetch(url, { headers: { range: 'bytes=10-19', 'if-range': etag } });
      assert.equal(matching.status, 206);
      assert.equal(await matching.text(), '0123456789');
      const past = await fetch(url, { headers: { range: 'bytes=5000-' } });
      assert.equal(past.status, 416);
      await past.arrayBuffer();
    });

    test('If-Range with an old ETag after the object changed gets the whole new object (200), never a range of it', async (t) => {
      if (fixture.lacks.ifRange !== undefined) return t.skip(fixture.lacks.ifRange);
      await fixture.store.put('ranges/b.bin', [Buffer.from('0123456789'.repeat(100))], { bytesMax });
      const url = await fixture.store.presign('GET', 'ranges/b.bin', 300);
      const etag = (await fixture.store.head('ranges/b.bin'))!.etag;
      await fixture.store.put('ranges/b.bin', [Buffer.from('changed '.repeat(125))], { bytesMax });
      const changed = await fetch(url, { headers: { range: 'bytes=10-19', 'if-range': etag } });
      assert.equal(changed.status, 200, 'a changed object is sent whole');
      assert.equal(await changed.text(), 'changed '.repeat(125));
    });

    test('an expired URL gets 403 AccessDenied with an S3 XML error', async () => {
      await fixture.store.put('guarded/e.bin', [Buffer.from('secret e')], { bytesMax });
      const client = new S3Client({ region: fixture.endpoint.region, endpoint: fixture.endpoint.endpoint, forcePathStyle: true, credentials: fixture.endpoint.credentials });
      const expiredUrl = await getSignedUrl(client, new GetObjectCommand({ Bucket: fixture.endpoint.bucket, Key: 'guarded/e.bin' }), { expiresIn: 60, signingDate: new Date(Date.now() - 2 * 60 * 60_000) });
      const expired = await fetch(expiredUrl);
      assert.equal(expired.status, 403);
      assert.equal(await errorCode(expired), 'AccessDenied');
    });

    test('a tampered, re-aimed or wrong-method URL gets 403 SignatureDoesNotMatch', async (t) => {
      if (fixture.lacks.signatureCheck !== undefined) return t.skip(fixture.lacks.signatureCheck);
      await fixture.store.put('guarded/a.bin', [Buffer.from('secret a')], { bytesMax });
      await fixture.store.put('guarded/b.bin', [Buffer.from('secret b')], { bytesMax });
      const url = new URL(await fixture.store.presign('GET', 'guarded/a.bin', 300));
      const tampered = new URL(url);
      const signature = url.searchParams.get('X-Amz-Signature')!;
      tampered.searchParams.set('X-Amz-Signature', (signature[0] === 'a' ? 'b' : 'a') + signature.slice(1));
      const refusedTampered = await fetch(tampered);
      assert.equal(refusedTampered.status, 403);
      assert.equal(await errorCode(refusedTampered), 'SignatureDoesNotMatch');
      const reaimed = new URL(url);
      reaimed.pathname = reaimed.pathname.replace('a.bin', 'b.bin');
      const refusedReaimed = await fetch(reaimed);
      assert.equal(refusedReaimed.status, 403);
      assert.equal(await errorCode(refusedReaimed), 'SignatureDoesNotMatch');
      const refusedMethod = await fetch(url, { method: 'PUT', body: 'overwrite' });
      assert.equal(refusedMethod.status, 403);
      assert.equal(await errorCode(refusedMethod), 'SignatureDoesNotMatch');
      assert.equal(await (await fetch(url)).text(), 'secret a', 'the object is untouched');
    });

    test('presign refuses expiries outside 60 s..1 h and bad keys; put refuses past bytesMax and keeps nothing', async () => {
      await refused(fixture.store.presign('GET', 'x.bin', 59), 'OTA_PRESIGN_INVALID');
      await refused(fixture.store.presign('GET', 'x.bin', 3601), 'OTA_PRESIGN_INVALID');
      await refused(fixture.store.presign('PUT', '../escape', 300), 'OTA_PRESIGN_INVALID');
      await refused(fixture.store.put('big.bin', [randomBytes(600), randomBytes(600)], { bytesMax: 1000 }), 'OTA_UPLOAD_TOO_LARGE');
      assert.equal(await fixture.store.head('big.bin'), undefined);
      const missing = await fetch(await fixture.store.presign('GET', 'missing.bin', 60));
      assert.equal(missing.status, 404);
      assert.equal(await errorCode(missing), 'NoSuchKey');
    });
  });
}

test('embedded: a presigned PUT larger than the limit is refused, the old object stays', async () => {
  const fixture = await embedded();
  try {
    await fixture.store.put('limit/a.bin', [Buffer.from('old')], { bytesMax });
    const refused = await fetch(await fixture.store.presign('PUT', 'limit/a.bin', 300), { method: 'PUT', body: randomBytes(bytesMax + 1) });
    assert.equal(refused.status, 400);
    assert.equal(await errorCode(refused), 'EntityTooLarge');
    assert.equal(await (await fetch(await fixture.store.presign('GET', 'limit/a.bin', 300))).text(), 'old');
  } finally {
    await fixture.close();
  }
});

test('blob key file is created 0600 and read back unchanged', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'sdc-blobkey-'));
  try {
    const first = await loadOrCreateBlobCredentials(directory);
    assert.equal((await stat(join(directory, 'blobs.key.json'))).mode & 0o777, 0o600);
    assert.deepEqual(await loadOrCreateBlobCredentials(directory), first);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('chooseRange follows RFC 9110: single ranges, suffix, If-Range mismatch, several ranges, unsatisfiable', () => {
  assert.deepEqual(chooseRange('bytes=0-9', undefined, '"e"', 100), [0, 9]);
  assert.deepEqual(chooseRange('bytes=90-200', undefined, '"e"', 100), [90, 99]);
  assert.deepEqual(chooseRange('bytes=-10', undefined, '"e"', 100), [90, 99]);
  assert.deepEqual(chooseRange('bytes=-1000', undefined, '"e"', 100), [0, 99]);
  assert.equal(chooseRange('bytes=10-', '"old"', '"e"', 100), 'whole');
  assert.deepEqual(chooseRange('bytes=10-', '"e"', '"e"', 100), [10, 99]);
  assert.equal(chooseRange('bytes=0-1,5-6', undefined, '"e"', 100), 'whole');
  assert.equal(chooseRange('bytes=9-3', undefined, '"e"', 100), 'whole');
  assert.equal(chooseRange('bytes=100-', undefined, '"e"', 100), 'unsatisfiable');
  assert.equal(chooseRange(undefined, undefined, '"e"', 100), 'whole');
});
