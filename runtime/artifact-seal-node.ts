import { createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from 'node:crypto';
import { SdcError } from '../core/errors/index.js';

/**
 * Encrypted uploads (issue 10: screenshots and logs): an artifact sealed by a device to the
 * control plane's X25519 artifact key, readable only there.
 *
 * Format (version 2): header = "SDCA" 0x02 | recipient key id (8) | ephemeral X25519 public key (32)
 * | record size (u32 BE), then records. The key id is the first 8 bytes of SHA-256 of the
 * recipient's raw public key: after a rotation the control plane knows which of its keys opens an
 * upload, and as part of the header it is authenticated like the rest. Version 1 (the same without
 * the key id) is still opened, trying each key the control plane holds on the first record. Key = HKDF-SHA256(X25519(ephemeral, recipient), salt = ephemeral pub || recipient
 * pub, info = "sdc artifact seal v1"); one fresh ephemeral key per artifact, so nonces only need
 * to be unique within it. Record i is AES-256-GCM with nonce = final flag (1 byte) | 0 0 0 | i (u64 BE),
 * and associated data = header || length-prefixed device id || length-prefixed command id. The
 * flag marks the last record (a truncated upload does not decrypt), the index fixes the order,
 * and the ids bind the artifact to the device and command it was made for: another device's
 * upload replayed as this command's result does not decrypt. Records are streamed both ways, so
 * memory is one record whatever the size.
 */
export interface SealBinding {
  readonly deviceId: string;
  readonly commandId: string;
}

const magicV1 = Buffer.from([0x53, 0x44, 0x43, 0x41, 0x01]);
const magic = Buffer.from([0x53, 0x44, 0x43, 0x41, 0x02]);
const keyIdBytes = 8;
const headerBytesV1 = magicV1.length + 32 + 4;
const headerBytes = magic.length + keyIdBytes + 32 + 4;
const tagBytes = 16;
export const sealRecordBytesDefault = 64 * 1024;
const recordBytesMax = 1024 * 1024;

/** Ciphertext length for a plaintext of `plaintextLength` bytes: lets the uploader declare Content-Length up front (S3 needs it). */
export function sealedLength(plaintextLength: number, recordBytes = sealRecordBytesDefault): number {
  const records = Math.max(1, Math.ceil(plaintextLength / recordBytes));
  return headerBytes + plaintextLength + records * tagBytes;
}

/** The key id sealed into the header: hex of the first 8 bytes of SHA-256 of the raw X25519 public key. */
export function artifactKeyId(publicKey: Uint8Array): string {
  if (publicKey.length !== 32) throw new SdcError('OTA_ARTIFACT_DECRYPT_FAILED', 'an X25519 public key is 32 bytes');
  return createHash('sha256').update(publicKey).digest().subarray(0, keyIdBytes).toString('hex');
}

/**
 * The private keys that may open an upload: for a version 2 header, the one with its key id (none
 * known: throw ARTIFACT_KEY_UNKNOWN); for version 1 (no key id), every key held, tried in turn.
 */
export type ArtifactKeyResolver = (keyId: string | undefined) => readonly KeyObject[] | Promise<readonly KeyObject[]>;

export function generateArtifactKeyPair(): { privateKeyPem: string; publicKey: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKeyPem: String(privateKey.export({ format: 'pem', type: 'pkcs8' })), publicKey: rawPublicKey(publicKey) };
}

export function artifactPrivateKeyFromPem(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'x25519') throw new SdcError('OTA_ARTIFACT_DECRYPT_FAILED', `the artifact key must be X25519, not ${key.asymmetricKeyType ?? 'unknown'}`);
  return key;
}

export function rawPublicKey(key: KeyObject): Uint8Array {
  const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' });
  return Buffer.from(String(jwk.x), 'base64url');
}

function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new SdcError('OTA_ARTIFACT_DECRYPT_FAILED', 'an X25519 public key is 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

function bindingBytes(binding: SealBinding): Buffer {
  const field = (text: string) => {
    const bytes = Buffer.from(text, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    return Buffer.concat([length, bytes]);
  };
  return Buffer.concat([field(binding.deviceId), field(binding.commandId)]);
}

function deriveKey(shared: Buffer, ephemeral: Uint8Array, recipient: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([ephemeral, recipient]), 'sdc artifact seal v1', 32));
}

function nonce(index: number, final: boolean): Buffer {
  const bytes = Buffer.alloc(12);
  bytes[0] = final ? 1 : 0;
  bytes.writeBigUInt64BE(BigInt(index), 4);
  return bytes;
}

/** Seals `plaintext` to `recipientPublicKey`; refuses (OTA_UPLOAD_TOO_LARGE) past `plaintextBytesMax`. */
export async function* sealArtifact(plaintext: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, recipientPublicKey: Uint8Array, binding: SealBinding, options: { plaintextBytesMax: number; recordBytes?: number }): AsyncGenerator<Uint8Array> {
  const recordBytes = options.recordBytes ?? sealRecordBytesDefault;
  if (!Number.isInteger(recordBytes) || recordBytes < 1 || recordBytes > recordBytesMax) throw new SdcError('OTA_UPLOAD_TOO_LARGE', `a record is 1 to ${recordBytesMax} bytes`);
  const ephemeral = generateKeyPairSync('x25519');
  const ephemeralRaw = rawPublicKey(ephemeral.publicKey);
  const key = deriveKey(diffieHellman({ privateKey: ephemeral.privateKey, publicKey: publicKeyFromRaw(recipientPublicKey) }), ephemeralRaw, recipientPublicKey);
  const size = Buffer.alloc(4);
  size.writeUInt32BE(recordBytes);
  const header = Buffer.concat([magic, Buffer.from(artifactKeyId(recipientPublicKey), 'hex'), ephemeralRaw, size]);
  const aad = Buffer.concat([header, bindingBytes(binding)]);
  const seal = (record: Buffer, index: number, final: boolean) => {
    const cipher = createCipheriv('aes-256-gcm', key, nonce(index, final));
    cipher.setAAD(aad);
    return Buffer.concat([cipher.update(record), cipher.final(), cipher.getAuthTag()]);
  };
  yield header;
  let pending = Buffer.alloc(0);
  let index = 0;
  let total = 0;
  for await (const chunk of plaintext) {
    total += chunk.length;
    if (total > options.plaintextBytesMax) throw new SdcError('OTA_UPLOAD_TOO_LARGE', `the artifact exceeds ${options.plaintextBytesMax} bytes`, { bytesMax: options.plaintextBytesMax });
    pending = Buffer.concat([pending, chunk]);
    // A full record is sealed as non-final only once more data is known to follow.
    while (pending.length > recordBytes) {
      yield seal(pending.subarray(0, recordBytes), index, false);
      index += 1;
      pending = pending.subarray(recordBytes);
    }
  }
  yield seal(pending, index, true);
}

/**
 * Opens a sealed artifact with the control plane's private key (or the key its header names,
 * through a resolver), yielding plaintext one record at a time; any failure (bad header, wrong key
 * or binding, a changed, missing, extra or reordered record, a truncated end) is
 * OTA_ARTIFACT_DECRYPT_FAILED, and a key id the resolver does not know is its own refusal. A
 * caller must not treat yielded bytes as final until the generator has finished: the last
 * record's check comes at the end.
 */
export async function* openArtifact(sealed: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, recipient: KeyObject | ArtifactKeyResolver, binding: SealBinding, options: { plaintextBytesMax: number }): AsyncGenerator<Uint8Array> {
  const fail = (why: string) => new SdcError('OTA_ARTIFACT_DECRYPT_FAILED', `the sealed artifact does not open: ${why}`);
  const resolve: ArtifactKeyResolver = typeof recipient === 'function' ? recipient : () => [recipient];
  let buffer = Buffer.alloc(0);
  /** Derived record keys still in question: several only for a version 1 header until the first record authenticates. */
  let keys: Buffer[] | undefined;
  let aad: Buffer | undefined;
  let recordBytes = 0;
  let index = 0;
  let total = 0;
  const open = (record: Buffer, final: boolean): Buffer => {
    if (record.length < tagBytes) throw fail('a record is shorter than its tag');
    for (const key of keys!) {
      const decipher = createDecipheriv('aes-256-gcm', key, nonce(index, final));
      decipher.setAAD(aad!);
      decipher.setAuthTag(record.subarray(record.length - tagBytes));
      let plain: Buffer;
      try {
        plain = Buffer.concat([decipher.update(record.subarray(0, record.length - tagBytes)), decipher.final()]);
      } catch {
        continue;
      }
      keys = [key];
      index += 1;
      total += plain.length;
      if (total > options.plaintextBytesMax) throw new SdcError('OTA_UPLOAD_TOO_LARGE', `the artifact exceeds ${options.plaintextBytesMax} bytes`, { bytesMax: options.plaintextBytesMax });
      return plain;
    }
    throw fail(`record ${index} failed authentication (changed, reordered, truncated, another binding or another key)`);
  };
  for await (const chunk of sealed) {
    buffer = Buffer.concat([buffer, chunk]);
    if (keys === undefined) {
      if (buffer.length < magic.length) continue;
      const version = buffer.subarray(0, magic.length);
      const v1 = version.equals(magicV1);
      if (!v1 && !version.equals(magic)) throw fail('not an SDC sealed artifact (version 1 or 2)');
      const size = v1 ? headerBytesV1 : headerBytes;
      if (buffer.length < size) continue;
      const header = buffer.subarray(0, size);
      const keyId = v1 ? undefined : header.subarray(magic.length, magic.length + keyIdBytes).toString('hex');
      const ephemeralRaw = header.subarray(size - 36, size - 4);
      recordBytes = header.readUInt32BE(size - 4);
      if (recordBytes < 1 || recordBytes > recordBytesMax) throw fail('the record size is out of range');
      let ephemeral: KeyObject;
      try {
        ephemeral = publicKeyFromRaw(ephemeralRaw);
      } catch {
        throw fail('the ephemeral key is not a valid X25519 key');
      }
      keys = [];
      for (const privateKey of await resolve(keyId)) {
        try {
          keys.push(deriveKey(diffieHellman({ privateKey, publicKey: ephemeral }), ephemeralRaw, rawPublicKey(privateKey)));
        } catch {
          throw fail('the ephemeral key is not a valid X25519 key');
        }
      }
      if (keys.length === 0) throw fail('no key to open it with');
      aad = Buffer.concat([Buffer.from(header), bindingBytes(binding)]);
      buffer = buffer.subarray(size);
    }
    while (buffer.length > recordBytes + tagBytes) {
      yield open(buffer.subarray(0, recordBytes + tagBytes), false);
      buffer = buffer.subarray(recordBytes + tagBytes);
    }
  }
  if (keys === undefined) throw fail('the header is incomplete');
  yield open(buffer, true);
}

/**
 * What the control plane's command key signs to publish its artifact key to devices (in every
 * upload grant): a device seals only to a key signed by a command key it pinned at enrollment,
 * so neither a substituted TLS endpoint nor a stale answer can make it seal to another key.
 */
export function artifactKeyStatement(publicKey: Uint8Array): Uint8Array {
  if (publicKey.length !== 32) throw new SdcError('OTA_ARTIFACT_DECRYPT_FAILED', 'an X25519 public key is 32 bytes');
  return Buffer.concat([Buffer.from('sdc artifact key v1\n', 'utf8'), publicKey]);
}
