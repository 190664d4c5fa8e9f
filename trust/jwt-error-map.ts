// jose's subpath, not its index (the index loads all of jose): the same error classes.
import * as errors from 'jose/errors';
import { SdcError, type ErrorCode } from '../core/errors/index.js';

/**
 * The one place jose's error classes become our codes. Messages are ours: jose's text and
 * the decoded payload it carries never reach the caller.
 */
export function sdcErrorFromJose(error: unknown): SdcError {
  if (SdcError.is(error)) return error;
  if (error instanceof errors.JWTExpired) {
    return new SdcError('JWT_EXPIRED', error.claim === 'iat' ? 'token is older than the maximum token lifetime' : 'token has expired', {
      claim: error.claim,
    });
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    const code = claimFailureCode(error.claim, error.reason);
    return new SdcError(code, `token ${error.claim} check failed (${error.reason})`, { claim: error.claim, reason: error.reason });
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return new SdcError('JWT_SIGNATURE_INVALID');
  if (error instanceof errors.JOSEAlgNotAllowed) return new SdcError('JWT_ALG_NOT_ALLOWED');
  // JWSInvalid / JWTInvalid: bad segments, encoding or JSON; JOSENotSupported: an unknown crit header.
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid || error instanceof errors.JOSENotSupported) {
    return new SdcError('JWT_MALFORMED', 'token is not a well-formed JWS JWT', { kind: error.code });
  }
  // Anything else is unexpected; refuse with the generic code and keep no jose detail.
  return new SdcError('JWT_INVALID');
}

function claimFailureCode(claim: string, reason: string): ErrorCode {
  // 'missing' and 'invalid' mean the claim is absent or of the wrong type, whichever claim it is.
  if (reason !== 'check_failed') return 'JWT_CLAIMS_INVALID';
  switch (claim) {
    case 'iss':
      return 'JWT_BAD_ISSUER';
    case 'aud':
      return 'JWT_BAD_AUDIENCE';
    case 'nbf':
    case 'iat': // jose reports an iat in the future (beyond the tolerance) as a failed iat check
      return 'JWT_NOT_YET_VALID';
    default:
      return 'JWT_CLAIMS_INVALID';
  }
}
