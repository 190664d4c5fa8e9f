import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SdcError } from '../core/errors/index.js';
import { createNodeEd25519Provider, createVerifiedSignatureCache, pemFromPrivateSeed, verifiedMessageBytesMax, pemFromPublicKey, privateSeedFromPem, publicKeyFromPem } from './ed25519-node.js';

const seed = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const isBadKey = (error: unknown) => SdcError.is(error, 'CRYPTO_BAD_KEY');

test('PEM round trip: seed -> PKCS#8 -> seed, public key -> SPKI -> public key', () => {
  const provider = createNodeEd25519Provider();
  const publicKey = provider.publicKeyFromSeed(seed);
  const privatePem = pemFromPrivateSeed(seed);
  const publicPem = pemFromPublicKey(publicKey);
  assert.match(privatePem, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.match(publicPem, /^-----BEGIN PUBLIC KEY-----\n/);
  assert.deepEqual(privateSeedFromPem(privatePem), seed);
  assert.deepEqual(publicKeyFromPem(publicPem), publicKey);
});

test('PEM readers refuse other key types, garbage, and a private key where a public one belongs', () => {
  assert.throws(() => privateSeedFromPem('not a pem'), isBadKey);
  assert.throws(() => publicKeyFromPem('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n'), isBadKey);
  assert.throws(() => publicKeyFromPem(pemFromPrivateSeed(seed)), isBadKey);
  // An X25519 key is a valid PKCS#8 key, just not an Ed25519 one.
  const x25519 = String(generateKeyPairSync('x25519').privateKey.export({ format: 'pem', type: 'pkcs8' }));
  assert.throws(() => privateSeedFromPem(x25519), (error: unknown) => isBadKey(error) && /x25519/.test((error as Error).message));
});

test('interoperates with openssl: reads `openssl genpkey -algorithm ed25519` keys, and openssl verifies our signature',
  { skip: hasOpenssl ? false : 'openssl CLI not installed; the PEM round trip above still covers our own encoding' }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'sdc-ed25519-'));
    try {
      const keyPath = join(dir, 'key.pem');
      execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', keyPath]);
      const opensslPublicPem = execFileSync('openssl', ['pkey', '-in', keyPath, '-pubout'], { encoding: 'utf8' });
      const provider = createNodeEd25519Provider();
      const ourSeed = privateSeedFromPem(readFileSync(keyPath, 'utf8'));
      const publicKey = provider.publicKeyFromSeed(ourSeed);
      assert.deepEqual(publicKeyFromPem(opensslPublicPem), publicKey);
      assert.equal(pemFromPublicKey(publicKey), opensslPublicPem);

      const message = new TextEncoder().encode('signed by sdc, checked by openssl');
      writeFileSync(join(dir, 'msg.bin'), message);
      writeFileSync(join(dir, 'sig.bin'), provider.sign(ourSeed, message));
      writeFileSync(join(dir, 'pub.pem'), pemFromPublicKey(publicKey));
      const result = spawnSync('openssl', ['pkeyutl', '-verify', '-rawin', '-pubin', '-inkey', join(dir, 'pub.pem'),
        '-in', join(dir, 'msg.bin'), '-sigfile', join(dir, 'sig.bin')], { encoding: 'utf8' });
      assert.equal(result.status, 0, result.stdout + result.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

test('the key cache is bounded and does not change results', () => {
  const provider = createNodeEd25519Provider({ keyCacheEntriesMax: 2 });
  const seeds = [1, 2, 3].map((n) => new Uint8Array(32).fill(n));
  const message = Uint8Array.of(1, 2, 3);
  // Cycling three keys through a two-entry cache forces evictions on every call.
  for (let round = 0; round < 3; round++) {
    for (const s of seeds) {
      const publicKey = provider.publicKeyFromSeed(s);
      assert.equal(provider.verify(publicKey, message, provider.sign(s, message)), true);
    }
  }
});

test('publicKeyCacheEntriesMax bounds the public KeyObjects alone (a gateway keeps few device keys), results unchanged', () => {
  const provider = createNodeEd25519Provider({ publicKeyCacheEntriesMax: 2 });
  const seeds = [1, 2, 3, 4, 5].map((n) => new Uint8Array(32).fill(n));
  const message = Uint8Array.of(4, 5, 6);
  for (let round = 0; round < 2; round++) {
    for (const s of seeds) {
      const publicKey = provider.publicKeyFromSeed(s);
      assert.equal(provider.verify(publicKey, message, provider.sign(s, message)), true);
      const other = provider.publicKeyFromSeed(seeds[(seeds.indexOf(s) + 1) % seeds.length]!);
      assert.equal(provider.verify(other, message, provider.sign(s, message)), false);
    }
  }
  // Five devices' keys verified twice each: two public KeyObjects kept, the private cache (default bound) keeps all five seeds.
  assert.deepEqual(provider.cachedKeys(), { privateKeys: 5, publicKeys: 2 });
  // Without the option both caches share keyCacheEntriesMax.
  const plain = createNodeEd25519Provider({ keyCacheEntriesMax: 3 });
  for (const s of seeds) plain.verify(plain.publicKeyFromSeed(s), message, plain.sign(s, message));
  assert.deepEqual(plain.cachedKeys(), { privateKeys: 3, publicKeys: 3 });
});

test('verifiedCacheEntriesMax: a second verify of the same bytes skips the curve arithmetic; any other bytes are verified', () => {
  const provider = createNodeEd25519Provider({ verifiedCacheEntriesMax: 8 });
  const publicKey = provider.publicKeyFromSeed(seed);
  const otherKey = provider.publicKeyFromSeed(new Uint8Array(32).fill(9));
  const message = new TextEncoder().encode('a device-signed report');
  const signature = provider.sign(seed, message);
  assert.equal(provider.verify(publicKey, message, signature), true);
  // The same bytes again, in new arrays (as a second component decodes them): answered from the cache.
  assert.equal(provider.verify(publicKey.slice(), message.slice(), signature.slice()), true);
  assert.deepEqual([provider.counts().verifies, provider.counts().verifiedCacheHits], [1, 1]);
  // One byte changed in the message, or another key with the same signature: verified, and refused.
  const changed = message.slice();
  changed[0] = changed[0]! ^ 1;
  assert.equal(provider.verify(publicKey, changed, signature), false);
  assert.equal(provider.verify(otherKey, message, signature), false);
  // A refusal is not kept: the same wrong bytes are verified (and refused) again.
  assert.equal(provider.verify(publicKey, changed, signature), false);
  assert.deepEqual([provider.counts().verifies, provider.counts().verifiedCacheHits], [4, 1]);
  // A caller that changes its message array in place after a verify does not change what was kept.
  const reused = message.slice();
  assert.equal(provider.verify(publicKey, reused, signature), true);
  reused[1] = reused[1]! ^ 1;
  assert.equal(provider.verify(publicKey, reused, signature), false);
});

test('verifiedSignatures: two providers of one process share what verified (decision 0014), each with its own key caches; the cache is bounded', () => {
  const verifiedSignatures = createVerifiedSignatureCache(2);
  const gateway = createNodeEd25519Provider({ publicKeyCacheEntriesMax: 4, verifiedSignatures });
  const controlPlane = createNodeEd25519Provider({ verifiedSignatures });
  const publicKey = gateway.publicKeyFromSeed(seed);
  const messages = ['ack', 'result', 'alert'].map((text) => new TextEncoder().encode(`a device-signed ${text}`));
  const signatures = messages.map((message) => gateway.sign(seed, message));
  assert.equal(gateway.verify(publicKey, messages[0]!, signatures[0]!), true);
  // The control plane's check of the same bytes: no curve arithmetic, and no key import of its own.
  assert.equal(controlPlane.verify(publicKey.slice(), messages[0]!.slice(), signatures[0]!.slice()), true);
  assert.deepEqual([controlPlane.counts().verifies, controlPlane.counts().verifiedCacheHits, controlPlane.counts().publicKeyImports], [0, 1, 0]);
  // Other bytes under a shared cache are verified, and a refusal shared by neither.
  const changed = messages[0]!.slice();
  changed[0] = changed[0]! ^ 1;
  assert.equal(gateway.verify(publicKey, changed, signatures[0]!), false);
  assert.equal(controlPlane.verify(publicKey, changed, signatures[0]!), false);
  assert.deepEqual([controlPlane.counts().verifies, controlPlane.counts().verifiedCacheHits], [1, 1]);
  // Two entries at most: after two more verified signatures the first is gone and is verified again.
  assert.equal(gateway.verify(publicKey, messages[1]!, signatures[1]!), true);
  assert.equal(gateway.verify(publicKey, messages[2]!, signatures[2]!), true);
  assert.equal(controlPlane.verify(publicKey, messages[0]!, signatures[0]!), true);
  assert.deepEqual([controlPlane.counts().verifies, controlPlane.counts().verifiedCacheHits], [2, 1]);
  // A provider given its own size keeps its own cache: nothing the others verified is answered.
  const alone = createNodeEd25519Provider({ verifiedCacheEntriesMax: 8 });
  assert.equal(alone.verify(publicKey, messages[2]!, signatures[2]!), true);
  assert.deepEqual([alone.counts().verifies, alone.counts().verifiedCacheHits], [1, 0]);
});

test('a message longer than verifiedMessageBytesMax is verified every time, never kept (an entry holds a copy of its message)', () => {
  const provider = createNodeEd25519Provider({ verifiedCacheEntriesMax: 8 });
  const publicKey = provider.publicKeyFromSeed(seed);
  const long = new Uint8Array(verifiedMessageBytesMax + 1).fill(7);
  const atBound = long.subarray(0, verifiedMessageBytesMax);
  for (const message of [long, long, atBound, atBound]) assert.equal(provider.verify(publicKey, message, provider.sign(seed, message)), true);
  // The long one twice through the curve; the one at the bound once, then from the cache.
  assert.deepEqual([provider.counts().verifies, provider.counts().verifiedCacheHits], [3, 1]);
});

test('without verifiedCacheEntriesMax (services) every verify runs the curve arithmetic', () => {
  const provider = createNodeEd25519Provider();
  const publicKey = provider.publicKeyFromSeed(seed);
  const message = Uint8Array.of(7, 8, 9);
  const signature = provider.sign(seed, message);
  for (let i = 0; i < 3; i++) assert.equal(provider.verify(publicKey, message, signature), true);
  assert.deepEqual(provider.counts(), { signs: 1, verifies: 3, verifiedCacheHits: 0, privateKeyImports: 1, publicKeyImports: 1 });
});

test('rememberOwnSignatures: a signature this process made is verified by the exact-bytes match (decision 0016); other bytes, another key or a cache-less provider still run the curve', () => {
  const verifiedSignatures = createVerifiedSignatureCache(8);
  const controlPlane = createNodeEd25519Provider({ verifiedSignatures, rememberOwnSignatures: true });
  const gateway = createNodeEd25519Provider({ verifiedSignatures });
  const publicKey = controlPlane.publicKeyFromSeed(seed);
  const message = new TextEncoder().encode('a command the control plane signed');
  const signature = controlPlane.sign(seed, message);
  // The gateway's check of the command as signed: answered by the match, no curve, no key import.
  assert.equal(gateway.verify(publicKey.slice(), message.slice(), signature.slice()), true);
  assert.deepEqual([gateway.counts().verifies, gateway.counts().verifiedCacheHits, gateway.counts().publicKeyImports], [0, 1, 0]);
  // A changed message, a changed signature, or the signature under another key: the curve, and false.
  const changed = message.slice();
  changed[0] = changed[0]! ^ 1;
  const forged = signature.slice();
  forged[5] = forged[5]! ^ 1;
  const otherKey = controlPlane.publicKeyFromSeed(Uint8Array.from({ length: 32 }, (_, i) => 100 + i));
  assert.equal(gateway.verify(publicKey, changed, signature), false);
  assert.equal(gateway.verify(publicKey, message, forged), false);
  assert.equal(gateway.verify(otherKey, message, signature), false);
  assert.deepEqual([gateway.counts().verifies, gateway.counts().verifiedCacheHits], [3, 1]);
  // Without the option a provider's signatures are not kept (the default; the simulator's agents sign on shared providers).
  const plain = createNodeEd25519Provider({ verifiedSignatures: createVerifiedSignatureCache(8) });
  const other = new TextEncoder().encode('signed without the option');
  const otherSignature = plain.sign(seed, other);
  assert.equal(plain.verify(publicKey, other, otherSignature), true);
  assert.deepEqual([plain.counts().verifies, plain.counts().verifiedCacheHits], [1, 0]);
  // The option without any cache keeps nothing and changes no answer.
  const noCache = createNodeEd25519Provider({ rememberOwnSignatures: true });
  assert.equal(noCache.verify(publicKey, message, noCache.sign(seed, message)), true);
  assert.deepEqual([noCache.counts().verifies, noCache.counts().verifiedCacheHits], [1, 0]);
});

test('verifiedSignatures made elsewhere (not createVerifiedSignatureCache) are asked and told through has/add, with the signature', () => {
  const calls: string[] = [];
  const kept = new Set<string>();
  const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
  const provider = createNodeEd25519Provider({
    verifiedSignatures: {
      has(_publicKey, message, signature) {
        calls.push(`has ${message.length} ${signature.length}`);
        return kept.has(hex(signature));
      },
      add(_publicKey, message, signature) {
        calls.push(`add ${message.length} ${signature.length}`);
        kept.add(hex(signature));
      },
    },
  });
  const publicKey = provider.publicKeyFromSeed(seed);
  const message = new TextEncoder().encode('a report');
  const signature = provider.sign(seed, message);
  assert.equal(provider.verify(publicKey, message, signature), true);
  assert.equal(provider.verify(publicKey, message, signature), true);
  assert.deepEqual(calls, ['has 8 64', 'add 8 64', 'has 8 64']);
  assert.deepEqual([provider.counts().verifies, provider.counts().verifiedCacheHits], [1, 1]);
});
