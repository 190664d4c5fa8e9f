import { defineErrors } from '../error-spec.js';

/** Signed commands: creation, signature checks on the device, expiry and sequencing. */
export const commandErrors = defineErrors({
  COMMAND_EXPIRED: { fault: 'remote', status: 410, summary: 'Command TTL has passed' },
  COMMAND_TTL_INVALID: { fault: 'remote', status: 400, summary: 'Command TTL is zero, negative or above the maximum' },
  COMMAND_DEVICE_MISMATCH: { fault: 'remote', status: 400, summary: 'Command is addressed to a different device' },
  COMMAND_SEQ_STALE: { fault: 'remote', status: 409, summary: 'A command with this device_seq has already run on the device, under another id' },
  COMMAND_NOT_FOUND: { fault: 'remote', status: 404, summary: 'No command with this id' },
  COMMAND_POLICY_DENIED: { fault: 'remote', status: 403, summary: 'Policy does not allow this actor to send this opcode to this device' },
  COMMAND_IDEMPOTENCY_CONFLICT: { fault: 'remote', status: 409, summary: 'Idempotency key was already used for a different request' },
});
