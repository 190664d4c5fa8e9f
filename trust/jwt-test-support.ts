import { createHash } from 'node:crypto';
import type { Clock, RandomSource } from '../core/ports/ports.js';
import { SdcError, type ErrorCode } from '../core/errors/index.js';

/** A clock the test moves by hand. */
export class FakeClock implements Clock {
  #nowMs: number;

  constructor(startMs: number) {
    this.#nowMs = startMs;
  }

  nowMs(): number {
    return this.#nowMs;
  }

  advance(deltaMs: number): void {
    this.#nowMs += deltaMs;
  }
}

/** Deterministic bytes (SHA-256 counter stream), so key generation replays in tests. */
export function seededRandom(seed: string): Pick<RandomSource, 'bytes'> {
  let counter = 0;
  return {
    bytes(length: number): Uint8Array {
      const out = new Uint8Array(length);
      for (let offset = 0; offset < length; offset += 32) {
        const block = createHash('sha256').update(`${seed}:${counter++}`).digest();
        out.set(block.subarray(0, Math.min(32, length - offset)), offset);
      }
      return out;
    },
  };
}

/** Resolves to the SdcError code a promise rejects with; fails on resolution or a foreign error. */
export async function rejectionCode(promise: Promise<unknown>): Promise<ErrorCode> {
  try {
    await promise;
  } catch (error) {
    if (SdcError.is(error)) return error.code;
    throw new Error(`expected an SdcError, got ${String(error)}`);
  }
  throw new Error('expected a rejection');
}
