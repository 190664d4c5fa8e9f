import { defineErrors } from '../error-spec.js';

/**
 * The TUF client (core/tuf, agent/tuf, sdc tuf-client): each code names the attack or fault the
 * client refused, so a caller (and the TUF conformance suite's log) can tell a rollback from a
 * freeze from a bad signature without reading messages.
 */
export const tufErrors = defineErrors({
  TUF_CANONICAL_UNSUPPORTED: { fault: 'remote', status: 400, summary: 'A value has no OLPC canonical JSON form (a non-integer number, a lone surrogate, a non-JSON value)' },
  TUF_METADATA_INVALID: { fault: 'remote', status: 400, summary: 'TUF metadata is not valid JSON or does not match the schema of its role (type, version, expiry, keys, delegations)' },
  TUF_SIGNATURE_THRESHOLD: { fault: 'remote', status: 401, summary: 'TUF metadata is not signed by a threshold of the keys its delegating role trusts' },
  TUF_ROLLBACK: { fault: 'remote', status: 409, summary: 'TUF metadata names a lower version than the client already trusts (rollback attack)' },
  TUF_VERSION_MISMATCH: { fault: 'remote', status: 409, summary: 'TUF metadata has a version other than the one its referencing metadata names (mix-and-match), or a new root is not the next version' },
  TUF_EXPIRED: { fault: 'remote', status: 409, summary: 'TUF metadata has expired (freeze attack); updates stop until fresh metadata arrives' },
  TUF_LENGTH_OR_HASH_MISMATCH: { fault: 'remote', status: 409, summary: 'Downloaded bytes differ in length or in a listed hash from what signed metadata says (arbitrary or wrong software, mix-and-match)' },
  TUF_TOO_LARGE: { fault: 'remote', status: 413, summary: 'A download exceeded its byte limit (endless data attack)' },
  TUF_DOWNLOAD_TIMEOUT: { fault: 'remote', status: 504, summary: 'A download did not finish within its time limit (slow retrieval attack)' },
  TUF_DOWNLOAD_FAILED: { fault: 'remote', status: 502, summary: 'A TUF repository answered with an HTTP error or could not be reached' },
  TUF_METADATA_MISSING: { fault: 'remote', status: 409, summary: 'Signed metadata does not list a role the client needs (snapshot without the role, timestamp without snapshot)' },
  TUF_TARGET_NOT_FOUND: { fault: 'remote', status: 404, summary: 'No role trusted for the target path lists it (unknown target, or listed only by a role not delegated that path)' },
  TUF_NO_TRUSTED_ROOT: { fault: 'local', status: 500, summary: 'The client has no trusted root metadata that verifies (run init with a trusted root)' },
  TUF_LOCAL_STORE: { fault: 'local', status: 500, summary: 'The TUF client could not read or write its metadata or target directory' },
});
