import {
  createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject,
} from 'node:crypto';
import { SdcError } from '../core/errors/index.js';
import type { Ed25519Provider } from '../core/ports/ports.js';
import { BoundedLru } from '../core/crypto/bounded-lru.js';
import { okpPrivateKey, okpPublicKey } from './okp-key-import.js';
import { bytesFromBase64url, ensureBytes } from '../core/crypto/bytes.js';
import { ed25519PublicKeyBytes, ed25519SeedBytes, ed25519SignatureBytes } from '../core/crypto/ed25519-sizes.js';

export const defaultKeyCacheEntriesMax = 4096;

export interface NodeEd25519Options {
  /**
   * KeyObjects kept per kind (private, public). Building a KeyObject from raw bytes (about 50 µs
   * through JWK, okp-key-import.ts) costs as much as the verify it serves, and a gateway verifies
   * many frames from the same few thousand devices, so reuse pays (see `sdc bench ed25519`).
   * 0 disables caching (the bench uses that to measure the uncached cost).
   */
  keyCacheEntriesMax?: number;
  /**
   * Public KeyObjects kept, when that should differ from keyCacheEntriesMax (default: the same).
   * Each one holds about 1.4 KiB outside V8's heap (OpenSSL's key) and 0.2 KiB in it. A gateway
   * verifies one device's key at AUTH and then only on its rare signed frames (the session MAC
   * covers heartbeats and telemetry), so a full cache there was memory per session for little
   * gain: building the KeyObject again costs 10-25 µs against a verify's 80 µs (docs/benchmarks.md).
   */
  publicKeyCacheEntriesMax?: number;
  /**
   * Signatures that verified, kept by their exact bytes (public key, signature and the whole
   * message), so a second verify of the same bytes in this process is answered without the curve
   * arithmetic (about 90 µs). Only a `true` is kept, and a hit needs every byte equal, so no
   * answer changes. For a process where two parts check the same frame: the simulator runs the
   * gateway and the control plane on one provider, and both verify each device's signed reports
   * (issue 17). Each entry holds its message (a few hundred bytes). Default 0: off.
   */
  verifiedCacheEntriesMax?: number;
  /**
   * A verified-signature cache shared with other providers of this process (createVerifiedSignatureCache),
   * used instead of one of this provider's own (verifiedCacheEntriesMax is then ignored). For one
   * process that runs a gateway and a control plane, each with its own key caches: the control
   * plane's check of a device frame the gateway has checked is then answered by the exact-bytes
   * match (docs/decisions/0014-one-process-verifies-a-device-frame-once.md).
   */
  verifiedSignatures?: VerifiedSignatureCache;
  /**
   * Each signature this provider makes is added to its verified-signature cache (with the public
   * key of the seed that made it): a signature just made with a seed verifies under that seed's
   * public key by construction, so a later verify of the same exact bytes in this process is the
   * byte comparison instead of the curve. For one process whose control plane signs commands and
   * whose gateway checks those signatures before delivery (startDeployment): the gateway's check
   * of a command this process signed is answered by the match, a deliver entry with any other bytes
   * still runs the curve (docs/decisions/0016-gateway-command-check-answered-by-its-signer.md).
   * Default false. Needs a verified-signature cache (verifiedSignatures or verifiedCacheEntriesMax).
   */
  rememberOwnSignatures?: boolean;
}

/** What a provider did since it was made: cheap counts for tests and benches (deterministic for a seeded run). */
export interface NodeEd25519Counts {
  signs: number;
  /** Verifies that ran the curve arithmetic (OpenSSL). */
  verifies: number;
  /** Verifies answered from the verified-signature cache. */
  verifiedCacheHits: number;
  privateKeyImports: number;
  publicKeyImports: number;
}

/** What a node:crypto provider keeps (tests and benches read it). */
export interface NodeEd25519Provider extends Ed25519Provider {
  /** The KeyObjects held in the two caches now. */
  cachedKeys(): { privateKeys: number; publicKeys: number };
  /** A copy of the counts so far. */
  counts(): NodeEd25519Counts;
}

/**
 * Map key for a byte string: one character per byte (latin1), built by Buffer's decoder in one
 * native call: the same string as `String.fromCharCode(...bytes)`, about 10x cheaper for a
 * 64-byte signature (0.17 against 2 µs here; issue 17: the provider builds two or three per sign
 * and verify).
 */
function cacheKey(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

/** Signatures known to verify in this process, by exact bytes (createVerifiedSignatureCache). */
export interface VerifiedSignatureCache {
  has(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  add(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): void;
}

/**
 * Signatures known to verify, by exact bytes: found by the signature, then the public key and the
 * whole message compared with those held. All three are public, so a plain compare. At most
 * `entriesMax` entries (least recently used dropped) of at most verifiedMessageBytesMax bytes each; 0 keeps none.
 */
/**
 * Messages longer than this are verified every time, never kept: an entry holds a copy of its
 * message, and a device may send frames of up to 64 KiB, so without it 8,192 entries could hold
 * 512 MiB. The frames worth the match (ACKs, results, reports) are far smaller.
 */
export const verifiedMessageBytesMax = 4_096;

export function createVerifiedSignatureCache(entriesMax: number): VerifiedSignatureCache {
  const verified = new BoundedLru<string, { readonly publicKey: Uint8Array; readonly message: Uint8Array }>(entriesMax);
  const keyed: KeyedVerifiedSignatures = {
    // A cache of no entries needs no key: has answers false and add keeps nothing.
    keyed: entriesMax !== 0,
    has(publicKey, message, _signature, key) {
      if (entriesMax === 0) return false;
      const held = verified.get(key);
      return held !== undefined && sameBytes(held.publicKey, publicKey) && sameBytes(held.message, message);
    },
    add(publicKey, message, _signature, key) {
      if (entriesMax !== 0 && message.length <= verifiedMessageBytesMax) verified.set(key, { publicKey: publicKey.slice(), message: message.slice() });
    },
  };
  const cache: VerifiedSignatureCache = {
    has: (publicKey, message, signature) => keyed.has(publicKey, message, signature, cacheKey(signature)),
    add: (publicKey, message, signature) => keyed.add(publicKey, message, signature, cacheKey(signature)),
  };
  keyedCaches.set(cache, keyed);
  return cache;
}

/**
 * A verified-signature cache that takes the signature's cacheKey from its caller, so a verify
 * that misses and then verifies builds the key once, not once to look and again to keep (issue 17).
 * `keyed` false: a cache made elsewhere, which ignores the key (the caller then builds none).
 */
interface KeyedVerifiedSignatures {
  readonly keyed: boolean;
  has(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array, key: string): boolean;
  add(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array, key: string): void;
}

/** The keyed form of each cache createVerifiedSignatureCache made. */
const keyedCaches = new WeakMap<VerifiedSignatureCache, KeyedVerifiedSignatures>();

function keyedFormOf(cache: VerifiedSignatureCache): KeyedVerifiedSignatures {
  return keyedCaches.get(cache) ?? {
    keyed: false,
    has: (publicKey, message, signature) => cache.has(publicKey, message, signature),
    add: (publicKey, message, signature) => cache.add(publicKey, message, signature),
  };
}

/** By JWK, not DER: about 20x cheaper on OpenSSL 3 (okp-key-import.ts). */
function privateKeyObjectFromSeed(seed: Uint8Array): KeyObject {
  return okpPrivateKey('Ed25519', seed);
}

function publicKeyObjectFromRaw(publicKey: Uint8Array): KeyObject {
  return okpPublicKey('Ed25519', publicKey);
}

function rawPublicKeyFromKeyObject(key: KeyObject): Uint8Array {
  const jwk = key.export({ format: 'jwk' });
  return bytesFromBase64url(String(jwk.x), { code: 'CRYPTO_BAD_KEY', name: 'publicKey', length: ed25519PublicKeyBytes });
}

/**
 * Ed25519 on node:crypto (OpenSSL): the fast provider for services.
 * A public key that is not a valid curve point makes `verify` return false, like any other
 * key the signature does not verify under: whether OpenSSL refuses it at import or at verify
 * time is its business, and the answer to the caller ("this signature is not valid for this
 * key") is the same. Wrong lengths and non-byte inputs are refused with typed errors.
 */
export function createNodeEd25519Provider(options: NodeEd25519Options = {}): NodeEd25519Provider {
  const entriesMax = options.keyCacheEntriesMax ?? defaultKeyCacheEntriesMax;
  const privateKeys = new BoundedLru<string, KeyObject>(entriesMax);
  const publicKeys = new BoundedLru<string, KeyObject>(options.publicKeyCacheEntriesMax ?? entriesMax);
  const verified = keyedFormOf(options.verifiedSignatures ?? createVerifiedSignatureCache(options.verifiedCacheEntriesMax ?? 0));
  const counts: NodeEd25519Counts = { signs: 0, verifies: 0, verifiedCacheHits: 0, privateKeyImports: 0, publicKeyImports: 0 };
  /** By seed: its raw public key, for rememberOwnSignatures (derived once per seed, not per sign). */
  const ownPublicKeys = options.rememberOwnSignatures === true ? new BoundedLru<string, Uint8Array>(Math.max(1, entriesMax)) : undefined;

  function ownPublicKeyFor(seed: Uint8Array, keyObject: KeyObject): Uint8Array {
    const key = cacheKey(seed);
    let publicKey = ownPublicKeys!.get(key);
    if (publicKey === undefined) {
      publicKey = rawPublicKeyFromKeyObject(createPublicKey(keyObject));
      ownPublicKeys!.set(key, publicKey);
    }
    return publicKey;
  }

  function privateKeyFor(seed: Uint8Array): KeyObject {
    ensureBytes('seed', seed, { code: 'CRYPTO_BAD_KEY', length: ed25519SeedBytes });
    const key = cacheKey(seed);
    let keyObject = privateKeys.get(key);
    if (keyObject === undefined) {
      counts.privateKeyImports += 1;
      keyObject = privateKeyObjectFromSeed(seed);
      privateKeys.set(key, keyObject);
    }
    return keyObject;
  }

  /** Undefined when OpenSSL refuses the bytes as a key: the caller treats that as "does not verify". */
  function publicKeyFor(publicKey: Uint8Array): KeyObject | undefined {
    const key = cacheKey(publicKey);
    let keyObject = publicKeys.get(key);
    if (keyObject === undefined) {
      counts.publicKeyImports += 1;
      try {
        keyObject = publicKeyObjectFromRaw(publicKey);
      } catch {
        return undefined;
      }
      publicKeys.set(key, keyObject);
    }
    return keyObject;
  }

  return {
    name: entriesMax === 0 ? 'node:crypto (uncached)' : 'node:crypto',
    cachedKeys: () => ({ privateKeys: privateKeys.size, publicKeys: publicKeys.size }),
    counts: () => ({ ...counts }),
    publicKeyFromSeed(seed) {
      return rawPublicKeyFromKeyObject(createPublicKey(privateKeyFor(seed)));
    },
    sign(seed, message) {
      const keyObject = privateKeyFor(seed);
      ensureBytes('message', message, { code: 'PROTO_INVALID_ARGUMENT' });
      counts.signs += 1;
      const signature = new Uint8Array(nodeSign(null, message, keyObject));
      if (ownPublicKeys !== undefined) verified.add(ownPublicKeyFor(seed, keyObject), message, signature, verified.keyed ? cacheKey(signature) : '');
      return signature;
    },
    verify(publicKey, message, signature) {
      ensureBytes('publicKey', publicKey, { code: 'CRYPTO_BAD_KEY', length: ed25519PublicKeyBytes });
      ensureBytes('signature', signature, { code: 'CRYPTO_BAD_SIGNATURE_ENCODING', length: ed25519SignatureBytes });
      ensureBytes('message', message, { code: 'PROTO_INVALID_ARGUMENT' });
      const signatureKey = verified.keyed ? cacheKey(signature) : '';
      if (verified.has(publicKey, message, signature, signatureKey)) {
        counts.verifiedCacheHits += 1;
        return true;
      }
      const keyObject = publicKeyFor(publicKey);
      if (keyObject === undefined) return false;
      counts.verifies += 1;
      let valid: boolean;
      try {
        valid = nodeVerify(null, message, keyObject, signature);
      } catch {
        // OpenSSL reports some malformed points as errors rather than a failed check.
        return false;
      }
      if (valid) verified.add(publicKey, message, signature, signatureKey);
      return valid;
    },
  };
}

const privatePemPattern = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

/** The 32-byte seed from an Ed25519 PKCS#8 PEM ("BEGIN PRIVATE KEY", as `openssl genpkey -algorithm ed25519` writes). */
export function privateSeedFromPem(pem: string): Uint8Array {
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new SdcError('CRYPTO_BAD_KEY', `not a readable private key PEM: ${(error as Error).message}`, {}, { cause: error });
  }
  if (keyObject.asymmetricKeyType !== 'ed25519') {
    throw new SdcError('CRYPTO_BAD_KEY', `private key is ${keyObject.asymmetricKeyType ?? 'unknown'}, expected ed25519`);
  }
  const jwk = keyObject.export({ format: 'jwk' });
  return bytesFromBase64url(String(jwk.d), { code: 'CRYPTO_BAD_KEY', name: 'seed', length: ed25519SeedBytes });
}

/**
 * The raw 32-byte public key from an Ed25519 SPKI PEM ("BEGIN PUBLIC KEY").
 * A private key PEM is refused rather than reduced to its public half: a private key in a
 * place meant for public keys is a mistake worth reporting.
 */
export function publicKeyFromPem(pem: string): Uint8Array {
  if (privatePemPattern.test(pem)) throw new SdcError('CRYPTO_BAD_KEY', 'expected a public key PEM, got a private key');
  let keyObject: KeyObject;
  try {
    keyObject = createPublicKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new SdcError('CRYPTO_BAD_KEY', `not a readable public key PEM: ${(error as Error).message}`, {}, { cause: error });
  }
  if (keyObject.asymmetricKeyType !== 'ed25519') {
    throw new SdcError('CRYPTO_BAD_KEY', `public key is ${keyObject.asymmetricKeyType ?? 'unknown'}, expected ed25519`);
  }
  return rawPublicKeyFromKeyObject(keyObject);
}

/** PKCS#8 PEM for a 32-byte seed; `openssl pkey` reads it. */
export function pemFromPrivateSeed(seed: Uint8Array): string {
  ensureBytes('seed', seed, { code: 'CRYPTO_BAD_KEY', length: ed25519SeedBytes });
  return String(privateKeyObjectFromSeed(seed).export({ format: 'pem', type: 'pkcs8' }));
}

/** SPKI PEM for a raw 32-byte public key; `openssl pkey -pubin` reads it. */
export function pemFromPublicKey(publicKey: Uint8Array): string {
  ensureBytes('publicKey', publicKey, { code: 'CRYPTO_BAD_KEY', length: ed25519PublicKeyBytes });
  return String(publicKeyObjectFromRaw(publicKey).export({ format: 'pem', type: 'spki' }));
}
