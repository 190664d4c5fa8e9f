import { createHmac, createPrivateKey, createPublicKey, diffieHellman, hkdfSync } from 'node:crypto';
import { SdcError } from '../core/errors/index.js';
import { concatBytes } from '../core/crypto/bytes.js';
import { sessionCryptoChecks as checks } from '../core/crypto/session-crypto-checks.js';
import type { SessionKeyCrypto } from '../core/ports/ports.js';

// DER headers that turn raw X25519 keys into what OpenSSL imports (RFC 8410, id-X25519 1.3.101.110).
const pkcs8X25519Prefix = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20);
const spkiX25519Prefix = Uint8Array.of(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00);

function privateKey(secretKey: Uint8Array) {
  return createPrivateKey({ key: Buffer.from(concatBytes(pkcs8X25519Prefix, secretKey)), format: 'der', type: 'pkcs8' });
}

/** Session-key primitives on node:crypto (OpenSSL): the services' choice. */
export function createNodeSessionKeyCrypto(): SessionKeyCrypto {
  return {
    name: 'node:crypto',
    x25519PublicKey(secretKey) {
      const spki = createPublicKey(privateKey(checks.secretKey(secretKey))).export({ format: 'der', type: 'spki' });
      return new Uint8Array(spki.subarray(spkiX25519Prefix.length));
    },
    x25519SharedSecret(secretKey, peerPublicKey) {
      checks.secretKey(secretKey);
      checks.publicKey(peerPublicKey);
      const publicKey = createPublicKey({ key: Buffer.from(concatBytes(spkiX25519Prefix, peerPublicKey)), format: 'der', type: 'spki' });
      let secret: Uint8Array;
      try {
        secret = new Uint8Array(diffieHellman({ privateKey: privateKey(secretKey), publicKey }));
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
