import { SdcError } from '../errors/index.js';
import { ensureBytes } from './bytes.js';

/** X25519 keys and shared secrets are 32 bytes (RFC 7748). */
export const x25519KeyBytes = 32;
/** RFC 5869: HKDF-SHA256 output is at most 255 blocks of 32 bytes. */
export const hkdfSha256LengthMax = 255 * 32;

/** The input checks both SessionKeyCrypto implementations share, so they refuse alike. */
export const sessionCryptoChecks = {
  secretKey: (value: Uint8Array) => ensureBytes('secretKey', value, { code: 'CRYPTO_BAD_KEY', length: x25519KeyBytes }),
  publicKey: (value: Uint8Array) => ensureBytes('peerPublicKey', value, { code: 'CRYPTO_BAD_KEY', length: x25519KeyBytes }),
  /** An all-zero shared secret means a low-order peer key: the peer could force it, so it is no secret (RFC 7748 §6.1). */
  sharedSecret(secret: Uint8Array): Uint8Array {
    if (secret.every((byte) => byte === 0)) throw new SdcError('CRYPTO_BAD_KEY', 'X25519 peer key has low order (all-zero shared secret)');
    return secret;
  },
  hkdf(input: { ikm: Uint8Array; salt: Uint8Array; info: Uint8Array; length: number }): void {
    ensureBytes('ikm', input.ikm, { code: 'PROTO_INVALID_ARGUMENT' });
    ensureBytes('salt', input.salt, { code: 'PROTO_INVALID_ARGUMENT' });
    ensureBytes('info', input.info, { code: 'PROTO_INVALID_ARGUMENT' });
    if (!Number.isSafeInteger(input.length) || input.length < 1 || input.length > hkdfSha256LengthMax) {
      throw new SdcError('PROTO_INVALID_ARGUMENT', `HKDF length must be 1..${hkdfSha256LengthMax}`);
    }
  },
  hmac(key: Uint8Array, message: Uint8Array): void {
    ensureBytes('key', key, { code: 'CRYPTO_BAD_KEY' });
    ensureBytes('message', message, { code: 'PROTO_INVALID_ARGUMENT' });
  },
};
