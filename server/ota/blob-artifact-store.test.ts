import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import { BlobArtifactStore, FileArtifactStore } from './artifact-store.js';
import { blobFixtures, type BlobFixture } from './blob-store-test-support.js';
import { publicBaseFromListenUrl } from './control-plane-ota.js';

/**
 * Release artifacts in the blob store (BlobArtifactStore), on both adapters: the embedded store
 * on a real socket and S3 (s3rver). Stored under their SHA-256, readable back, presigned for a
 * device's GET; an upload over the limit keeps nothing; an artifact of an older data directory
 * (FileArtifactStore) is still served and moved into the blob store when first presigned.
 */
const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const once = (bytes: Uint8Array) => (async function* () { yield bytes; })();

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

for (const [name, open] of blobFixtures) {
  describe(`BlobArtifactStore on the ${name} blob store`, () => {
    let fixture: BlobFixture;
    let legacyDir: string;
    let legacy: FileArtifactStore;
    let store: BlobArtifactStore;

    before(async () => {
      fixture = await open();
      legacyDir = await mkdtemp(join(tmpdir(), 'sdc-legacy-artifacts-'));
      legacy = new FileArtifactStore(legacyDir);
      store = new BlobArtifactStore(fixture.store, legacy);
    });
    after(async () => {
      await fixture.close();
      await rm(legacyDir, { recursive: true, force: true });
    });

    it('stores an artifact under its SHA-256 with its SHA-512, reads it back and presigns a GET that serves exactly it', async () => {
      const bytes = randomBytes(70_000);
      const stored = await store.put(once(bytes), { bytesMax: 1 << 20 });
      assert.deepEqual(stored, { length: bytes.length, sha256: sha(bytes), sha512: createHash('sha512').update(bytes).digest('hex') });
      const opened = await store.open(stored.sha256);
      assert.equal(opened?.length, bytes.length);
      assert.deepEqual(await readAll(opened!.stream), bytes);
      const url = await store.presignGet(stored.sha256, 300);
      assert.ok(url !== undefined && new URL(url).pathname.endsWith(`/ota/artifacts/${stored.sha256}`), url);
      const answer = await fetch(url);
      assert.equal(answer.status, 200);
      assert.deepEqual(Buffer.from(await answer.arrayBuffer()), bytes);
      // Uploading the same bytes again is harmless; the upload key is gone either way.
      assert.deepEqual(await store.put(once(bytes), { bytesMax: 1 << 20 }), stored);
    });

    it('an upload over the limit is OTA_UPLOAD_TOO_LARGE and leaves no artifact', async () => {
      const bytes = randomBytes(5_000);
      await assert.rejects(store.put(once(bytes), { bytesMax: 4_999 }), (error: unknown) => SdcError.is(error, 'OTA_UPLOAD_TOO_LARGE'));
      assert.equal(await store.open(sha(bytes)), undefined);
      assert.equal(await store.presignGet(sha(bytes), 300), undefined);
    });

    it('an artifact of an older data directory is served, and moved into the blob store when first presigned', async () => {
      const bytes = randomBytes(20_000);
      const stored = await legacy.put(once(bytes), { bytesMax: 1 << 20 });
      assert.equal(await fixture.store.head(BlobArtifactStore.key(stored.sha256)), undefined);
      assert.deepEqual(await readAll((await store.open(stored.sha256))!.stream), bytes);
      const url = await store.presignGet(stored.sha256, 300);
      assert.equal((await fixture.store.head(BlobArtifactStore.key(stored.sha256)))?.length, bytes.length);
      assert.deepEqual(Buffer.from(await (await fetch(url!)).arrayBuffer()), bytes);
    });

    it('a malformed digest opens and presigns nothing', async () => {
      assert.equal(await store.open('../blobs.key'), undefined);
      assert.equal(await store.presignGet('A'.repeat(64), 300), undefined);
    });
  });
}

describe('the public base URL presigned URLs name', () => {
  it('is the listen address, with a wildcard address made loopback', () => {
    assert.equal(publicBaseFromListenUrl('https://127.0.0.1:8080'), 'https://127.0.0.1:8080');
    assert.equal(publicBaseFromListenUrl('https://0.0.0.0:8080'), 'https://127.0.0.1:8080');
    assert.equal(publicBaseFromListenUrl('http://[::]:9000'), 'http://[::1]:9000');
    assert.equal(publicBaseFromListenUrl('https://[::1]:8080'), 'https://[::1]:8080');
  });
});
