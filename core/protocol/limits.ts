import { assert } from '../errors/index.js';

/**
 * Hard limits on every frame the protocol core accepts. Each limit bounds memory and CPU per
 * frame, so a hostile peer cannot exhaust a gateway or an agent with one message, and each is
 * far above what a legitimate message needs (the largest envelopes are a few KiB).
 */
export interface ProtocolLimits {
  /** Maximum size of one frame in UTF-8 bytes, checked before anything is decoded. */
  frameBytesMax: number;
  /** Maximum nesting of arrays and objects; a scalar at the top level has depth 0, `[]` depth 1. */
  depthMax: number;
  /** Maximum length of one string (values and member names) in UTF-16 code units. */
  stringLengthMax: number;
  /** Maximum number of elements in one array. */
  arrayLengthMax: number;
  /** Maximum number of members in one object. */
  objectMembersMax: number;
}

export const defaultProtocolLimits: Readonly<ProtocolLimits> = Object.freeze({
  // 64 KiB: a signed command envelope with a certificate chain stays well under 16 KiB; bulk data
  // (OTA images, logs) travels out of band by digest, never inside a frame. 64 KiB also matches
  // the point where one WebSocket message stops fitting a single small socket buffer.
  frameBytesMax: 65_536,
  // 32: our deepest schema nests under 8 levels; 32 leaves room for opaque command parameters
  // while keeping recursive consumers (schema validators, canonicalization) far from stack limits.
  depthMax: 32,
  // 16 KiB: the longest legitimate strings are base64 certificates and signatures (a few KiB);
  // a quarter of the frame budget stops one string from dominating a frame.
  stringLengthMax: 16_384,
  // 4096: more than any batch we send (status samples, fleet listings are paged), and small
  // enough that per-element work by validators is bounded per frame.
  arrayLengthMax: 4_096,
  // 256: protocol objects have tens of members; a wide object is the cheapest way to make a
  // peer build large hash tables (and to probe for hash-flooding), so the limit is low.
  objectMembersMax: 256,
});

/**
 * Limits this module resolved: frozen, so handing one back instead of resolving it again cannot
 * let one caller's change reach another. Weak, so it holds no caller's object alive.
 */
const resolvedLimits = new WeakSet<object>([defaultProtocolLimits]);

/**
 * Merges caller overrides onto the defaults; every limit must be a non-negative safe integer.
 * A result of this function (or the defaults) is returned as it is, and no overrides at all give
 * the defaults: a session resolves its limits once and every frame's parse reuses them. A
 * caller's own overrides object is never cached (it may change between calls).
 */
export function resolveProtocolLimits(overrides?: Partial<ProtocolLimits>): Readonly<ProtocolLimits> {
  if (overrides === undefined) return defaultProtocolLimits;
  if (resolvedLimits.has(overrides)) return overrides as Readonly<ProtocolLimits>;
  const limits = { ...defaultProtocolLimits };
  for (const name of Object.keys(defaultProtocolLimits) as (keyof ProtocolLimits)[]) {
    const value = overrides[name];
    if (value === undefined) continue;
    assert(Number.isSafeInteger(value) && value >= 0, `protocol limit ${name} must be a non-negative safe integer`);
    limits[name] = value;
  }
  const resolved = Object.freeze(limits);
  resolvedLimits.add(resolved);
  return resolved;
}

/**
 * Telemetry batches (TELEMETRY_BATCH, docs/decisions/0004-telemetry-session-mac.md "Batches").
 * `samplesPerFrameMax`: the most samples one frame may carry, whatever a gateway announces. 64:
 * a sample is about 150 bytes of canonical JSON (about 240 at its widest), so a full batch is at
 * most about 15 KiB, far under the 64 KiB frame limit; it is also a few minutes of samples at the agent's usual interval, and a
 * bound on the rows (and risk scores) one frame makes the control plane write.
 */
export const telemetryBatchLimits = Object.freeze({
  samplesPerFrameMax: 64,
});
