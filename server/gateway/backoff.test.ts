import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { RandomSource } from '../../core/ports/ports.js';
import { backoffDelayMs } from './backoff.js';

const fixed = (pick: (bound: number) => number): RandomSource => ({ bytes: (n) => new Uint8Array(n), intBelow: pick });

test('delays double from baseMs, stay within [exp/2, exp] and never exceed maxMs', () => {
  const low = fixed(() => 0);
  const high = fixed((bound) => bound - 1);
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffDelayMs({ baseMs: 100, maxMs: 1000, failedAttempts: n, random: high })), [100, 200, 400, 800, 1000]);
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffDelayMs({ baseMs: 100, maxMs: 1000, failedAttempts: n, random: low })), [50, 100, 200, 400, 500]);
  fc.assert(fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 1, max: 100 }), fc.nat(), (baseMs, extra, attempts, r) => {
    const maxMs = baseMs + extra;
    const delay = backoffDelayMs({ baseMs, maxMs, failedAttempts: attempts, random: fixed((bound) => r % bound) });
    const exponential = Math.min(maxMs, baseMs * 2 ** Math.min(attempts - 1, 30));
    return Number.isSafeInteger(delay) && delay <= exponential && delay >= Math.ceil(exponential / 2);
  }), { numRuns: 500 });
});

test('refuses nonsense parameters', () => {
  assert.throws(() => backoffDelayMs({ baseMs: 0, maxMs: 10, failedAttempts: 1, random: fixed(() => 0) }), { code: 'GATEWAY_INVALID_ARGUMENT' });
  assert.throws(() => backoffDelayMs({ baseMs: 10, maxMs: 5, failedAttempts: 1, random: fixed(() => 0) }), { code: 'GATEWAY_INVALID_ARGUMENT' });
  assert.throws(() => backoffDelayMs({ baseMs: 10, maxMs: 50, failedAttempts: 0, random: fixed(() => 0) }), { code: 'GATEWAY_INVALID_ARGUMENT' });
});
