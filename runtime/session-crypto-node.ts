import { createHmac, diffieHellman, timingSafeEqual, type KeyObject } from 'node:crypto';
import { SdcError } from '../core/errors/index.js';
import { bytesFromBase64url } from '../core/crypto/bytes.js';
import { okpPrivateKey, okpPublicKey, okpRawPublicKey } from './okp-key-import.js';
import { sessionCryptoChecks as checks } from '../core/crypto/session-crypto-checks.js';
import { hkdfSha256ByHmac } from '../core/crypto/hkdf-by-hmac.js';
import type { SessionKeyCrypto } from '../core/ports/ports.js';

/**
 * Counts X25519 private-key imports (a test reads it to see the reuse below happen); one number
 * per process, never reset.
 */
export const x25519ImportStats = { privateKeyImports: 0 };

/**
 * A session's ephemeral secret is imported once: x25519PublicKey (at AUTH) keeps the KeyObject,
 * and x25519SharedSecret (at AUTH_ACK) reuses it, instead of a second import (about 85 µs here,
 * a fifth of a session's X25519 work; issue 17's start-up). Keyed weakly by the caller's array,
 * so an entry lives exactly as long as the secret it came from and needs no other bound; the
 * bytes are compared too, so an array changed in place (zeroed, reused) is imported afresh.
 */
function ephemeralKeyCache() {
  const keys = new WeakMap<Uint8Array, { readonly bytes: Uint8Array; readonly key: KeyObject }>();
  const importKey = (secretKey: Uint8Array): KeyObject => {
    x25519ImportStats.privateKeyImports += 1;
    const key = okpPrivateKey('X25519', secretKey);
    keys.set(secretKey, { bytes: secretKey.slice(), key });
    return key;
  };
  return {
    importKey,
    keyFor(secretKey: Uint8Array): KeyObject {
      const held = keys.get(secretKey);
      return held !== undefined && timingSafeEqual(held.bytes, secretKey) ? held.key : importKey(secretKey);
    },
  };
}

/** node:crypto's HMAC-SHA256, for HKDF's inner HMACs (their inputs are checked by checks.hkdf). */
function hmacSha256Unchecked(key: Uint8Array, message: Uint8Array): Uint8Array {
  return createHmac('sha256', key).update(message).digest();
}

/** Session-key primitives on node:crypto (OpenSSL): the services' choice. */
export function createNodeSessionKeyCrypto(): SessionKeyCrypto {
  const ephemeralKeys = ephemeralKeyCache();
  return {
    name: 'node:crypto',
    x25519PublicKey(secretKey) {
      return bytesFromBase64url(okpRawPublicKey(ephemeralKeys.importKey(checks.secretKey(secretKey))), { code: 'CRYPTO_BAD_KEY', name: 'x25519 public key', length: 32 });
    },
    x25519SharedSecret(secretKey, peerPublicKey) {
      checks.secretKey(secretKey);
      checks.publicKey(peerPublicKey);
      let secret: Uint8Array;
      try {
        // Imported inside the try: OpenSSL may refuse a low-order point at import or at derivation.
        const publicKey = okpPublicKey('X25519', peerPublicKey);
        secret = new Uint8Array(diffieHellman({ privateKey: ephemeralKeys.keyFor(secretKey), publicKey }));
      } catch (error) {
        // OpenSSL refuses a low-order point itself (an all-zero result); one code either way.
        throw new SdcError('CRYPTO_BAD_KEY', 'X25519 peer key has low order', {}, { cause: error });
      }
      return checks.sharedSecret(secret);
    },
    hkdfSha256(input) {
      checks.hkdf(input);
      // As its HMACs, not hkdfSync (an OpenSSL derivation context and an async resource per call): see hkdf-by-hmac.ts.
      return hkdfSha256ByHmac(hmacSha256Unchecked, input);
    },
    hmacSha256(key, message) {
      checks.hmac(key, message);
      return new Uint8Array(hmacSha256Unchecked(key, message));
    },
  };
}
