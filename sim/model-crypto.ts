import { createHash, hash } from 'node:crypto';
import { ensureBytes } from '../core/crypto/bytes.js';
import { ed25519PublicKeyBytes, ed25519SeedBytes, ed25519SignatureBytes } from '../core/crypto/ed25519-sizes.js';
import { sessionCryptoChecks as checks } from '../core/crypto/session-crypto-checks.js';
import type { Ed25519Provider, SessionKeyCrypto } from '../core/ports/ports.js';
import { createNodeSessionKeyCrypto } from '../runtime/session-crypto-node.js';

/**
 * Modelled signatures for the simulator (`--crypto model`): the Ed25519 port with the sizes and
 * the refusals of the real provider, and without the curve arithmetic, which is most of a
 * full-tier run's CPU (docs/benchmarks.md).
 *
 * publicKey = SHA-256(tag || seed); signature = SHA-512(publicKey || message) (64 bytes).
 * A signature still binds its message to one key, so a changed frame, a frame signed by another
 * device or a command signed with another key is refused exactly as with Ed25519, and every
 * protocol check runs. What it does not model is secrecy: anyone holding the public key could
 * sign. No simulated party forges, so a run takes the same path with either provider; keys,
 * signatures and therefore every frame have the same lengths, and the trace hash of a seed is
 * the same (sim/model-crypto.test.ts). Never use it outside the simulator.
 */
const publicKeyTag = Buffer.from('sdc-sim-model-ed25519-public-key\0');

function publicKeyOf(seed: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(publicKeyTag).update(seed).digest());
}

/**
 * SHA-512(publicKey || message) by node:crypto's one-shot `hash` over one buffer: no Hash object
 * per call (about 1 µs less a signature or a check than createHash's update, update, digest;
 * issue 17's start-up makes twelve per agent). The same bytes as before.
 */
function signatureOf(publicKey: Uint8Array, message: Uint8Array): Uint8Array {
  const input = Buffer.allocUnsafe(publicKey.length + message.length);
  input.set(publicKey, 0);
  input.set(message, publicKey.length);
  return new Uint8Array(hash('sha512', input, 'buffer'));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i += 1) difference |= a[i]! ^ b[i]!;
  return difference === 0;
}

export function createModelEd25519Provider(): Ed25519Provider {
  // Keyed by the seed's array: a signer holds one seed for its life, so a sign costs one hash.
  const publicKeys = new WeakMap<Uint8Array, Uint8Array>();
  const publicKeyFor = (seed: Uint8Array): Uint8Array => {
    ensureBytes('seed', seed, { code: 'CRYPTO_BAD_KEY', length: ed25519SeedBytes });
    let publicKey = publicKeys.get(seed);
    if (publicKey === undefined) {
      publicKey = publicKeyOf(seed);
      publicKeys.set(seed, publicKey);
    }
    return publicKey;
  };
  return {
    name: 'model (simulator only)',
    publicKeyFromSeed(seed) {
      return publicKeyFor(seed).slice();
    },
    sign(seed, message) {
      const publicKey = publicKeyFor(seed);
      ensureBytes('message', message, { code: 'PROTO_INVALID_ARGUMENT' });
      return signatureOf(publicKey, message);
    },
    verify(publicKey, message, signature) {
      ensureBytes('publicKey', publicKey, { code: 'CRYPTO_BAD_KEY', length: ed25519PublicKeyBytes });
      ensureBytes('signature', signature, { code: 'CRYPTO_BAD_SIGNATURE_ENCODING', length: ed25519SignatureBytes });
      ensureBytes('message', message, { code: 'PROTO_INVALID_ARGUMENT' });
      return sameBytes(signatureOf(publicKey, message), signature);
    },
  };
}

const x25519PublicTag = Buffer.from('sdc-sim-model-x25519-public-key\0');
const x25519SharedTag = Buffer.from('sdc-sim-model-x25519-shared-secret\0');

function x25519PublicOf(secretKey: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(x25519PublicTag).update(secretKey).digest());
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length && i < b.length; i += 1) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/**
 * Modelled session-key agreement for `--crypto model`, beside the modelled signatures: the
 * session's X25519 (an import of each ephemeral key and an agreement per side, about 9 % of a
 * modelled run's start-up, issue 17) without the curve arithmetic; HKDF (as its HMACs,
 * core/crypto/hkdf-by-hmac.ts) and the MAC are the real functions. publicKey = SHA-256(tag ||
 * secret); shared = SHA-256(tag || lower public key || higher public key), which both sides compute (each knows its own public key), so a session
 * agrees on its keys and every MAC checks as with X25519. Same sizes and refusals (the shared
 * checks), so frames, and the trace hash of a seed, are the same with either. No secrecy: the
 * shared secret follows from the public keys. Never use it outside the simulator.
 */
export function createModelSessionKeyCrypto(): SessionKeyCrypto {
  const node = createNodeSessionKeyCrypto();
  return {
    name: 'model (simulator only)',
    x25519PublicKey(secretKey) {
      return x25519PublicOf(checks.secretKey(secretKey));
    },
    x25519SharedSecret(secretKey, peerPublicKey) {
      const own = x25519PublicOf(checks.secretKey(secretKey));
      checks.publicKey(peerPublicKey);
      const [low, high] = compareBytes(own, peerPublicKey) <= 0 ? [own, peerPublicKey] : [peerPublicKey, own];
      return checks.sharedSecret(new Uint8Array(createHash('sha256').update(x25519SharedTag).update(low).update(high).digest()));
    },
    // node:crypto's provider computes HKDF as its HMACs (core/crypto/hkdf-by-hmac.ts), not by hkdfSync.
    hkdfSha256: (input) => node.hkdfSha256(input),
    hmacSha256: (key, message) => node.hmacSha256(key, message),
  };
}
