import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import { systemRandom } from '../runtime/system.js';
import { generateEd25519KeyPair } from './ed25519-keys.js';
import { readPrivateKeyFile, writePrivateKeyFile } from './key-files.js';
import { openssl, withTempDir } from './test-fixtures.js';

const passphrase = 'correct horse battery staple';

/** Two keys are the same if they sign the same message to the same bytes (Ed25519 is deterministic). */
async function sameKey(a: CryptoKey, b: CryptoKey): Promise<boolean> {
  const message = new TextEncoder().encode('probe');
  const [sa, sb] = await Promise.all([crypto.subtle.sign('Ed25519', a, message), crypto.subtle.sign('Ed25519', b, message)]);
  return Buffer.from(sa).equals(Buffer.from(sb));
}

describe('key files', () => {
  it('writes PKCS#8 PEM with mode 0600 in a 0700 directory and reads the same key back', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'pki', 'intermediate-ca.key');
      const { privateKey } = await generateEd25519KeyPair(systemRandom);
      await writePrivateKeyFile({ path, privateKey });
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.equal((await stat(join(dir, 'pki'))).mode & 0o777, 0o700);
      assert.match(await readFile(path, 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
      assert.ok(await sameKey(privateKey, await readPrivateKeyFile({ path })));
      // Overwrites atomically and keeps the mode.
      const other = await generateEd25519KeyPair(systemRandom);
      await writePrivateKeyFile({ path, privateKey: other.privateKey });
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.ok(await sameKey(other.privateKey, await readPrivateKeyFile({ path })));
    });
  });

  it('an encrypted key round-trips with the passphrase, and is refused without it or with a wrong one', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'root-ca.key');
      const { privateKey } = await generateEd25519KeyPair(systemRandom);
      await writePrivateKeyFile({ path, privateKey, passphrase });
      const text = await readFile(path, 'utf8');
      assert.match(text, /^-----BEGIN ENCRYPTED PRIVATE KEY-----\n/);
      assert.ok(await sameKey(privateKey, await readPrivateKeyFile({ path, passphrase })));
      await assert.rejects(readPrivateKeyFile({ path }), (e) => SdcError.is(e, 'TRUST_KEY_PASSPHRASE_REQUIRED'));
      await assert.rejects(readPrivateKeyFile({ path, passphrase: 'not the right passphrase' }), (e) => SdcError.is(e, 'TRUST_KEY_PASSPHRASE_WRONG'));
      // Standard encrypted PKCS#8: OpenSSL opens it with the passphrase.
      const opened = openssl(['pkey', '-in', path, '-passin', `pass:${passphrase}`, '-noout', '-text']);
      assert.equal(opened.status, 0, opened.stderr);
      assert.match(opened.stdout, /ED25519 Private-Key/);
      // PBES2 with PBKDF2-HMAC-SHA256 at 600 000 (0x0927C0) iterations and AES-256-CBC.
      const structure = openssl(['asn1parse', '-in', path]).stdout;
      for (const part of [/:PBES2/, /:PBKDF2/, /INTEGER\s+:0927C0/, /:hmacWithSHA256/, /:aes-256-cbc/]) assert.match(structure, part);
    });
  });

  it('a generated passphrase (random bytes, 128 bits or more) is written with 10,000 iterations; less entropy is refused', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'generated.key');
      const { privateKey } = await generateEd25519KeyPair(systemRandom);
      const generated = randomBytes(24).toString('base64url');
      await writePrivateKeyFile({ path, privateKey, passphrase: generated, generatedPassphraseEntropyBits: 192 });
      assert.ok(await sameKey(privateKey, await readPrivateKeyFile({ path, passphrase: generated })));
      const opened = openssl(['pkey', '-in', path, '-passin', `pass:${generated}`, '-noout']);
      assert.equal(opened.status, 0, opened.stderr);
      // 10,000 = 0x2710; a chosen passphrase keeps 600,000 (the test above).
      const structure = openssl(['asn1parse', '-in', path]).stdout;
      assert.match(structure, /INTEGER\s+:2710\b/);
      assert.doesNotMatch(structure, /:0927C0/);
      await assert.rejects(writePrivateKeyFile({ path: join(dir, 'weak.key'), privateKey, passphrase: generated, generatedPassphraseEntropyBits: 96 }),
        (e) => SdcError.is(e, 'TRUST_KEY_PASSPHRASE_WEAK'));
    });
  });

  it('refuses a short passphrase, a group-readable file and a non-Ed25519 key', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'k.key');
      const { privateKey } = await generateEd25519KeyPair(systemRandom);
      await assert.rejects(writePrivateKeyFile({ path, privateKey, passphrase: 'short' }), (e) => SdcError.is(e, 'TRUST_KEY_PASSPHRASE_WEAK'));
      await writePrivateKeyFile({ path, privateKey });
      await chmod(path, 0o640);
      await assert.rejects(readPrivateKeyFile({ path }), (e) => SdcError.is(e, 'TRUST_KEY_FILE_PERMISSIONS'));
      const ecPath = join(dir, 'ec.key');
      assert.equal(openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', ecPath]).status, 0);
      await chmod(ecPath, 0o600);
      await assert.rejects(readPrivateKeyFile({ path: ecPath }), (e) => SdcError.is(e, 'TRUST_KEY_FILE_INVALID'));
      const junk = join(dir, 'junk.key');
      await writeFile(junk, 'junk', { mode: 0o600 });
      await assert.rejects(readPrivateKeyFile({ path: junk }), (e) => SdcError.is(e, 'TRUST_KEY_FILE_INVALID'));
      await assert.rejects(readPrivateKeyFile({ path: join(dir, 'missing.key') }), (e) => SdcError.is(e, 'TRUST_KEY_FILE_INVALID'));
    });
  });
});

// Review h2, finding 1: the offline keys of `sdc ota init` exist in no other copy.
describe('key files written exclusively', () => {
  it('an existing file is refused with TRUST_KEY_FILE_EXISTS and left as it was', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'offline', 'root-1.pem');
      const { privateKey } = await generateEd25519KeyPair(systemRandom);
      await writePrivateKeyFile({ path, privateKey, exclusive: true });
      const before = await readFile(path, 'utf8');
      const other = await generateEd25519KeyPair(systemRandom);
      await assert.rejects(writePrivateKeyFile({ path, privateKey: other.privateKey, exclusive: true }),
        (e) => SdcError.is(e, 'TRUST_KEY_FILE_EXISTS') && e.details.path === path);
      assert.equal(await readFile(path, 'utf8'), before);
      assert.ok(await sameKey(privateKey, await readPrivateKeyFile({ path })));
    });
  });
});

// Review h2, finding 3: `--keys-out /tmp` as root chmodded /tmp to 0700 (its sticky bit and everyone's access gone).
describe('the directory a key file is written to', () => {
  it('a shared directory (mode 1777, as /tmp) is refused and keeps its mode; an existing private one is used unchanged', async () => {
    await withTempDir(async (dir) => {
      const shared = join(dir, 'tmp');
      await mkdir(shared);
      await chmod(shared, 0o1777);
      const { privateKey } = await generateEd25519KeyPair(systemRandom);
      await assert.rejects(writePrivateKeyFile({ path: join(shared, 'root-1.pem'), privateKey, passphrase }),
        (e) => SdcError.is(e, 'STORE_DIRECTORY_PERMISSIONS'));
      assert.equal((await stat(shared)).mode & 0o7777, 0o1777);
      assert.deepEqual(await readdir(shared), []);
      const own = join(dir, 'own');
      await mkdir(own, { mode: 0o750 });
      await chmod(own, 0o750);
      await writePrivateKeyFile({ path: join(own, 'k.pem'), privateKey });
      assert.equal((await stat(own)).mode & 0o7777, 0o750);
      assert.equal((await stat(join(own, 'k.pem'))).mode & 0o777, 0o600);
    });
  });
});
