import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as fc from 'fast-check';
import * as ed from '@noble/ed25519';
import { SdcError } from '../core/errors/index.js';
import type { Ed25519Provider } from '../core/ports/ports.js';
import { bytesFromHex, hexFromBytes } from '../core/crypto/bytes.js';
import { createNobleEd25519Provider } from '../core/crypto/ed25519-noble.js';
import { createNodeEd25519Provider } from './ed25519-node.js';

interface Vector { name: string; secretKey: string; publicKey: string; message: string; signature: string }
const vectorFile = JSON.parse(readFileSync(new URL('../core/crypto/vectors/rfc8032-ed25519.json', import.meta.url), 'utf8')) as { vectors: Vector[] };
const hex = (text: string) => bytesFromHex(text, { code: 'PROTO_INVALID_ARGUMENT', name: 'hex' });

/** The group order L (RFC 8032 section 5.1). */
const groupOrder = 2n ** 252n + 27742317777372353535851937790883648493n;

/** A 32-byte string that is not the encoding of any curve point (y = 2 has no x). */
const notACurvePoint = (() => { const b = new Uint8Array(32); b[0] = 2; return b; })();

const providers: ReadonlyArray<readonly [string, () => Ed25519Provider]> = [
  ['node (cached)', () => createNodeEd25519Provider()],
  ['node (uncached)', () => createNodeEd25519Provider({ keyCacheEntriesMax: 0 })],
  ['noble', () => createNobleEd25519Provider()],
];

test('the vector file holds the five RFC 8032 section 7.1 Ed25519 tests', () => {
  assert.deepEqual(vectorFile.vectors.map((v) => v.name), ['TEST 1', 'TEST 2', 'TEST 3', 'TEST 1024', 'TEST SHA(abc)']);
  assert.equal(hex(vectorFile.vectors[3]!.message).length, 1023);
});

for (const [label, makeProvider] of providers) {
  describe(`Ed25519 provider contract: ${label}`, () => {
    const provider = makeProvider();

    for (const vector of vectorFile.vectors) {
      test(`RFC 8032 ${vector.name}: derives the public key, reproduces the signature, verifies it`, () => {
        const seed = hex(vector.secretKey);
        const message = hex(vector.message);
        assert.equal(hexFromBytes(provider.publicKeyFromSeed(seed)), vector.publicKey);
        assert.equal(hexFromBytes(provider.sign(seed, message)), vector.signature);
        assert.equal(provider.verify(hex(vector.publicKey), message, hex(vector.signature)), true);
      });
    }

    test('a changed message, signature or key does not verify', () => {
      const vector = vectorFile.vectors[2]!;
      const publicKey = hex(vector.publicKey);
      const message = hex(vector.message);
      const signature = hex(vector.signature);
      assert.equal(provider.verify(publicKey, Uint8Array.of(0xaf, 0x83), signature), false);
      const badSignature = signature.slice(); badSignature[10]! ^= 1;
      assert.equal(provider.verify(publicKey, message, badSignature), false);
      assert.equal(provider.verify(hex(vectorFile.vectors[1]!.publicKey), message, signature), false);
    });

    test('a public key that is not a curve point verifies nothing (false, no throw)', () => {
      assert.throws(() => ed.Point.fromBytes(notACurvePoint, false), 'precondition: the bytes are not a point');
      const vector = vectorFile.vectors[1]!;
      assert.equal(provider.verify(notACurvePoint, hex(vector.message), hex(vector.signature)), false);
    });

    test('a malleated signature (S + L) is refused', () => {
      const vector = vectorFile.vectors[1]!;
      const signature = hex(vector.signature);
      let s = 0n;
      for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]!);
      let malleated = s + groupOrder;
      const forged = signature.slice();
      for (let i = 32; i < 64; i++) { forged[i] = Number(malleated & 0xffn); malleated >>= 8n; }
      assert.equal(malleated, 0n, 'S + L still fits in 32 bytes');
      assert.equal(provider.verify(hex(vector.publicKey), hex(vector.message), forged), false);
    });

    test('malformed inputs are refused with typed errors', () => {
      const seed = new Uint8Array(32);
      const isCode = (code: string) => (error: unknown) => SdcError.is(error) && error.code === code;
      assert.throws(() => provider.publicKeyFromSeed(new Uint8Array(31)), isCode('CRYPTO_BAD_KEY'));
      assert.throws(() => provider.sign(new Uint8Array(33), new Uint8Array(1)), isCode('CRYPTO_BAD_KEY'));
      assert.throws(() => provider.sign('seed' as unknown as Uint8Array, new Uint8Array(1)), isCode('CRYPTO_BAD_KEY'));
      assert.throws(() => provider.verify(new Uint8Array(31), new Uint8Array(1), new Uint8Array(64)), isCode('CRYPTO_BAD_KEY'));
      assert.throws(() => provider.verify(new Uint8Array(32), new Uint8Array(1), new Uint8Array(63)), isCode('CRYPTO_BAD_SIGNATURE_ENCODING'));
      assert.throws(() => provider.verify(new Uint8Array(32), new Uint8Array(1), new Uint8Array(65)), isCode('CRYPTO_BAD_SIGNATURE_ENCODING'));
      assert.throws(() => provider.sign(seed, 'text' as unknown as Uint8Array), isCode('PROTO_INVALID_ARGUMENT'));
    });
  });
}

test('differential: node and noble derive the same keys and signatures and verify each other', () => {
  const node = createNodeEd25519Provider({ keyCacheEntriesMax: 64 });
  const noble = createNobleEd25519Provider();
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
    fc.uint8Array({ maxLength: 512 }),
    (seed, message) => {
      const publicKey = node.publicKeyFromSeed(seed);
      assert.deepEqual(noble.publicKeyFromSeed(seed), publicKey);
      const nodeSignature = node.sign(seed, message);
      const nobleSignature = noble.sign(seed, message);
      assert.deepEqual(nobleSignature, nodeSignature);
      assert.equal(node.verify(publicKey, message, nobleSignature), true);
      assert.equal(noble.verify(publicKey, message, nodeSignature), true);
    },
  ), { numRuns: 200 });
});
