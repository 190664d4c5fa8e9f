import { defineErrors } from '../error-spec.js';

/** CA hierarchy, enrollment, revocation and key files (core/trust). */
export const trustErrors = defineErrors({
  TRUST_CERT_INVALID: { fault: 'remote', status: 401, summary: 'Certificate cannot be parsed or fails a profile check' },
});
