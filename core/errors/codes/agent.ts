import { defineErrors } from '../error-spec.js';

/** The device agent (agent/): local state, enrollment, the command journal and execution. */
export const agentErrors = defineErrors({
  AGENT_NOT_ENROLLED: { fault: 'local', status: 400, summary: 'The agent directory holds no enrollment and no pairing token was given' },
  AGENT_STATE_INVALID: { fault: 'local', status: 500, summary: 'A file in the agent directory is missing, malformed or has unsafe permissions' },
  AGENT_ENROLL_FAILED: { fault: 'remote', status: 502, summary: 'The control plane refused or could not answer the enrollment or renewal request' },
  AGENT_INTERRUPTED: { fault: 'local', status: 500, summary: 'The agent stopped while the command was executing; it is not re-executed (at most once)' },
  AGENT_EXECUTION_FAILED: { fault: 'local', status: 500, summary: 'The command failed on the device for a reason without a more specific code' },
  AGENT_JOURNAL_CORRUPT: { fault: 'local', status: 500, summary: 'The command journal has an unreadable record before its last line' },
  AGENT_JOURNAL_FULL: { fault: 'local', status: 503, summary: 'The command journal holds its maximum of unfinished commands; the command was not taken' },
  AGENT_JOURNAL_WRITE_FAILED: { fault: 'local', status: 503, summary: 'The command journal could not write a record (disk full or an I/O error); the file was cut back to its last whole record, the step was not taken and the journal stays open' },
  AGENT_JOURNAL_UNUSABLE: { fault: 'local', status: 503, summary: 'A failed command journal write could not be undone (or the file could not be reopened after a compaction), so the journal takes no more records until the agent restarts; the last record may or may not be on disk' },
  AGENT_BUSY: { fault: 'local', status: 503, summary: 'Too many command deliveries are waiting to be processed; the delivery was dropped' },
  AGENT_COMMAND_BEFORE_JOURNAL: { fault: 'remote', status: 409, summary: 'The command was issued before the device\'s command journal was created (the journal was missing: restored from an older image, or deleted); what ran before is unknown, so it is refused and must be issued again' },
  AGENT_COMMAND_EXPIRED: { fault: 'local', status: 410, summary: 'The command was taken but its deadline passed before it could start; it was not run and never will be' },
  AGENT_OTA_URL_REFUSED: { fault: 'remote', status: 403, summary: 'An OTA notice\'s artifact URL is not https on an origin the agent trusts for artifacts (the control plane\'s, or one configured with --artifact-origin); it is not fetched, and the artifact comes from the control plane\'s TUF targets instead' },
  AGENT_OTA_NOTICE_REFUSED: { fault: 'remote', status: 401, summary: 'An OTA notice for a new execution whose director document is not signed by a pinned key, or names another execution; it was dropped without being journaled or answered' },
  AGENT_OTA_JOURNAL_CORRUPT: { fault: 'local', status: 500, summary: 'The agent\'s OTA journal (ota/journal.json) or its anti-rollback floor (ota/floor.json) does not parse within the journal\'s limits or does not have the journal\'s shape (the parser\'s code is in the details): the update runner takes no update and never overwrites the file until an operator repairs or removes it (the floor file keeps the installed release counter)' },
  AGENT_OTA_JOURNAL_UNUSABLE: { fault: 'local', status: 503, summary: 'The agent\'s OTA journal did not load at start (AGENT_OTA_JOURNAL_CORRUPT in the agent\'s log): the device refuses every new update execution, and reports the refusal, until an operator repairs or removes the journal and restarts the agent' },
  AGENT_OTA_NOTICES_FULL: { fault: 'remote', status: 503, summary: 'The agent already holds its maximum of OTA notices waiting behind the running update step; the new one was dropped (the gateway sends it again at the next AUTH)' },
});
