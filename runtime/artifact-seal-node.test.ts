import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SdcError } from '../core/errors/index.js';
import { artifactPrivateKeyFromPem, generateArtifactKeyPair, openArtifact, sealArtifact, sealedLength } from './artifact-seal-node.js';

const recipient = generateArtifactKeyPair();
const privateKey = artifactPrivateKeyFromPem(recipient.privateKeyPem);
const binding = { deviceId: 'dev-1', commandId: 'cmd-1' };
const recordBytes = 1000;

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function seal(plain: Buffer, bind = binding): Promise<Buffer> {
  // Fed in uneven pieces: record boundaries must not depend on how the input arrives.
  const pieces = [plain.subarray(0, 7), plain.subarray(7, 1500), plain.subarray(1500)];
  return collect(sealArtifact(pieces, recipient.publicKey, bind, { plaintextBytesMax: 1 << 20, recordBytes }));
}

async function refused(run: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(run, (error: unknown) => error instanceof SdcError && error.code === code);
}

test('seal then open gives back the bytes, for empty, short, exact-record and multi-record inputs; sealedLength is exact', async () => {
  for (const size of [0, 1, recordBytes, recordBytes + 1, 3 * recordBytes, 3 * recordBytes + 17]) {
    const plain = randomBytes(size);
    const sealed = await seal(plain);
    assert.equal(sealed.length, sealedLength(size, recordBytes), `size ${size}`);
    // Opened from one-byte-odd pieces too.
    const pieces = [sealed.subarray(0, 3), sealed.subarray(3, 999), sealed.subarray(999)];
    assert.deepEqual(await collect(openArtifact(pieces, privateKey, binding, { plaintextBytesMax: 1 << 20 })), plain, `size ${size}`);
  }
});

test('a changed byte, a dropped, swapped or truncated record, another binding or another key: OTA_ARTIFACT_DECRYPT_FAILED', async () => {
  const plain = randomBytes(3 * recordBytes + 5);
  const sealed = await seal(plain);
  const open = (bytes: Buffer, bind = binding, key = privateKey) => collect(openArtifact([bytes], key, bind, { plaintextBytesMax: 1 << 20 }));
  const header = 41;
  const record = recordBytes + 16;
  const flipped = Buffer.from(sealed);
  flipped[header + 1500] = flipped[header + 1500]! ^ 1;
  await refused(open(flipped), 'OTA_ARTIFACT_DECRYPT_FAILED');
  const dropped = Buffer.concat([sealed.subarray(0, header + record), sealed.subarray(header + 2 * record)]);
  await refused(open(dropped), 'OTA_ARTIFACT_DECRYPT_FAILED');
  const swapped = Buffer.concat([sealed.subarray(0, header), sealed.subarray(header + record, header + 2 * record), sealed.subarray(header, header + record), sealed.subarray(header + 2 * record)]);
  await refused(open(swapped), 'OTA_ARTIFACT_DECRYPT_FAILED');
  // Cut exactly at a record boundary: every remaining record is whole, only the final flag tells.
  await refused(open(sealed.subarray(0, header + 2 * record)), 'OTA_ARTIFACT_DECRYPT_FAILED');
  await refused(open(sealed.subarray(0, 20)), 'OTA_ARTIFACT_DECRYPT_FAILED');
  await refused(open(sealed, { deviceId: 'dev-2', commandId: 'cmd-1' }), 'OTA_ARTIFACT_DECRYPT_FAILED');
  await refused(open(sealed, { deviceId: 'dev-1', commandId: 'cmd-2' }), 'OTA_ARTIFACT_DECRYPT_FAILED');
  await refused(open(sealed, binding, artifactPrivateKeyFromPem(generateArtifactKeyPair().privateKeyPem)), 'OTA_ARTIFACT_DECRYPT_FAILED');
  assert.deepEqual(await open(sealed), plain, 'the untouched artifact still opens');
});

test('size limits on both sides: OTA_UPLOAD_TOO_LARGE', async () => {
  await refused(collect(sealArtifact([randomBytes(600), randomBytes(600)], recipient.publicKey, binding, { plaintextBytesMax: 1000 })), 'OTA_UPLOAD_TOO_LARGE');
  const sealed = await seal(randomBytes(5000));
  await refused(collect(openArtifact([sealed], privateKey, binding, { plaintextBytesMax: 4000 })), 'OTA_UPLOAD_TOO_LARGE');
});
