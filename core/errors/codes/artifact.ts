import { defineErrors } from '../error-spec.js';

/**
 * Encrypted artifact uploads (issue 10, docs/artifacts.md): an operator asks a device for its
 * logs or a screenshot (EXEC_COLLECT_ARTIFACT), the control plane grants the device one presigned
 * PUT for that command, and an operator downloads the decrypted bytes. The sealing and store
 * refusals are OTA_ codes (OTA_ARTIFACT_DECRYPT_FAILED, OTA_UPLOAD_DIGEST_MISMATCH,
 * OTA_UPLOAD_TOO_LARGE, OTA_UPLOAD_FAILED); these are the ones about the grant and the record.
 */
export const artifactErrors = defineErrors({
  ARTIFACT_NOT_FOUND: { fault: 'remote', status: 404, summary: 'No artifact with this id: no EXEC_COLLECT_ARTIFACT command has it, or its command has not succeeded with an upload' },
  ARTIFACT_UPLOAD_BINDING: { fault: 'remote', status: 403, summary: 'An upload grant was asked for a command that is not this device\'s EXEC_COLLECT_ARTIFACT command, or one that is no longer running' },
  ARTIFACT_UPLOAD_REPLAYED: { fault: 'remote', status: 409, summary: 'An upload grant was already issued for this command: each command gets exactly one presigned PUT' },
  ARTIFACT_RESULT_INVALID: { fault: 'remote', status: 422, summary: 'The command result does not describe an upload (artifact id, length and SHA-256 missing or malformed, or naming another command)' },
  ARTIFACT_KIND_UNSUPPORTED: { fault: 'remote', status: 409, summary: 'The device cannot produce this kind of artifact (a screenshot on a platform without one)' },
  ARTIFACT_KEY_UNKNOWN: { fault: 'remote', status: 404, summary: 'No artifact key with this key id is held (never made here, or removed after its rotation): an upload sealed to it cannot be opened' },
  ARTIFACT_KEY_IN_USE: { fault: 'remote', status: 409, summary: 'The current artifact key cannot be removed: rotate first, then remove the retired key' },
  ARTIFACT_KEY_RING_FULL: { fault: 'remote', status: 409, summary: 'The control plane already holds the most retired artifact keys it keeps: remove one no longer needed before rotating again' },
  ARTIFACT_KEY_UNTRUSTED: { fault: 'remote', status: 502, summary: 'The control plane\'s artifact key was not signed by a command key the device pins: the device seals nothing to it' },
});
