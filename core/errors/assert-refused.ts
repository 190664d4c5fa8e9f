import assert from 'node:assert/strict';
import { SdcError } from './sdc-error.js';
import type { ErrorCode } from './registry.js';

/** Test support: runs `run` and asserts it throws an SdcError with `code`; returns the error. */
export function assertRefused(run: () => unknown, code: ErrorCode): SdcError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof SdcError, `expected SdcError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}, nothing was thrown`);
}
