import { createCipheriv, createPrivateKey, pbkdf2Sync, randomBytes, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SdcError } from '../core/errors/index.js';
import { privateSeedFromPem } from '../runtime/ed25519-node.js';
import { createFileExclusive, ensurePrivateDirectory, privateFileMode, writeFileAtomic } from '../runtime/atomic-file.js';
import { exportPkcs8Der, importEd25519PrivateKey } from './ed25519-keys.js';
import { toPem } from './pem.js';

/** Where `sdc pki` reads the root key passphrase from; never a command-line flag (it would show in `ps` and shell history). */
export const rootKeyPassphraseEnv = 'SDC_ROOT_KEY_PASSPHRASE';
/**
 * PBKDF2-HMAC-SHA256 iterations for encrypted key files: OWASP's 2023 figure for this PRF
 * (about 0.2 s on this machine). node's own encrypted export uses OpenSSL's default of 2048,
 * which is why we write the PBES2 container ourselves.
 */
export const keyPbkdf2Iterations = 600_000;
/**
 * Iterations when the passphrase is not a person's but random bytes made by the code (at least
 * generatedPassphraseEntropyBitsMin of entropy; initDeployment's is 192 bits). Stretching makes up
 * for the few bits of a chosen passphrase; a random one has none to make up: 2^128 guesses are out
 * of reach at any iteration count. So the floor NIST SP 800-132 recommends (1,000) with a margin,
 * not 600,000: about 4 ms instead of 0.2 s per key, which every test deployment paid.
 */
export const generatedPassphraseKdfIterations = 10_000;
/** The entropy a passphrase must carry for generatedPassphraseKdfIterations: AES-128-level, as for any other key. */
export const generatedPassphraseEntropyBitsMin = 128;
/** Even with a slow KDF, a short passphrase falls to offline guessing; 16 characters is the floor. */
export const keyPassphraseLengthMin = 16;
const pemLengthMax = 16 * 1024;

export interface WritePrivateKeyFileOptions {
  path: string;
  privateKey: CryptoKey;
  /** If given, the file is encrypted PKCS#8 (PBES2: PBKDF2-HMAC-SHA256, 600 000 iterations, AES-256-CBC). */
  passphrase?: string;
  /**
   * The passphrase is random bytes the code made, with this many bits of entropy (at least
   * generatedPassphraseEntropyBitsMin, else TRUST_KEY_PASSPHRASE_WEAK): written with
   * generatedPassphraseKdfIterations. Never for a passphrase a person chose.
   */
  generatedPassphraseEntropyBits?: number;
  /**
   * The file must not exist yet: it is created exclusively, and a file (or anything else) already
   * at the path is refused with TRUST_KEY_FILE_EXISTS, never replaced. For keys that exist in no
   * other copy (the offline keys of `sdc ota init`): replacing one destroys it.
   */
  exclusive?: boolean;
}

/**
 * Writes a private key as PKCS#8 PEM, mode 0600, atomically, in a directory made 0700 if it is
 * created here (an existing one keeps its mode; a group- or other-writable one is refused:
 * ensurePrivateDirectory).
 *
 * Encryption uses the standard encrypted PKCS#8 container (RFC 5958 / RFC 8018 PBES2) rather
 * than a format of our own such as scrypt + AES-GCM: OpenSSL and every other toolkit can read,
 * audit and re-wrap the key, which matters most for a root key that must outlive this code base.
 * We build the container ourselves only to raise the PBKDF2 iteration count (see above).
 */
export async function writePrivateKeyFile(options: WritePrivateKeyFileOptions): Promise<void> {
  if (options.passphrase !== undefined) requireStrongPassphrase(options.passphrase);
  const generatedBits = options.generatedPassphraseEntropyBits;
  if (generatedBits !== undefined && !(generatedBits >= generatedPassphraseEntropyBitsMin)) {
    throw new SdcError('TRUST_KEY_PASSPHRASE_WEAK', `a generated key passphrase must carry at least ${generatedPassphraseEntropyBitsMin} bits of entropy`);
  }
  const iterations = generatedBits === undefined ? keyPbkdf2Iterations : generatedPassphraseKdfIterations;
  const der = await exportPkcs8Der(options.privateKey);
  let pem: string;
  try {
    pem = options.passphrase === undefined
      ? toPem('PRIVATE KEY', der)
      : toPem('ENCRYPTED PRIVATE KEY', encryptPkcs8(der, options.passphrase, iterations));
  } finally {
    der.fill(0);
  }
  await ensurePrivateDirectory(dirname(options.path));
  if (options.exclusive !== true) {
    await writeFileAtomic(options.path, pem, { mode: privateFileMode });
    return;
  }
  if (!(await createFileExclusive(options.path, pem, { mode: privateFileMode }))) {
    throw new SdcError('TRUST_KEY_FILE_EXISTS', `${options.path} exists; it was not replaced (move it away or write the keys elsewhere)`, { path: options.path });
  }
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
    requirePrivateFileMode(path, info.mode);
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

/**
 * The 32-byte seed of an unencrypted Ed25519 PKCS#8 PEM key file (the service keys). A file that
 * cannot be read, is too large or does not hold such a key is TRUST_KEY_FILE_INVALID naming the
 * file: the decoder's own message ("DECODER routines::unsupported") does not say which key is bad.
 */
export async function readEd25519SeedFile(path: string): Promise<Uint8Array> {
  let text: string;
  try {
    const info = await stat(path);
    requirePrivateFileMode(path, info.mode);
    if (info.size > pemLengthMax) throw new SdcError('TRUST_KEY_FILE_INVALID', `${path} is too large to be a key file`, { path });
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof SdcError) throw error;
    throw new SdcError('TRUST_KEY_FILE_INVALID', `${path} cannot be read`, { path }, { cause: error });
  }
  try {
    return privateSeedFromPem(text);
  } catch (error) {
    throw new SdcError('TRUST_KEY_FILE_INVALID', `${path} is not an Ed25519 private key (PKCS#8 PEM); restore it from a backup`, { path }, { cause: error });
  }
}

/**
 * A private key file that group or others may access is refused (TRUST_KEY_FILE_PERMISSIONS
 * naming the file, as ssh does): a key another account could read is no longer private, and
 * starting anyway would hide that. Not on Windows, which has no POSIX modes.
 */
export function requirePrivateFileMode(path: string, mode: number): void {
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new SdcError('TRUST_KEY_FILE_PERMISSIONS', `${path} has mode ${(mode & 0o777).toString(8)}; run chmod 600 on it`, { path });
  }
}

/** requirePrivateFileMode for a file on disk; TRUST_KEY_FILE_INVALID naming it when it cannot be read. */
export async function requirePrivateKeyFileMode(path: string): Promise<void> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (error) {
    throw new SdcError('TRUST_KEY_FILE_INVALID', `${path} cannot be read`, { path }, { cause: error });
  }
  requirePrivateFileMode(path, mode);
}

/** Checks that a PEM private key file's text parses (any algorithm: the TLS server key); refuses naming the file. */
export function requireParsablePrivateKeyPem(path: string, pem: string): void {
  try {
    createPrivateKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new SdcError('TRUST_KEY_FILE_INVALID', `${path} is not a readable PEM private key`, { path }, { cause: error });
  }
}

export function requireStrongPassphrase(passphrase: string): void {
  if (passphrase.length < keyPassphraseLengthMin) {
    throw new SdcError('TRUST_KEY_PASSPHRASE_WEAK', `key passphrase must have at least ${keyPassphraseLengthMin} characters`);
  }
}

// DER object identifiers (content bytes) for the PBES2 container.
const oidPbes2 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d]; // 1.2.840.113549.1.5.13
const oidPbkdf2 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c]; // 1.2.840.113549.1.5.12
const oidHmacWithSha256 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09]; // 1.2.840.113549.2.9
const oidAes256Cbc = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a]; // 2.16.840.1.101.3.4.1.42

/** EncryptedPrivateKeyInfo with PBES2 (PBKDF2-HMAC-SHA256 + AES-256-CBC) over a PKCS#8 DER key. */
function encryptPkcs8(pkcs8Der: Uint8Array, passphrase: string, iterations: number): Uint8Array {
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const key = pbkdf2Sync(Buffer.from(passphrase, 'utf8'), salt, iterations, 32, 'sha256');
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  const encrypted = Buffer.concat([cipher.update(pkcs8Der), cipher.final()]);
  key.fill(0);
  const pbkdf2Params = der(0x30, der(0x04, salt), derUnsignedInteger(iterations), der(0x30, der(0x06, oidHmacWithSha256), der(0x05)));
  const pbes2Params = der(0x30, der(0x30, der(0x06, oidPbkdf2), pbkdf2Params), der(0x30, der(0x06, oidAes256Cbc), der(0x04, iv)));
  return der(0x30, der(0x30, der(0x06, oidPbes2), pbes2Params), der(0x04, encrypted));
}

/** One DER TLV; contents are concatenated. Lengths up to 65535 bytes (a key container is far smaller). */
function der(tag: number, ...contents: ArrayLike<number>[]): Uint8Array {
  const body = Buffer.concat(contents.map((c) => Uint8Array.from(c)));
  const length = body.length;
  if (length > 0xffff) throw new SdcError('TRUST_INVALID_ARGUMENT', 'DER element too long');
  const header = length < 0x80 ? [tag, length] : length < 0x100 ? [tag, 0x81, length] : [tag, 0x82, length >> 8, length & 0xff];
  return Buffer.concat([Uint8Array.from(header), body]);
}

function derUnsignedInteger(value: number): Uint8Array {
  let hex = value.toString(16);
  if (hex.length % 2 === 1) hex = '0' + hex;
  if (Number.parseInt(hex.slice(0, 2), 16) >= 0x80) hex = '00' + hex;
  return der(0x02, Buffer.from(hex, 'hex'));
}
