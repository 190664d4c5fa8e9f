import { SdcError } from '../core/errors/index.js';

/** Defaults and bounds shared by the authority and the verifier, so both sides agree. */
export const jwtLimits = {
  /** Longest lifetime the authority issues and the verifier accepts (exp - iat). */
  tokenTtlMsMax: 60 * 60 * 1000,
  clockSkewMs: 30 * 1000,
  /** A larger skew would let a stolen, expired token live on for too long. */
  clockSkewMsMax: 5 * 60 * 1000,
  /** Our tokens are a few hundred bytes; the bound keeps a hostile header from costing much. */
  tokenBytesMax: 8 * 1024,
} as const;

/** An integer option in [min, max], else JWT_ARGUMENT_INVALID naming the option. */
export function integerOption(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const resolved = value ?? fallback;
  if (!Number.isSafeInteger(resolved) || resolved < min || resolved > max) {
    throw new SdcError('JWT_ARGUMENT_INVALID', `${name} must be an integer in [${min}, ${max}]`, { option: name, min, max });
  }
  return resolved;
}

/** A non-empty string of at most `lengthMax` characters, else JWT_ARGUMENT_INVALID. */
export function stringOption(name: string, value: unknown, lengthMax: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > lengthMax) {
    throw new SdcError('JWT_ARGUMENT_INVALID', `${name} must be a non-empty string of at most ${lengthMax} characters`, {
      option: name,
    });
  }
  return value;
}
