import { defineErrors } from '../error-spec.js';

/** Dead-letter remediation (roadmap 11.4): operators retrying or discarding dead-lettered commands (docs/api.md). */
export const dlqErrors = defineErrors({
  DLQ_ENTRY_NOT_FOUND: { fault: 'remote', status: 404, summary: 'No dead-lettered command has this id' },
  DLQ_ENTRY_DISCARDED: { fault: 'remote', status: 409, summary: 'The dead-lettered command was discarded; it is never retried' },
  DLQ_RETRY_EXPIRED: { fault: 'remote', status: 409, summary: 'The dead-lettered command is past its signed expiry; the device would refuse a retry, so create a new command' },
  DLQ_DEVICE_OFFLINE: { fault: 'remote', status: 409, summary: 'The device of the dead-lettered command is not connected to any gateway; retry once it is online' },
});
