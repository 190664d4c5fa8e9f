/**
 * What the sans-IO core needs from the outside world, passed in by the caller
 * (quinn's rule: the protocol never reads the OS clock or entropy itself).
 * Real services pass system implementations; the simulator passes virtual ones.
 */

/** Wall-clock milliseconds since the Unix epoch, as the caller defines "now". */
export interface Clock {
  nowMs(): number;
}

/** Randomness source. Real: node:crypto.randomBytes. Simulated: a seeded integer PRNG. */
export interface RandomSource {
  /** `length` uniformly random bytes. */
  bytes(length: number): Uint8Array;
  /** A uniformly random integer in [0, bound), bound a positive safe integer. */
  intBelow(bound: number): number;
}

/**
 * Ed25519 as a provider, so the same core runs on node:crypto (fast, cached KeyObjects)
 * or @noble/ed25519 (portable, for browsers). Keys are raw bytes: a 32-byte private seed
 * and a 32-byte public key; signatures are 64 bytes.
 */
export interface Ed25519Provider {
  readonly name: string;
  publicKeyFromSeed(seed: Uint8Array): Uint8Array;
  sign(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /** False for a signature that does not verify; throws CRYPTO_BAD_KEY / CRYPTO_BAD_SIGNATURE_ENCODING for malformed inputs. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

/**
 * SHA-256 as a port, so the same code hashes with node:crypto (runtime/sha256-node.ts) or with
 * @noble/hashes in pure JS (core/crypto/sha256-noble.ts). Returns the 32-byte digest.
 */
export type Sha256 = (bytes: Uint8Array) => Uint8Array;

/** Timers as a port, so the simulator can run every timeout on virtual time. */
export interface Scheduler {
  /** Calls `callback` once after `delayMs`; returns a handle for `cancel`. */
  schedule(delayMs: number, callback: () => void): TimerHandle;
  cancel(handle: TimerHandle): void;
}

export interface TimerHandle {
  readonly id: number;
}
