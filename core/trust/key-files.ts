import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SdcError } from '../errors/index.js';
import { ensurePrivateDirectory, privateFileMode, writeFileAtomic } from './atomic-file.js';
import { exportPkcs8Der, importEd25519PrivateKey } from './ed25519-keys.js';

/** Where `sdc pki` reads the root key passphrase from; never a command-line flag (it would show in `ps` and shell history). */
export const rootKeyPassphraseEnv = 'SDC_ROOT_KEY_PASSPHRASE';
/**
 * The PBKDF2 work factor of encrypted PKCS#8 as OpenSSL writes it is modest, so the passphrase
 * carries the weight against offline guessing; 16 characters is the floor we accept.
 */
export const keyPassphraseLengthMin = 16;
const pemLengthMax = 16 * 1024;

export interface WritePrivateKeyFileOptions {
  path: string;
  privateKey: CryptoKey;
  /** If given, the file is encrypted PKCS#8 (PBES2: PBKDF2-HMAC-SHA256 + AES-256-CBC). */
  passphrase?: string;
}

/**
 * Writes a private key as PKCS#8 PEM, mode 0600, atomically, in a directory made 0700.
 *
 * Encryption uses the standard encrypted PKCS#8 container (node's KeyObject.export with
 * aes-256-cbc) rather than a format of our own (scrypt + AES-GCM would have a stronger KDF):
 * OpenSSL and every other toolkit can read, audit and re-wrap the key, which matters most for
 * a root key that must outlive this code base; the weaker KDF is offset by the passphrase floor.
 */
export async function writePrivateKeyFile(options: WritePrivateKeyFileOptions): Promise<void> {
  if (options.passphrase !== undefined) requireStrongPassphrase(options.passphrase);
  const keyObject = createPrivateKey({ key: Buffer.from(await exportPkcs8Der(options.privateKey)), format: 'der', type: 'pkcs8' });
  const pem = options.passphrase === undefined
    ? keyObject.export({ format: 'pem', type: 'pkcs8' })
    : keyObject.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: options.passphrase });
  await ensurePrivateDirectory(dirname(options.path));
  await writeFileAtomic(options.path, pem, { mode: privateFileMode });
}

export interface ReadPrivateKeyFileOptions {
  path: string;
  passphrase?: string;
}

/**
 * Reads an Ed25519 PKCS#8 PEM key for signing. Refuses a file that group or others may access
 * (TRUST_KEY_FILE_PERMISSIONS, as ssh does), an encrypted file without a passphrase
 * (TRUST_KEY_PASSPHRASE_REQUIRED) or with the wrong one (TRUST_KEY_PASSPHRASE_WRONG).
 */
export async function readPrivateKeyFile(options: ReadPrivateKeyFileOptions): Promise<CryptoKey> {
  const { path } = options;
  let text: string;
  try {
    const info = await stat(path);
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      throw new SdcError('TRUST_KEY_FILE_PERMISSIONS', `${path} has mode ${(info.mode & 0o777).toString(8)}; run chmod 600 on it`);
    }
    if (info.size > pemLengthMax) throw new SdcError('TRUST_KEY_FILE_INVALID', `${path} is too large to be a key file`);
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof SdcError) throw error;
    throw new SdcError('TRUST_KEY_FILE_INVALID', `${path} cannot be read`, {}, { cause: error });
  }
  const encrypted = text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----');
  if (encrypted && (options.passphrase === undefined || options.passphrase === '')) {
    throw new SdcError('TRUST_KEY_PASSPHRASE_REQUIRED', `${path} is encrypted; set ${rootKeyPassphraseEnv}`);
  }
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(encrypted ? { key: text, format: 'pem', passphrase: options.passphrase } : { key: text, format: 'pem' });
  } catch (error) {
    if (encrypted) throw new SdcError('TRUST_KEY_PASSPHRASE_WRONG', `passphrase does not decrypt ${path}`, {}, { cause: error });
    throw new SdcError('TRUST_KEY_FILE_INVALID', `${path} is not a PEM private key`, {}, { cause: error });
  }
  if (keyObject.asymmetricKeyType !== 'ed25519') {
    throw new SdcError('TRUST_KEY_FILE_INVALID', `${path} holds a ${keyObject.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  }
  const der = new Uint8Array(keyObject.export({ format: 'der', type: 'pkcs8' }));
  try {
    return await importEd25519PrivateKey(der);
  } finally {
    der.fill(0);
  }
}

export function requireStrongPassphrase(passphrase: string): void {
  if (passphrase.length < keyPassphraseLengthMin) {
    throw new SdcError('TRUST_KEY_PASSPHRASE_WEAK', `key passphrase must have at least ${keyPassphraseLengthMin} characters`);
  }
}
