import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { base64urlFromBytes, bytesFromHex, concatBytes } from '../core/crypto/bytes.js';

/**
 * Raw Ed25519 and X25519 keys to node:crypto KeyObjects. Through DER (PKCS#8, SPKI) OpenSSL 3's
 * decoder takes about 1 ms per key here; through JWK node builds the key from the raw bytes
 * (EVP_PKEY_new_raw_private_key) in about 0.05 ms. That cost was issue 17's key-cache cliff
 * (every Ed25519 call past the cache paid it) and most of a session's X25519 set-up.
 *
 * A private JWK must carry `x`, which node does not use: the key is built from `d` alone. We
 * pass a placeholder rather than deriving `x` (that is the very scalar multiplication we avoid)
 * and check once per curve, against the RFC's vector, that the key derived from `d` is right;
 * should a node version ever use or check `x`, the check fails and DER is used instead.
 */

export type OkpCurve = 'Ed25519' | 'X25519';

// DER headers for raw keys (RFC 8410): PKCS#8 PrivateKeyInfo and SubjectPublicKeyInfo.
const derPrefixes: Record<OkpCurve, { pkcs8: Uint8Array; spki: Uint8Array }> = {
  Ed25519: {
    pkcs8: Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20),
    spki: Uint8Array.of(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00),
  },
  X25519: {
    pkcs8: Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20),
    spki: Uint8Array.of(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00),
  },
};

/** RFC 8032 7.1 test 1 and RFC 7748 6.1 (Alice): a private key and the public key it must give. */
const vectors: Record<OkpCurve, { secretHex: string; publicHex: string }> = {
  Ed25519: { secretHex: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', publicHex: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a' },
  X25519: { secretHex: '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', publicHex: '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a' },
};

const placeholderX = base64urlFromBytes(new Uint8Array(32));

function privateByJwk(crv: OkpCurve, secret: Uint8Array): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv, d: base64urlFromBytes(secret), x: placeholderX }, format: 'jwk' });
}

function privateByDer(crv: OkpCurve, secret: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.from(concatBytes(derPrefixes[crv].pkcs8, secret)), format: 'der', type: 'pkcs8' });
}

const jwkWorks = new Map<OkpCurve, boolean>();

/** Whether the JWK path gives the right key on this node (checked once per curve). */
export function privateJwkImportWorks(crv: OkpCurve): boolean {
  let works = jwkWorks.get(crv);
  if (works === undefined) {
    const vector = vectors[crv];
    try {
      const secret = bytesFromHex(vector.secretHex, { code: 'CRYPTO_BAD_KEY', name: 'vector' });
      const derived = createPublicKey(privateByJwk(crv, secret)).export({ format: 'jwk' }).x;
      works = derived === base64urlFromBytes(bytesFromHex(vector.publicHex, { code: 'CRYPTO_BAD_KEY', name: 'vector' }));
    } catch {
      works = false;
    }
    jwkWorks.set(crv, works);
  }
  return works;
}

/** A private KeyObject from the raw 32-byte secret (Ed25519 seed, X25519 scalar); lengths are the caller's to check. */
export function okpPrivateKey(crv: OkpCurve, secret: Uint8Array): KeyObject {
  return privateJwkImportWorks(crv) ? privateByJwk(crv, secret) : privateByDer(crv, secret);
}

/** A public KeyObject from the raw 32-byte key. JWK is node's documented raw import; it may refuse a bad point, as DER may. */
export function okpPublicKey(crv: OkpCurve, publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv, x: base64urlFromBytes(publicKey) }, format: 'jwk' });
}

/** The raw public key of a KeyObject (private or public). */
export function okpRawPublicKey(key: KeyObject): string {
  return String((key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' }).x);
}
