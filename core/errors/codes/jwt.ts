import { defineErrors } from '../error-spec.js';

/** JWT authority and verification (core/trust/jwt). */
export const jwtErrors = defineErrors({
  JWT_INVALID: { fault: 'remote', status: 401, summary: 'Token is malformed or its signature does not verify' },
});
