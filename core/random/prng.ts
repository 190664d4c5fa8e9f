import type { RandomSource } from '../ports/ports.js';

/**
 * A seeded PRNG for simulation (TigerBeetle's stdx/prng.zig): xoshiro128** on 32-bit integer
 * arithmetic, seeded through splitmix32. Probabilities are integer ratios, never floats, so a
 * run replays bit for bit from its seed on any machine.
 */
export class SeededRandom implements RandomSource {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;

  /**
   * The state comes from 32 bits of the seed (its two halves folded together): two seeds with the
   * same fold give the same stream. So do two forks whose draws fold alike, which among n forks
   * happens with probability about n^2 / 2^33 (about one pair at 93,000): use forks() where
   * each of many components must have a stream of its own.
   */
  constructor(readonly seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError('seed must be a non-negative safe integer');
    let x = foldedSeed(seed);
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#s0 = next();
    this.#s1 = next();
    this.#s2 = next();
    this.#s3 = next();
  }

  /** The next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.#s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.#s1 << 9) >>> 0;
    this.#s2 = (this.#s2 ^ this.#s0) >>> 0;
    this.#s3 = (this.#s3 ^ this.#s1) >>> 0;
    this.#s1 = (this.#s1 ^ this.#s2) >>> 0;
    this.#s0 = (this.#s0 ^ this.#s3) >>> 0;
    this.#s2 = (this.#s2 ^ t) >>> 0;
    this.#s3 = rotl(this.#s3, 11);
    return result;
  }

  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i += 4) {
      const word = this.nextUint32();
      for (let j = 0; j < 4 && i + j < length; j++) out[i + j] = (word >>> (8 * j)) & 0xff;
    }
    return out;
  }

  /** Uniform in [0, bound) without modulo bias (rejection sampling on 32 bits). */
  intBelow(bound: number): number {
    if (!Number.isSafeInteger(bound) || bound <= 0 || bound > 2 ** 32) throw new RangeError('bound must be an integer in [1, 2^32]');
    const limit = 2 ** 32 - (2 ** 32 % bound);
    for (;;) {
      const value = this.nextUint32();
      if (value < limit) return value % bound;
    }
  }

  /** True with probability numerator/denominator, exactly. */
  chance(numerator: number, denominator: number): boolean {
    if (!(Number.isSafeInteger(numerator) && Number.isSafeInteger(denominator) && denominator > 0 && numerator >= 0 && numerator <= denominator)) {
      throw new RangeError('chance needs integers 0 <= numerator <= denominator, denominator > 0');
    }
    return this.intBelow(denominator) < numerator;
  }

  /** Uniform integer in [min, max]. */
  intBetween(min: number, max: number): number {
    return min + this.intBelow(max - min + 1);
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.intBelow(items.length)]!;
  }

  /** An independent stream for a sub-component, so adding draws in one place does not shift another's. */
  fork(): SeededRandom {
    return new SeededRandom(this.#forkSeed());
  }

  /**
   * `count` forks with pairwise different streams: the same draws as `count` calls of fork(),
   * except that a fork whose state an earlier one of them already has is drawn again. Without it
   * the simulator's 100,000 agents held three pairs of twins at seed 1 (the same device key and
   * certificate serial, so one of each pair was refused at every AUTH, GATEWAY_CERT_UNKNOWN).
   * Fleets without such a pair draw exactly what fork() would, so their traces do not change.
   */
  forks(count: number): SeededRandom[] {
    if (!Number.isSafeInteger(count) || count < 0) throw new RangeError('count must be a non-negative safe integer');
    const states = new Set<number>();
    const out: SeededRandom[] = [];
    while (out.length < count) {
      const seed = this.#forkSeed();
      const state = foldedSeed(seed);
      if (states.has(state)) continue;
      states.add(state);
      out.push(new SeededRandom(seed));
    }
    return out;
  }

  #forkSeed(): number {
    return this.nextUint32() * 2 ** 21 + (this.nextUint32() >>> 11);
  }
}

/** The 32 bits of a seed that its stream's state is made from. */
function foldedSeed(seed: number): number {
  return (seed ^ Math.floor(seed / 2 ** 32)) >>> 0;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
