import { createHmac, diffieHellman, hkdfSync } from 'node:crypto';
import { SdcError } from '../core/errors/index.js';
import { bytesFromBase64url } from '../core/crypto/bytes.js';
import { okpPrivateKey, okpPublicKey, okpRawPublicKey } from './okp-key-import.js';
import { sessionCryptoChecks as checks } from '../core/crypto/session-crypto-checks.js';
import type { SessionKeyCrypto } from '../core/ports/ports.js';

/** Session-key primitives on node:crypto (OpenSSL): the services' choice. */
export function createNodeSessionKeyCrypto(): SessionKeyCrypto {
  return {
    name: 'node:crypto',
    x25519PublicKey(secretKey) {
      return bytesFromBase64url(okpRawPublicKey(okpPrivateKey('X25519', checks.secretKey(secretKey))), { code: 'CRYPTO_BAD_KEY', name: 'x25519 public key', length: 32 });
    },
    x25519SharedSecret(secretKey, peerPublicKey) {
      checks.secretKey(secretKey);
      checks.publicKey(peerPublicKey);
      let secret: Uint8Array;
      try {
        // Imported inside the try: OpenSSL may refuse a low-order point at import or at derivation.
        const publicKey = okpPublicKey('X25519', peerPublicKey);
        secret = new Uint8Array(diffieHellman({ privateKey: okpPrivateKey('X25519', secretKey), publicKey }));
      } catch (error) {
        // OpenSSL refuses a low-order point itself (an all-zero result); one code either way.
        throw new SdcError('CRYPTO_BAD_KEY', 'X25519 peer key has low order', {}, { cause: error });
      }
      return checks.sharedSecret(secret);
    },
    hkdfSha256(input) {
      checks.hkdf(input);
      return new Uint8Array(hkdfSync('sha256', input.ikm, input.salt, input.info, input.length));
    },
    hmacSha256(key, message) {
      checks.hmac(key, message);
      return new Uint8Array(createHmac('sha256', key).update(message).digest());
    },
  };
}
