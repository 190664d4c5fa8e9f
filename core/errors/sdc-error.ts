import type { Fault } from './error-spec.js';
import { errorRegistry, type ErrorCode } from './registry.js';

/** Extra, machine-readable facts about a refusal. Never secrets, never whole frames. */
export type ErrorDetails = Readonly<Record<string, string | number | boolean | null>>;

/**
 * The one error type for every refusal. Callers switch on `code`; `fault` says who is to blame,
 * `status` is the HTTP hint. Use `SdcError.is(e, 'CODE')` to test.
 */
export class SdcError extends Error {
  readonly code: ErrorCode;
  readonly fault: Fault;
  readonly status: number;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message?: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    const spec = errorRegistry[code];
    super(message ?? spec.summary, options);
    this.name = 'SdcError';
    this.code = code;
    this.fault = spec.fault;
    this.status = spec.status;
    this.details = details;
  }

  static is<C extends ErrorCode>(value: unknown, code?: C): value is SdcError & { code: C } {
    return value instanceof SdcError && (code === undefined || value.code === code);
  }

  /** The wire form sent to a peer: code and message, never a stack. */
  toJSON(): { code: ErrorCode; message: string; details: ErrorDetails } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** Asserts a precondition of our own code; a failure is a local bug, not the peer's fault. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new SdcError('PROTO_INVALID_ARGUMENT', message);
}
