import { defineErrors } from '../error-spec.js';

/** The hash-chained audit log (core/protocol/audit-chain) and its stores. */
export const auditErrors = defineErrors({
  AUDIT_ENTRY_INVALID: { fault: 'local', status: 500, summary: 'Audit entry input is malformed (kind, actor, subject, timestamp or payload)' },
  AUDIT_PAYLOAD_TOO_LARGE: { fault: 'local', status: 413, summary: 'Audit entry payload exceeds the payload size limit in bytes' },
  AUDIT_CONFLICT: { fault: 'local', status: 409, summary: 'An audit entry with this sequence number already exists' },
  AUDIT_CHAIN_BROKEN: { fault: 'local', status: 500, summary: 'The stored audit chain does not verify; refusing to extend it' },
  AUDIT_BUSY: { fault: 'local', status: 503, summary: 'Too many audit appends are waiting; retry later' },
  AUDIT_STORE_FULL: { fault: 'local', status: 507, summary: 'The audit store has reached its entry capacity' },
  AUDIT_ANCHOR_INVALID: { fault: 'remote', status: 400, summary: 'An audit anchor file line is not {seq, hash, at} (or the file is too large); the line is named' },
});
