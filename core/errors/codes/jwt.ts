import { defineErrors } from '../error-spec.js';

/** JWT authority and verification (trust/jwt). */
export const jwtErrors = defineErrors({
  JWT_INVALID: { fault: 'remote', status: 401, summary: 'Token is malformed or its signature does not verify' },
  JWT_MALFORMED: { fault: 'remote', status: 401, summary: 'Token is not a well-formed compact JWS JWT (segments, encoding, header or size)' },
  JWT_SIGNATURE_INVALID: { fault: 'remote', status: 401, summary: 'Token signature does not verify with the key named by its kid' },
  JWT_EXPIRED: { fault: 'remote', status: 401, summary: 'Token has expired (exp passed, or iat older than the maximum token lifetime)' },
  JWT_NOT_YET_VALID: { fault: 'remote', status: 401, summary: 'Token is not valid yet (nbf or iat in the future beyond the allowed clock skew)' },
  JWT_BAD_ISSUER: { fault: 'remote', status: 401, summary: 'Token iss claim is not the expected issuer' },
  JWT_BAD_AUDIENCE: { fault: 'remote', status: 401, summary: 'Token aud claim does not name the expected audience' },
  JWT_UNKNOWN_KID: { fault: 'remote', status: 401, summary: 'Token kid names no key in the published key set' },
  JWT_ALG_NOT_ALLOWED: { fault: 'remote', status: 401, summary: 'Token alg is not the allowed signature algorithm (Ed25519)' },
  JWT_CLAIMS_INVALID: { fault: 'remote', status: 401, summary: 'A required claim or header (sub, role, exp, iat, typ) is missing, mistyped or out of profile' },
  JWT_JWKS_UNAVAILABLE: { fault: 'local', status: 503, summary: 'The signing key set could not be fetched or is invalid' },
  JWT_ARGUMENT_INVALID: { fault: 'local', status: 500, summary: 'JWT authority or verifier was configured or called with an invalid argument (a bug in the caller)' },
  JWT_KEY_STORE_INVALID: { fault: 'local', status: 500, summary: 'The stored signing key ring is corrupt, inconsistent or has unsafe file permissions' },
  JWT_KEY_STORE_UNAVAILABLE: { fault: 'local', status: 503, summary: 'The signing key ring could not be read or written' },
});
