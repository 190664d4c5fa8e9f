import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { SdcError } from '../core/errors/index.js';
import { bytesFromHex, hexFromBytes } from '../core/crypto/bytes.js';
import { createNobleSessionKeyCrypto } from '../core/crypto/session-crypto-noble.js';
import type { SessionKeyCrypto } from '../core/ports/ports.js';
import { createNodeSessionKeyCrypto, x25519ImportStats } from './session-crypto-node.js';

const hex = (text: string) => bytesFromHex(text, { code: 'PROTO_INVALID_ARGUMENT', name: 'vector' });
const ascii = (text: string) => new TextEncoder().encode(text);

/** RFC 7748 §6.1: Alice and Bob. */
const x25519Vector = {
  alicePrivate: '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a',
  alicePublic: '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
  bobPrivate: '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb',
  bobPublic: 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f',
  shared: '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742',
};

function isBadKey(error: unknown): boolean {
  return SdcError.is(error) && error.code === 'CRYPTO_BAD_KEY';
}

for (const crypto of [createNodeSessionKeyCrypto(), createNobleSessionKeyCrypto()] satisfies SessionKeyCrypto[]) {
  describe(`SessionKeyCrypto: ${crypto.name}`, () => {
    it('X25519 gives the RFC 7748 public keys and shared secret, from either side', () => {
      assert.equal(hexFromBytes(crypto.x25519PublicKey(hex(x25519Vector.alicePrivate))), x25519Vector.alicePublic);
      assert.equal(hexFromBytes(crypto.x25519PublicKey(hex(x25519Vector.bobPrivate))), x25519Vector.bobPublic);
      assert.equal(hexFromBytes(crypto.x25519SharedSecret(hex(x25519Vector.alicePrivate), hex(x25519Vector.bobPublic))), x25519Vector.shared);
      assert.equal(hexFromBytes(crypto.x25519SharedSecret(hex(x25519Vector.bobPrivate), hex(x25519Vector.alicePublic))), x25519Vector.shared);
    });

    it('refuses a low-order peer key and keys of the wrong length with CRYPTO_BAD_KEY', () => {
      const secret = hex(x25519Vector.alicePrivate);
      assert.throws(() => crypto.x25519SharedSecret(secret, new Uint8Array(32)), isBadKey, 'the all-zero point has low order');
      assert.throws(() => crypto.x25519SharedSecret(secret, Uint8Array.of(1, ...new Uint8Array(31))), isBadKey, 'u = 1 has low order');
      assert.throws(() => crypto.x25519SharedSecret(secret, new Uint8Array(31)), isBadKey);
      assert.throws(() => crypto.x25519PublicKey(new Uint8Array(33)), isBadKey);
    });

    it('HKDF-SHA256 gives RFC 5869 test case 1 and refuses a length beyond 255 blocks', () => {
      const okm = crypto.hkdfSha256({ ikm: hex('0b'.repeat(22)), salt: hex('000102030405060708090a0b0c'), info: hex('f0f1f2f3f4f5f6f7f8f9'), length: 42 });
      assert.equal(hexFromBytes(okm), '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
      assert.throws(() => crypto.hkdfSha256({ ikm: new Uint8Array(1), salt: new Uint8Array(0), info: new Uint8Array(0), length: 255 * 32 + 1 }),
        (error: unknown) => SdcError.is(error) && error.code === 'PROTO_INVALID_ARGUMENT');
    });

    it('HMAC-SHA256 gives RFC 4231 test case 2', () => {
      assert.equal(hexFromBytes(crypto.hmacSha256(ascii('Jefe'), ascii('what do ya want for nothing?'))),
        '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
    });
  });
}

describe('SessionKeyCrypto: node:crypto reuses a session\'s imported secret', () => {
  it('imports the ephemeral secret once for its public key and the shared secret, and afresh when the array changed', () => {
    const crypto = createNodeSessionKeyCrypto();
    const secret = hex(x25519Vector.alicePrivate);
    const before = x25519ImportStats.privateKeyImports;
    assert.equal(hexFromBytes(crypto.x25519PublicKey(secret)), x25519Vector.alicePublic);
    assert.equal(hexFromBytes(crypto.x25519SharedSecret(secret, hex(x25519Vector.bobPublic))), x25519Vector.shared);
    assert.equal(x25519ImportStats.privateKeyImports - before, 1, 'one import for both calls');
    // The same array, now holding Bob's secret: the held key must not be used.
    secret.set(hex(x25519Vector.bobPrivate));
    assert.equal(hexFromBytes(crypto.x25519SharedSecret(secret, hex(x25519Vector.alicePublic))), x25519Vector.shared);
    assert.equal(hexFromBytes(crypto.x25519PublicKey(secret)), x25519Vector.bobPublic);
    assert.equal(x25519ImportStats.privateKeyImports - before, 3);
    // A copy of a secret is another array: imported on its own.
    assert.equal(hexFromBytes(crypto.x25519SharedSecret(hex(x25519Vector.alicePrivate), hex(x25519Vector.bobPublic))), x25519Vector.shared);
    assert.equal(x25519ImportStats.privateKeyImports - before, 4);
  });
});

describe('SessionKeyCrypto: node:crypto derives HKDF-SHA256 as its HMACs', () => {
  it('gives the bytes of hkdfSync on random inputs (lengths across block edges, empty salt and info)', () => {
    const crypto = createNodeSessionKeyCrypto();
    fc.assert(fc.property(
      fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 80 }),
      fc.oneof(fc.integer({ min: 1, max: 130 }), fc.constantFrom(31, 32, 33, 64, 65, 255 * 32)),
      (ikm, salt, info, length) => {
        assert.deepEqual(crypto.hkdfSha256({ ikm, salt, info, length }), new Uint8Array(hkdfSync('sha256', ikm, salt, info, length)));
      },
    ), { seed: 5869, numRuns: 300 });
  });

  it('makes no async resource per derivation (hkdfSync makes one; the services and the simulator run with async hooks)', () => {
    const crypto = createNodeSessionKeyCrypto();
    const created: string[] = [];
    const hook = createHook({ init: (_id, type) => { created.push(type); } }).enable();
    let okm: Uint8Array;
    try {
      okm = crypto.hkdfSha256({ ikm: hex('0b'.repeat(22)), salt: hex('000102030405060708090a0b0c'), info: hex('f0f1f2f3f4f5f6f7f8f9'), length: 42 });
    } finally {
      hook.disable();
    }
    assert.deepEqual(created, []);
    assert.equal(hexFromBytes(okm), '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
  });

  it('keeps the shared refusals: a length of 0, beyond 255 blocks, or not an integer, and a non-byte input', () => {
    const crypto = createNodeSessionKeyCrypto();
    const empty = new Uint8Array(0);
    for (const length of [0, 255 * 32 + 1, 1.5, Number.NaN]) {
      assert.throws(() => crypto.hkdfSha256({ ikm: empty, salt: empty, info: empty, length }), (error: unknown) => SdcError.is(error, 'PROTO_INVALID_ARGUMENT'), `length ${length}`);
    }
    assert.throws(() => crypto.hkdfSha256({ ikm: 'abc' as unknown as Uint8Array, salt: empty, info: empty, length: 32 }), (error: unknown) => SdcError.is(error, 'PROTO_INVALID_ARGUMENT'));
  });
});
