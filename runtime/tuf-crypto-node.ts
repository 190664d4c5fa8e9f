import { constants, createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { TufCrypto, TufPublicKey } from '../core/tuf/crypto-port.js';

/**
 * The TUF crypto port on node:crypto. Verifies the key types and schemes TUF's reference client
 * (python-securesystemslib) does: ed25519 (hex public key), ecdsa-sha2-nistp256 (PEM, DER
 * signatures), rsassa-pss-sha256 (PEM, salt length recovered from the signature as
 * securesystemslib's PSS.AUTO does) and rsa-pkcs1v15-sha256 (the conformance suite's default RSA
 * scheme). Anything else, or any malformed key or signature, verifies as false.
 */

interface Scheme {
  readonly keytypes: readonly string[];
  keyObject(publicValue: string): KeyObject | undefined;
  check(message: Uint8Array, key: KeyObject, signature: Uint8Array): boolean;
}

const schemes: Readonly<Record<string, Scheme>> = {
  ed25519: {
    keytypes: ['ed25519'],
    keyObject: (hex) => (/^[0-9a-fA-F]{64}$/.test(hex)
      ? createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(hex, 'hex').toString('base64url') }, format: 'jwk' })
      : undefined),
    check: (message, key, signature) => verify(null, message, key, signature),
  },
  'ecdsa-sha2-nistp256': {
    // "ecdsa-sha2-nistp256" as a key type is the older spelling securesystemslib still accepts.
    keytypes: ['ecdsa', 'ecdsa-sha2-nistp256'],
    keyObject: (pem) => pemKey(pem, (key) => key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1'),
    check: (message, key, signature) => verify('sha256', message, { key, dsaEncoding: 'der' }, signature),
  },
  'rsassa-pss-sha256': {
    keytypes: ['rsa'],
    keyObject: (pem) => pemKey(pem, (key) => key.asymmetricKeyType === 'rsa'),
    check: (message, key, signature) => verify('sha256', message,
      { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, signature),
  },
  'rsa-pkcs1v15-sha256': {
    keytypes: ['rsa'],
    keyObject: (pem) => pemKey(pem, (key) => key.asymmetricKeyType === 'rsa'),
    check: (message, key, signature) => verify('sha256', message, { key, padding: constants.RSA_PKCS1_PADDING }, signature),
  },
};

function pemKey(pem: string, accept: (key: KeyObject) => boolean): KeyObject | undefined {
  if (!pem.includes('-----BEGIN PUBLIC KEY-----')) return undefined;
  const key = createPublicKey({ key: pem, format: 'pem' });
  return accept(key) ? key : undefined;
}

/** Parsed keys, bounded: a repository rotating keys forever must not grow the cache forever. */
const keyCacheSizeMax = 256;

/** Node's digest names for TUF's hash algorithm names. */
const digestNames: Readonly<Record<string, string>> = { sha224: 'sha224', sha256: 'sha256', sha384: 'sha384', sha512: 'sha512' };

export function createNodeTufCrypto(): TufCrypto {
  const keyCache = new Map<string, KeyObject | undefined>();
  const keyFor = (key: TufPublicKey, scheme: Scheme): KeyObject | undefined => {
    const cacheKey = `${key.keytype}\u0000${key.scheme}\u0000${key.publicValue}`;
    if (keyCache.has(cacheKey)) return keyCache.get(cacheKey);
    let parsed: KeyObject | undefined;
    try {
      parsed = scheme.keyObject(key.publicValue);
    } catch {
      parsed = undefined; // not a key node can read: it verifies nothing
    }
    if (keyCache.size >= keyCacheSizeMax) keyCache.clear();
    keyCache.set(cacheKey, parsed);
    return parsed;
  };
  return {
    verify(key, message, signature) {
      const scheme = Object.hasOwn(schemes, key.scheme) ? schemes[key.scheme] : undefined;
      if (scheme === undefined || !scheme.keytypes.includes(key.keytype)) return false;
      const keyObject = keyFor(key, scheme);
      if (keyObject === undefined) return false;
      try {
        return scheme.check(message, keyObject, signature);
      } catch {
        return false; // a malformed DER signature, a wrong length: no vote, never a crash
      }
    },
    digest(algorithm, bytes) {
      const name = Object.hasOwn(digestNames, algorithm) ? digestNames[algorithm] : undefined;
      return name === undefined ? undefined : new Uint8Array(createHash(name).update(bytes).digest());
    },
  };
}
