import { x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { SdcError } from '../errors/index.js';
import type { SessionKeyCrypto } from '../ports/ports.js';
import { sessionCryptoChecks as checks } from './session-crypto-checks.js';

/** Session-key primitives in pure JS (@noble/curves, @noble/hashes): for the simulator and sans-IO callers. */
export function createNobleSessionKeyCrypto(): SessionKeyCrypto {
  return {
    name: '@noble/curves + @noble/hashes',
    x25519PublicKey(secretKey) {
      return x25519.getPublicKey(checks.secretKey(secretKey));
    },
    x25519SharedSecret(secretKey, peerPublicKey) {
      checks.secretKey(secretKey);
      checks.publicKey(peerPublicKey);
      let secret: Uint8Array;
      try {
        secret = x25519.getSharedSecret(secretKey, peerPublicKey);
      } catch (error) {
        // noble refuses a low-order point itself; one code either way.
        throw new SdcError('CRYPTO_BAD_KEY', 'X25519 peer key has low order', {}, { cause: error });
      }
      return checks.sharedSecret(secret);
    },
    hkdfSha256(input) {
      checks.hkdf(input);
      return hkdf(sha256, input.ikm, input.salt, input.info, input.length);
    },
    hmacSha256(key, message) {
      checks.hmac(key, message);
      return hmac(sha256, key, message);
    },
  };
}
