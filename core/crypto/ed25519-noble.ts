import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import type { Ed25519Provider } from '../ports/ports.js';
import { ensureBytes } from './bytes.js';
import { ed25519PublicKeyBytes, ed25519SeedBytes, ed25519SignatureBytes } from './ed25519-sizes.js';

// noble ships only async methods unless a synchronous SHA-512 is installed; the port is
// synchronous, so install @noble/hashes' sha512 (the library's documented way; it is a
// process-wide setting, and every caller wants the same standard hash).
ed.hashes.sha512 = sha512;

/**
 * Ed25519 in pure JavaScript (@noble/ed25519), for browsers and portable builds where
 * node:crypto is absent. Verification uses the strict RFC 8032 / FIPS 186-5 rules
 * (`zip215: false`: canonical encodings, small-order keys refused) rather than noble's
 * ZIP-215 default, so a signature accepted here is one OpenSSL would accept too.
 */
export function createNobleEd25519Provider(): Ed25519Provider {
  return {
    name: '@noble/ed25519',
    publicKeyFromSeed(seed) {
      ensureBytes('seed', seed, { code: 'CRYPTO_BAD_KEY', length: ed25519SeedBytes });
      return ed.getPublicKey(seed);
    },
    sign(seed, message) {
      ensureBytes('seed', seed, { code: 'CRYPTO_BAD_KEY', length: ed25519SeedBytes });
      ensureBytes('message', message, { code: 'PROTO_INVALID_ARGUMENT' });
      return ed.sign(message, seed);
    },
    verify(publicKey, message, signature) {
      ensureBytes('publicKey', publicKey, { code: 'CRYPTO_BAD_KEY', length: ed25519PublicKeyBytes });
      ensureBytes('signature', signature, { code: 'CRYPTO_BAD_SIGNATURE_ENCODING', length: ed25519SignatureBytes });
      ensureBytes('message', message, { code: 'PROTO_INVALID_ARGUMENT' });
      // noble returns false (never throws) for keys or R values that are not curve points.
      return ed.verify(signature, message, publicKey, { zip215: false });
    },
  };
}
