import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { SdcError } from '../../core/errors/index.js';
import { systemScheduler } from '../../runtime/system.js';
import { uploadEncryptedFile } from '../../agent/ota/encrypted-upload.js';
import { blobFixtures, type BlobFixture } from '../../server/ota/blob-store-test-support.js';
import { loadOrCreateArtifactKey, openEncryptedUpload, uploadKey } from '../../server/ota/encrypted-artifacts.js';

// The device's upload module against the control plane's blob store and artifact key, on both
// store adapters: sealed on the device, PUT by presigned URL, opened on the server. What is not
// covered here: the API routes and the agent runtime's command handler (not built yet).
async function refused(run: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(run, (error: unknown) => error instanceof SdcError && error.code === code, code);
}

for (const [name, make] of blobFixtures) {
  describe(`encrypted upload on the ${name} blob store`, () => {
    let fixture: BlobFixture;
    let directory: string;
    before(async () => { fixture = await make(); directory = await mkdtemp(join(tmpdir(), 'sdc-upload-')); });
    after(async () => { await fixture.close(); await rm(directory, { recursive: true, force: true }); });

    test('a device seals and uploads a file by presigned PUT; the server opens it only with the reported digest and binding', async () => {
      const key = await loadOrCreateArtifactKey(join(directory, 'data'));
      assert.equal((await stat(join(directory, 'data', 'keys', 'artifact.key'))).mode & 0o777, 0o600);
      const plain = randomBytes(200_000 + 123);
      const path = join(directory, 'screenshot.png');
      await writeFile(path, plain);
      const binding = { deviceId: 'dev-7', commandId: 'cmd-42' };
      const putUrl = await fixture.store.presign('PUT', uploadKey(binding), 300);
      const uploaded = await uploadEncryptedFile({ path, putUrl, recipientPublicKey: key.publicKey, binding, plaintextBytesMax: 1 << 20, totalTimeoutMs: 30_000, scheduler: systemScheduler });
      assert.equal(uploaded.plaintextLength, plain.length);
      const opened = await openEncryptedUpload({ store: fixture.store, privateKey: key.privateKey, binding, expected: uploaded, plaintextBytesMax: 1 << 20 });
      assert.deepEqual(opened, plain);

      // The bytes in the store are not the plaintext.
      const stored: Uint8Array[] = [];
      for await (const chunk of (await fixture.store.read(uploadKey(binding)))!) stored.push(chunk);
      assert.equal(Buffer.concat(stored).indexOf(plain.subarray(1000, 1064)), -1);

      // A wrong reported digest, another command's binding, a tampered object: all refused.
      await refused(openEncryptedUpload({ store: fixture.store, privateKey: key.privateKey, binding, expected: { ...uploaded, sha256: '0'.repeat(64) }, plaintextBytesMax: 1 << 20 }), 'OTA_UPLOAD_DIGEST_MISMATCH');
      await refused(openEncryptedUpload({ store: fixture.store, privateKey: key.privateKey, binding, expected: { ...uploaded, length: uploaded.length + 1 }, plaintextBytesMax: 1 << 20 }), 'OTA_UPLOAD_DIGEST_MISMATCH');
      const replay = { deviceId: 'dev-7', commandId: 'cmd-43' };
      const sealedBytes = Buffer.concat(stored);
      await fixture.store.put(uploadKey(replay), [sealedBytes], { bytesMax: 1 << 21 });
      await refused(openEncryptedUpload({ store: fixture.store, privateKey: key.privateKey, binding: replay, expected: uploaded, plaintextBytesMax: 1 << 20 }), 'OTA_ARTIFACT_DECRYPT_FAILED');
      const tampered = Buffer.from(sealedBytes);
      tampered[5000] = tampered[5000]! ^ 0x80;
      await fixture.store.put(uploadKey(binding), [tampered], { bytesMax: 1 << 21 });
      await refused(openEncryptedUpload({ store: fixture.store, privateKey: key.privateKey, binding, expected: uploaded, plaintextBytesMax: 1 << 20 }), 'OTA_ARTIFACT_DECRYPT_FAILED');
      await refused(openEncryptedUpload({ store: fixture.store, privateKey: key.privateKey, binding: { deviceId: 'dev-7', commandId: 'never' }, expected: uploaded, plaintextBytesMax: 1 << 20 }), 'OTA_REPOSITORY_NOT_FOUND');
    });

    test('size limits: a file past the limit is refused before any byte is sent; an expired PUT URL is OTA_UPLOAD_FAILED', async () => {
      const key = await loadOrCreateArtifactKey(join(directory, 'data'));
      const path = join(directory, 'big.log');
      await writeFile(path, randomBytes(5000));
      const binding = { deviceId: 'dev-8', commandId: 'cmd-1' };
      const putUrl = await fixture.store.presign('PUT', uploadKey(binding), 300);
      await refused(uploadEncryptedFile({ path, putUrl, recipientPublicKey: key.publicKey, binding, plaintextBytesMax: 4000, totalTimeoutMs: 30_000, scheduler: systemScheduler }), 'OTA_UPLOAD_TOO_LARGE');
      assert.equal(await fixture.store.head(uploadKey(binding)), undefined);
      // A URL signed two hours ago for 60 s, by the same presigner configuration as the store's.
      const client = new S3Client({ region: fixture.endpoint.region, endpoint: fixture.endpoint.endpoint, forcePathStyle: true, credentials: fixture.endpoint.credentials, requestChecksumCalculation: 'WHEN_REQUIRED' });
      const expired = await getSignedUrl(client, new PutObjectCommand({ Bucket: fixture.endpoint.bucket, Key: uploadKey(binding) }), { expiresIn: 60, signingDate: new Date(Date.now() - 2 * 60 * 60_000) });
      await assert.rejects(uploadEncryptedFile({ path, putUrl: expired, recipientPublicKey: key.publicKey, binding, plaintextBytesMax: 1 << 20, totalTimeoutMs: 30_000, scheduler: systemScheduler }),
        (error: unknown) => error instanceof SdcError && error.code === 'OTA_UPLOAD_FAILED' && error.details.status === 403 && error.details.storeCode === 'AccessDenied');
      assert.equal(await fixture.store.head(uploadKey(binding)), undefined);
    });
  });
}
