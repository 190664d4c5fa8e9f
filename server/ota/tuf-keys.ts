import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { SdcError } from '../../core/errors/index.js';
import { canonicalBytes, type TufJsonObject } from '../../core/tuf/olpc-json.js';
import { requirePrivateFileMode } from '../../trust/key-files.js';

/**
 * Ed25519 keys as TUF names and signs with them: the public key object root lists
 * (`{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"<hex>"}}`), its key id (the
 * SHA-256 of that object's OLPC canonical form, as python-securesystemslib computes it) and hex
 * signatures. Every signature here is over OLPC canonical bytes, never RFC 8785.
 */
export interface TufSigningKey {
  readonly keyid: string;
  readonly publicJson: TufJsonObject;
  /** A hex Ed25519 signature of `message`. */
  sign(message: Uint8Array): string;
}

/** The TUF public key object of an Ed25519 key. */
export function tufPublicKeyJson(publicKey: KeyObject): TufJsonObject {
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url').toString('hex');
  return { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: raw } };
}

export function tufKeyId(publicJson: TufJsonObject): string {
  return createHash('sha256').update(canonicalBytes(publicJson)).digest('hex');
}

/** A signing key from a node private key object; refuses anything but Ed25519. */
export function tufSigningKey(privateKey: KeyObject): TufSigningKey {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new SdcError('OTA_REPOSITORY_KEYS', `a ${privateKey.asymmetricKeyType ?? 'unknown'} key is not an Ed25519 TUF key`);
  const publicJson = tufPublicKeyJson(createPublicKey(privateKey));
  return { keyid: tufKeyId(publicJson), publicJson, sign: (message) => sign(null, message, privateKey).toString('hex') };
}

export function generateTufSigningKey(): { key: TufSigningKey; privateKey: KeyObject } {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { key: tufSigningKey(privateKey), privateKey };
}

/** Online keys are small PEM files; anything larger is not one. */
const onlineKeyFileBytesMax = 16 * 1024;

/**
 * An online (snapshot or timestamp) key from an unencrypted PKCS#8 PEM file of mode 0600: the
 * server signs with it unattended, so it cannot ask for a passphrase. Refusals name the file
 * (OTA_REPOSITORY_KEYS; TRUST_KEY_FILE_PERMISSIONS when others may read it).
 */
export async function readOnlineKeyFile(path: string): Promise<TufSigningKey> {
  let text: string;
  try {
    const info = await stat(path);
    requirePrivateFileMode(path, info.mode);
    if (info.size > onlineKeyFileBytesMax) throw new SdcError('OTA_REPOSITORY_KEYS', `${path} is too large to be a key file`, { path });
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (SdcError.is(error)) throw error;
    throw new SdcError('OTA_REPOSITORY_KEYS', `${path} cannot be read (run sdc ota init)`, { path }, { cause: error });
  }
  try {
    return tufSigningKey(createPrivateKey({ key: text, format: 'pem' }));
  } catch (error) {
    if (SdcError.is(error)) throw error;
    throw new SdcError('OTA_REPOSITORY_KEYS', `${path} is not an unencrypted PEM private key`, { path }, { cause: error });
  }
}
