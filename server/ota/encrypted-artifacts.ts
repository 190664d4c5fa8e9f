import { createHash, type KeyObject } from 'node:crypto';
import { readFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import { artifactPrivateKeyFromPem, generateArtifactKeyPair, openArtifact, rawPublicKey, type ArtifactKeyResolver, type SealBinding } from '../../runtime/artifact-seal-node.js';
import { createFileExclusive } from '../../runtime/atomic-file.js';
import { requirePrivateKeyFileMode } from '../../trust/key-files.js';
import type { BlobStore } from './blob-store.js';

/** The control plane's artifact key: where the deployment keeps it, beside the command and gateway signing keys. */
export function artifactKeyPath(dataDir: string): string {
  return join(dataDir, 'keys', 'artifact.key');
}

export interface ArtifactKey {
  readonly privateKey: KeyObject;
  /** Raw X25519, 32 bytes: what devices seal to. */
  readonly publicKey: Uint8Array;
}

/**
 * The control plane's half of encrypted uploads: the artifact key (X25519, PKCS#8 PEM at
 * `<dataDir>/keys/artifact.key`, 0600 in a 0700 directory like the other service keys, made by
 * `sdc pki init` or at the first load of the deployment; devices get only the public half,
 * signed by the command key) and opening an upload for an operator. An upload is opened only if
 * its stored bytes have exactly the SHA-256 and length the device's command result reported (so
 * an object replaced in the store after the fact is refused), and only for the device and
 * command it was sealed for.
 */
export async function loadOrCreateArtifactKey(dataDir: string): Promise<ArtifactKey> {
  const path = artifactKeyPath(dataDir);
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
    // Refused like the other service keys when group or others could read it.
    await requirePrivateKeyFileMode(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const made = generateArtifactKeyPair().privateKeyPem;
    // Exclusive: two processes starting at once never overwrite each other's key, and the one
    // that loses reads the winner's whole file (a plain 'wx' write could be read half written).
    pem = (await createFileExclusive(path, made, { mode: 0o600 })) ? made : await readFile(path, 'utf8');
  }
  const privateKey = artifactPrivateKeyFromPem(pem);
  return { privateKey, publicKey: rawPublicKey(privateKey) };
}

/** Where a device's upload for one command lives in the blob store. */
export function uploadKey(binding: SealBinding): string {
  const safe = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 32);
  // Hashed, so any device or command id makes a valid key and none can climb out of uploads/.
  return `uploads/${safe(binding.deviceId)}/${safe(binding.commandId)}.sealed`;
}

export interface OpenUploadOptions {
  readonly store: BlobStore;
  /** The key, or the ring's resolver (the key the upload's header names: ARTIFACT_KEY_UNKNOWN when none is held). */
  readonly privateKey: KeyObject | ArtifactKeyResolver;
  readonly binding: SealBinding;
  /** What the command result reported. */
  readonly expected: { readonly sha256: string; readonly length: number };
  readonly plaintextBytesMax: number;
}

/**
 * The plaintext, held in memory (bounded by plaintextBytesMax) until both the seal and the digest
 * have been checked: nothing unchecked is ever handed to the operator.
 */
export async function openEncryptedUpload(options: OpenUploadOptions): Promise<Buffer> {
  const key = uploadKey(options.binding);
  const head = await options.store.head(key);
  if (head === undefined) throw new SdcError('OTA_REPOSITORY_NOT_FOUND', 'no upload is stored for this device and command');
  if (head.length !== options.expected.length) throw new SdcError('OTA_UPLOAD_DIGEST_MISMATCH', `the stored upload is ${head.length} bytes, the command result says ${options.expected.length}`);
  const body = await options.store.read(key);
  if (body === undefined) throw new SdcError('OTA_REPOSITORY_NOT_FOUND', 'no upload is stored for this device and command');
  const hash = createHash('sha256');
  let length = 0;
  async function* hashed(): AsyncGenerator<Uint8Array> {
    for await (const chunk of body!) {
      length += chunk.length;
      if (length > options.expected.length) throw new SdcError('OTA_UPLOAD_DIGEST_MISMATCH', 'the stored upload is longer than the command result says');
      hash.update(chunk);
      yield chunk;
    }
  }
  const chunks: Uint8Array[] = [];
  for await (const plain of openArtifact(hashed(), options.privateKey, options.binding, { plaintextBytesMax: options.plaintextBytesMax })) chunks.push(plain);
  const sha256 = hash.digest('hex');
  if (sha256 !== options.expected.sha256.toLowerCase() || length !== options.expected.length) {
    throw new SdcError('OTA_UPLOAD_DIGEST_MISMATCH', `the stored upload's SHA-256 is ${sha256}, the command result says ${options.expected.sha256}`);
  }
  return Buffer.concat(chunks);
}

export interface StoredUploadCheck {
  readonly store: BlobStore;
  readonly binding: SealBinding;
  /** What the command result reported. */
  readonly expected: { readonly sha256: string; readonly length: number };
  /** The largest sealed upload a grant allows: a result reporting more is refused before anything is read. */
  readonly sealedBytesMax: number;
}

/**
 * The stored upload has exactly the length and SHA-256 the device's result reports, else the
 * typed refusal: ARTIFACT_NOT_FOUND when no object is stored, OTA_UPLOAD_DIGEST_MISMATCH when it
 * differs, OTA_UPLOAD_TOO_LARGE when the report passes the grant's bound. The object is hashed as
 * it is read and reading stops one byte past the reported length, so a check costs at most that
 * much. The digest is computed here on every store: S3's ETag is an MD5 (or a multipart
 * composite), and s3rver keeps no SHA-256 checksum (x-amz-checksum-sha256) to ask for instead.
 * A store that cannot be reached throws, for the caller to retry.
 */
export async function checkStoredUpload(options: StoredUploadCheck): Promise<SdcError | undefined> {
  const { expected } = options;
  if (expected.length > options.sealedBytesMax) {
    return new SdcError('OTA_UPLOAD_TOO_LARGE', `the result reports a ${expected.length}-byte upload; grants allow at most ${options.sealedBytesMax}`, { bytesMax: options.sealedBytesMax });
  }
  const key = uploadKey(options.binding);
  const head = await options.store.head(key);
  const body = head === undefined ? undefined : await options.store.read(key);
  if (head === undefined || body === undefined) return new SdcError('ARTIFACT_NOT_FOUND', 'the result reports an upload, but none is stored for this device and command');
  if (head.length !== expected.length) return new SdcError('OTA_UPLOAD_DIGEST_MISMATCH', `the stored upload is ${head.length} bytes, the command result says ${expected.length}`);
  const hash = createHash('sha256');
  let length = 0;
  for await (const chunk of body) {
    length += chunk.length;
    // The object may have grown since the HEAD: stop reading rather than hash an unbounded body.
    if (length > expected.length) return new SdcError('OTA_UPLOAD_DIGEST_MISMATCH', 'the stored upload is longer than the command result says');
    hash.update(chunk);
  }
  const sha256 = hash.digest('hex');
  if (length !== expected.length || sha256 !== expected.sha256.toLowerCase()) {
    return new SdcError('OTA_UPLOAD_DIGEST_MISMATCH', `the stored upload (${length} bytes, SHA-256 ${sha256}) is not what the command result says (${expected.length} bytes, ${expected.sha256})`);
  }
  return undefined;
}
