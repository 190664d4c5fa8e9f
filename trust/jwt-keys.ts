import { createPrivateKey, randomBytes } from 'node:crypto';
// jose's subpaths, not its index: each module an import loads costs the test loader a round trip (scripts/test-ts-hooks.mjs).
import type { CryptoKey, JWK } from 'jose';
import { calculateJwkThumbprint } from 'jose/jwk/thumbprint';
import { importJWK } from 'jose/key/import';
import type { RandomSource } from '../core/ports/ports.js';
import { SdcError } from '../core/errors/index.js';

/**
 * The one JWS algorithm we sign with and accept. jose 6 knows two names for Ed25519:
 * the polymorphic `EdDSA` (RFC 8037; means Ed25519 *or* Ed448, deprecated by RFC 9864) and
 * the fully-specified `Ed25519` (RFC 9864). We use `Ed25519` so the alg names exactly one
 * curve and the allow-list cannot be widened to Ed448 by a key that claims it.
 */
export const JWT_ALG = 'Ed25519';

/** Explicit token type (RFC 8725 §3.11), so no other JWT kind is accepted as an access token. */
export const JWT_TYP = 'sdc-access+jwt';

/** A private Ed25519 key as a JWK (RFC 8037): x is the public key, d the 32-byte seed. */
export interface Ed25519PrivateJwk {
  readonly kty: 'OKP';
  readonly crv: 'Ed25519';
  readonly x: string;
  readonly d: string;
}

/** A published verification key: public members only, plus kid, alg and use. */
export interface Ed25519PublicJwk {
  readonly kty: 'OKP';
  readonly crv: 'Ed25519';
  readonly x: string;
  readonly kid: string;
  readonly alg: typeof JWT_ALG;
  readonly use: 'sig';
}

const seedBytes = 32;
/** 32 bytes in unpadded base64url. */
const key32Pattern = /^[A-Za-z0-9_-]{43}$/;
/** PKCS#8 prefix for a raw Ed25519 seed (RFC 8410), so node:crypto can derive x from d. */
const pkcs8Ed25519Prefix = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Node's entropy, for callers that do not inject a seeded source (the simulator does). */
export const systemRandomBytes: Pick<RandomSource, 'bytes'> = {
  bytes: (length) => new Uint8Array(randomBytes(length)),
};

export function isKey32(value: unknown): value is string {
  return typeof value === 'string' && key32Pattern.test(value) && canonicalBase64url(value);
}

/** True if `segment` decodes and re-encodes to itself (no ignored trailing bits). */
export function canonicalBase64url(segment: string): boolean {
  return Buffer.from(segment, 'base64url').toString('base64url') === segment;
}

/** Derives the private JWK from a 32-byte seed; the seed comes from the injected random source. */
export function privateJwkFromSeed(seed: Uint8Array): Ed25519PrivateJwk {
  if (seed.length !== seedBytes) {
    throw new SdcError('JWT_ARGUMENT_INVALID', `Ed25519 seed must be ${seedBytes} bytes`, { length: seed.length });
  }
  const pkcs8 = Buffer.concat([pkcs8Ed25519Prefix, seed]);
  const exported = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'jwk' });
  pkcs8.fill(0);
  if (!isKey32(exported.x) || !isKey32(exported.d)) {
    throw new SdcError('JWT_ARGUMENT_INVALID', 'node:crypto returned an unexpected Ed25519 JWK');
  }
  return { kty: 'OKP', crv: 'Ed25519', x: exported.x, d: exported.d };
}

export function generatePrivateJwk(random: Pick<RandomSource, 'bytes'>): Ed25519PrivateJwk {
  const seed = random.bytes(seedBytes);
  try {
    return privateJwkFromSeed(seed);
  } finally {
    seed.fill(0);
  }
}

/** True if `jwk.x` is the public key of `jwk.d` (catches a corrupted or hand-edited key file). */
export function privateJwkIsConsistent(jwk: Ed25519PrivateJwk): boolean {
  return privateJwkFromSeed(Buffer.from(jwk.d, 'base64url')).x === jwk.x;
}

/** RFC 7638 thumbprint (SHA-256) of the public members: the kid. */
export async function jwkThumbprint(jwk: { readonly x: string }): Promise<string> {
  return calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: jwk.x }, 'sha256');
}

export function publicJwk(jwk: { readonly x: string }, kid: string): Ed25519PublicJwk {
  return { kty: 'OKP', crv: 'Ed25519', x: jwk.x, kid, alg: JWT_ALG, use: 'sig' };
}

export async function importSigningKey(jwk: Ed25519PrivateJwk): Promise<CryptoKey> {
  return importJWK({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, d: jwk.d } satisfies JWK, JWT_ALG) as Promise<CryptoKey>;
}

/** Imports only the public members, whatever else the JWK carries. */
export async function importVerificationKey(jwk: { readonly x: string }): Promise<CryptoKey> {
  return importJWK({ kty: 'OKP', crv: 'Ed25519', x: jwk.x } satisfies JWK, JWT_ALG) as Promise<CryptoKey>;
}
