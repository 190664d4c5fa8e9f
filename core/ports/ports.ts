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

/**
 * The primitives of a session key (docs/decisions/0004-telemetry-session-mac.md): an ephemeral
 * X25519 agreement at AUTH, HKDF-SHA256 to derive the key, HMAC-SHA256 to authenticate frames
 * under it. A port like Ed25519Provider: node:crypto (runtime/session-crypto-node.ts) or pure
 * JS (core/crypto/session-crypto-noble.ts); both pass the same RFC vectors.
 */
export interface SessionKeyCrypto {
  readonly name: string;
  /** The 32-byte X25519 public key of a 32-byte secret key (RFC 7748). */
  x25519PublicKey(secretKey: Uint8Array): Uint8Array;
  /** The 32-byte shared secret; CRYPTO_BAD_KEY for a wrong length or a low-order peer key (an all-zero secret). */
  x25519SharedSecret(secretKey: Uint8Array, peerPublicKey: Uint8Array): Uint8Array;
  /** HKDF-SHA256 (RFC 5869): `length` bytes, at most 255 x 32. */
  hkdfSha256(input: { ikm: Uint8Array; salt: Uint8Array; info: Uint8Array; length: number }): Uint8Array;
  /** HMAC-SHA256 (RFC 2104): the 32-byte tag. */
  hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array;
}

/** Timers as a port, so the simulator can run every timeout on virtual time. */
export interface Scheduler {
  /** Calls `callback` once after `delayMs`; returns a handle for `cancel`. */
  schedule(delayMs: number, callback: () => void): TimerHandle;
  cancel(handle: TimerHandle): void;
  /**
   * Optional: moves a still pending timer (neither fired nor cancelled) to fire `delayMs` from now,
   * with the same callback and handle, when the scheduler can do that without a new timer; false
   * when it cannot (the caller cancels and schedules). Why: a gateway re-arms each session's timer
   * on every frame received, and a new timer each time is three objects that outlive a scavenge
   * (docs/benchmarks.md, 2026-12-04 night, the gateway's CPU per frame).
   */
  reschedule?(handle: TimerHandle, delayMs: number): boolean;
}

export interface TimerHandle {
  readonly id: number;
}
