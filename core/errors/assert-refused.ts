import { SdcError } from './sdc-error.js';
import type { ErrorCode } from './registry.js';

/**
 * Test support: runs `run` and checks that it throws an SdcError with `code`; returns the error.
 * Throws a plain Error otherwise (not node:assert, so that core/ stays free of Node modules).
 */
export function assertRefused(run: () => unknown, code: ErrorCode): SdcError {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  if (thrown === undefined) throw new Error(`expected ${code}, nothing was thrown`);
  if (!(thrown instanceof SdcError)) throw new Error(`expected SdcError ${code}, got ${String(thrown)}`);
  if (thrown.code !== code) throw new Error(`expected ${code}, got ${thrown.code}: ${thrown.message}`);
  return thrown;
}
