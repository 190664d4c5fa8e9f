import { SdcError } from '../../core/errors/index.js';
import type { RandomSource } from '../../core/ports/ports.js';

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

/**
 * The wait before redelivery number `failedAttempts + 1`: exponential (base, 2 base, 4 base, ...
 * capped at maxMs), then "equal jitter": half fixed, half uniform from the RandomSource, so
 * devices that timed out together do not retry together, and a seeded simulation replays it.
 */
export function backoffDelayMs(options: BackoffOptions & { failedAttempts: number; random: RandomSource }): number {
  const { baseMs, maxMs, failedAttempts, random } = options;
  if (!Number.isSafeInteger(baseMs) || baseMs < 1 || !Number.isSafeInteger(maxMs) || maxMs < baseMs || !Number.isSafeInteger(failedAttempts) || failedAttempts < 1) {
    throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'backoff needs 1 <= baseMs <= maxMs and failedAttempts >= 1');
  }
  // 2^30 already exceeds any sane maxMs / baseMs ratio; capping the exponent keeps the product exact.
  const exponential = Math.min(maxMs, baseMs * 2 ** Math.min(failedAttempts - 1, 30));
  const half = Math.floor(exponential / 2);
  return exponential - half + random.intBelow(half + 1);
}
