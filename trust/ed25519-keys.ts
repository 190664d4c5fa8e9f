import type { RandomSource } from '../core/ports/ports.js';
import { ed25519Algorithm } from './x509-provider.js';

const seedBytes = 32;
// RFC 8410 PKCS#8 wrapping of a 32-byte Ed25519 seed: SEQUENCE { INTEGER 0, AlgorithmIdentifier id-Ed25519, OCTET STRING { OCTET STRING seed } }.
const pkcs8SeedPrefix = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);

export interface Ed25519KeyPair {
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

/**
 * A new Ed25519 key pair whose seed comes from `random`, so a simulation with a seeded
 * RandomSource replays the same CA keys. The private key is extractable because it is
 * written to a key file; it never leaves the process any other way.
 */
export async function generateEd25519KeyPair(random: RandomSource): Promise<Ed25519KeyPair> {
  const seed = random.bytes(seedBytes);
  const pkcs8 = new Uint8Array(pkcs8SeedPrefix.length + seedBytes);
  pkcs8.set(pkcs8SeedPrefix, 0);
  pkcs8.set(seed, pkcs8SeedPrefix.length);
  const privateKey = await importEd25519PrivateKey(pkcs8);
  pkcs8.fill(0);
  seed.fill(0);
  return { privateKey, publicKey: await publicKeyOf(privateKey) };
}

/** Imports a PKCS#8 DER Ed25519 private key for signing. */
export async function importEd25519PrivateKey(pkcs8Der: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  return crypto.subtle.importKey('pkcs8', pkcs8Der, ed25519Algorithm, true, ['sign']);
}

/** Derives the public key of an extractable Ed25519 private key (its JWK carries `x`). */
export async function publicKeyOf(privateKey: CryptoKey): Promise<CryptoKey> {
  const { kty, crv, x } = await crypto.subtle.exportKey('jwk', privateKey);
  return crypto.subtle.importKey('jwk', { kty, crv, x }, ed25519Algorithm, true, ['verify']);
}

/** The PKCS#8 DER encoding of an extractable private key. */
export async function exportPkcs8Der(privateKey: CryptoKey): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await crypto.subtle.exportKey('pkcs8', privateKey));
}
