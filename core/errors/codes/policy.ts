import { defineErrors } from '../error-spec.js';

/** Policy documents and access decisions (core/protocol/policy). */
export const policyErrors = defineErrors({
  POLICY_INVALID: { fault: 'remote', status: 400, summary: 'Policy document is malformed; details name the path of the bad field' },
  POLICY_UNSUPPORTED_VERSION: { fault: 'remote', status: 400, summary: 'Policy document format version is not supported' },
  POLICY_TOO_LARGE: { fault: 'remote', status: 413, summary: 'Policy document exceeds a rule, selector or size limit' },
  POLICY_REVISION_STALE: { fault: 'remote', status: 409, summary: 'The policy change names a revision that is no longer the current one; details give the current revision' },
  POLICY_REVISION_REQUIRED: { fault: 'remote', status: 428, summary: 'A policy change must name the revision it replaces (If-Match or the document\'s revision field)' },
  POLICY_REQUEST_INVALID: { fault: 'local', status: 500, summary: 'Policy evaluation was called with a malformed request (a bug in the caller)' },
});
