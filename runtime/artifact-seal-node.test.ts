import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHash, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes } from 'node:crypto';
import { SdcError } from '../core/errors/index.js';
import { artifactKeyId, artifactPrivateKeyFromPem, generateArtifactKeyPair, openArtifact, rawPublicKey, sealArtifact, sealedLength } from './artifact-seal-node.js';

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
  const header = 49; // version 2: magic (5), key id (8), ephemeral key (32), record size (4)
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

/** A version 1 artifact (before key ids), as agents made it: one record, written out here from the format's description. */
function sealV1(plain: Buffer, recipientRaw: Uint8Array, bind = binding): Buffer {
  const ephemeral = generateKeyPairSync('x25519');
  const ephemeralRaw = rawPublicKey(ephemeral.publicKey);
  const recipientKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(recipientRaw).toString('base64url') }, format: 'jwk' });
  const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: recipientKey });
  const key = Buffer.from(hkdfSync('sha256', shared, Buffer.concat([ephemeralRaw, recipientRaw]), 'sdc artifact seal v1', 32));
  const size = Buffer.alloc(4);
  size.writeUInt32BE(64 * 1024);
  const header = Buffer.concat([Buffer.from([0x53, 0x44, 0x43, 0x41, 0x01]), ephemeralRaw, size]);
  const field = (text: string) => { const bytes = Buffer.from(text); const length = Buffer.alloc(4); length.writeUInt32BE(bytes.length); return Buffer.concat([length, bytes]); };
  const nonce = Buffer.alloc(12);
  nonce[0] = 1; // the final (and only) record
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.concat([header, field(bind.deviceId), field(bind.commandId)]));
  return Buffer.concat([header, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
}

test('the header names the recipient key id (authenticated); a resolver picks the key by it; a version 1 artifact opens with whichever held key fits', async () => {
  const other = generateArtifactKeyPair();
  const otherKey = artifactPrivateKeyFromPem(other.privateKeyPem);
  const plain = randomBytes(2500);
  const sealed = await seal(plain);
  const keyId = artifactKeyId(recipient.publicKey);
  assert.equal(keyId, createHash('sha256').update(recipient.publicKey).digest().subarray(0, 8).toString('hex'));
  assert.equal(sealed.subarray(5, 13).toString('hex'), keyId);
  const asked: Array<string | undefined> = [];
  const resolver = (id: string | undefined) => {
    asked.push(id);
    if (id === undefined) return [otherKey, privateKey];
    if (id === keyId) return [privateKey];
    throw new SdcError('ARTIFACT_KEY_UNKNOWN', `no key ${id}`);
  };
  assert.deepEqual(await collect(openArtifact([sealed], resolver, binding, { plaintextBytesMax: 1 << 20 })), plain);
  // Another key id in the header: unknown to the resolver, or (if it were known) the AAD no longer matches.
  const renamed = Buffer.from(sealed);
  renamed[5] = renamed[5]! ^ 1;
  await refused(collect(openArtifact([renamed], resolver, binding, { plaintextBytesMax: 1 << 20 })), 'ARTIFACT_KEY_UNKNOWN');
  await refused(collect(openArtifact([renamed], () => [privateKey], binding, { plaintextBytesMax: 1 << 20 })), 'OTA_ARTIFACT_DECRYPT_FAILED');
  // Version 1: no key id, every held key tried on the first record.
  const v1 = sealV1(plain, recipient.publicKey);
  assert.deepEqual(await collect(openArtifact([v1.subarray(0, 30), v1.subarray(30)], resolver, binding, { plaintextBytesMax: 1 << 20 })), plain);
  await refused(collect(openArtifact([v1], () => [otherKey], binding, { plaintextBytesMax: 1 << 20 })), 'OTA_ARTIFACT_DECRYPT_FAILED');
  await refused(collect(openArtifact([v1], resolver, { deviceId: 'dev-2', commandId: 'cmd-1' }, { plaintextBytesMax: 1 << 20 })), 'OTA_ARTIFACT_DECRYPT_FAILED');
  assert.deepEqual(asked, [keyId, renamed.subarray(5, 13).toString('hex'), undefined, undefined]);
});
