import { defineErrors } from '../error-spec.js';

/** Signed commands: creation, signature checks on the device, expiry and sequencing. */
export const commandErrors = defineErrors({
  COMMAND_EXPIRED: { fault: 'remote', status: 410, summary: 'Command TTL has passed' },
  COMMAND_TTL_INVALID: { fault: 'remote', status: 400, summary: 'Command TTL is zero, negative or above the maximum' },
  COMMAND_DEVICE_MISMATCH: { fault: 'remote', status: 400, summary: 'Command is addressed to a different device' },
  COMMAND_SEQ_STALE: { fault: 'remote', status: 409, summary: 'A command with this device_seq has already run on the device, under another id' },
  COMMAND_NOT_FOUND: { fault: 'remote', status: 404, summary: 'No command with this id' },
  COMMAND_POLICY_DENIED: { fault: 'remote', status: 403, summary: 'Policy does not allow this actor to send this opcode to this device' },
  COMMAND_RATE_LIMITED: { fault: 'remote', status: 429, summary: 'A policy rate limit (per actor, device or opcode) is reached for this window; details name the rule and the limit' },
  COMMAND_REASON_REQUIRED: { fault: 'remote', status: 400, summary: 'Policy requires a stated reason for this command (the reason field); it is recorded in the audit' },
  COMMAND_QUIET_HOURS: { fault: 'remote', status: 403, summary: 'The device is in its group\'s quiet hours; details name the rule and the window' },
  COMMAND_POSTURE_DENIED: { fault: 'remote', status: 403, summary: 'The device\'s posture (online, compliance state, risk score, agent version) does not meet the policy; details name the field' },
  COMMAND_ACK_UNSIGNED: { fault: 'remote', status: 400, summary: 'A command\'s ack or start event carries no device-signed COMMAND_ACK frame; only the device\'s signed word moves a command to ack_received or executing' },
  COMMAND_IDEMPOTENCY_CONFLICT: { fault: 'remote', status: 409, summary: 'Idempotency key was already used for a different request' },
});
