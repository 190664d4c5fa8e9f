import { defineErrors } from '../error-spec.js';

/**
 * Multi-approval (core/protocol/approvals.ts, docs/policy.md "Approvals"): refusals of an
 * approval or rejection submitted to the control plane, and of the approvals a device finds
 * embedded in a signed command. Each reason has its own code so a client (and an auditor) can
 * tell a forged signature from a late or a self-approval.
 */
export const approvalErrors = defineErrors({
  APPROVAL_SIGNATURE_INVALID: { fault: 'remote', status: 400, summary: 'Approval signature does not verify under the approver\'s registered signing key' },
  APPROVAL_BY_REQUESTER: { fault: 'remote', status: 403, summary: 'The requester of a command may not approve or reject it' },
  APPROVAL_DUPLICATE: { fault: 'remote', status: 409, summary: 'This approver has already approved or rejected this command' },
  APPROVAL_EXPIRED: { fault: 'remote', status: 410, summary: 'Approval is past its expiry' },
  APPROVAL_EXPIRY_TOO_LONG: { fault: 'remote', status: 400, summary: 'Approval expiry is further ahead than the command\'s own expiry allows' },
  APPROVAL_ROLE_NOT_ALLOWED: { fault: 'remote', status: 403, summary: 'The approver\'s role is not one the policy rule accepts approvals from' },
  APPROVAL_KEY_PROOF_REQUIRED: { fault: 'remote', status: 403, summary: 'Registering an approval signing key (a first one or a replacement) needs the account\'s current password (current_password); a token alone registers none' },
  APPROVAL_KEY_UNKNOWN: { fault: 'remote', status: 409, summary: 'No registered signing key with this kid for this approver (register one: PUT /v1/users/me/signing-key)' },
  APPROVAL_STATEMENT_MISMATCH: { fault: 'remote', status: 400, summary: 'Approval statement names another command, command hash, approver or decision than the request' },
  APPROVAL_NOT_PENDING: { fault: 'remote', status: 409, summary: 'Command or rollout is not waiting for approvals (released or started, rejected, expired, aborted, or never needed any)' },
  APPROVAL_DEVICE_PROOF_INVALID: { fault: 'remote', status: 403, summary: 'An OTA rollout kernel command\'s Merkle path does not place the device in the approved wave (core/ota/device-merkle.ts)' },
  APPROVAL_INSUFFICIENT: { fault: 'remote', status: 403, summary: 'Command carries fewer valid approvals than the policy rule requires' },
  APPROVAL_CANCEL_FORBIDDEN: { fault: 'remote', status: 403, summary: 'Only the command\'s requester or an admin may cancel a command waiting for approvals' },
});
