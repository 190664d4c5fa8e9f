import type { RandomSource } from '../../core/protocol/ports.js';

/** A deterministic integer PRNG (xorshift32) for tests; never for keys. */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0 || 1;
  const next = (): number => {
    state ^= state << 13; state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5; state >>>= 0;
    return state;
  };
  return {
    bytes: (length) => Uint8Array.from({ length }, () => next() & 0xff),
    intBelow: (bound) => next() % bound,
  };
}
