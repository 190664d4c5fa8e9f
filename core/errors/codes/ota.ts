import { defineErrors } from '../error-spec.js';

/**
 * Over-the-air updates beyond the TUF client (core/ota): rollout plans and operator actions,
 * the director's per-device document and its agreement with the image repository, and the
 * device's post-update version report. Each code names what was refused, so the control plane
 * and the agent can report it without parsing messages.
 */
export const otaErrors = defineErrors({
  OTA_ROLLOUT_PLAN_INVALID: { fault: 'remote', status: 400, summary: 'A rollout plan is malformed: waves, thresholds or the rate limit out of range, a device named twice or not in the fleet, or devices left out of every wave' },
  OTA_ROLLOUT_STATE: { fault: 'remote', status: 409, summary: 'The operator action is not allowed in the rollout\'s current state (resume of a running rollout, anything after completion or abort)' },
  OTA_TARGET_CUSTOM_INVALID: { fault: 'remote', status: 400, summary: 'A target\'s custom data in the image repository is missing or malformed (release id, version, release counter, platforms, minimum agent version, reboot flag, health check)' },
  OTA_DIRECTOR_INVALID: { fault: 'remote', status: 400, summary: 'The director\'s document is malformed, lists other than exactly one target, or is valid for longer than allowed' },
  OTA_DIRECTOR_SIGNATURE: { fault: 'remote', status: 401, summary: 'The director\'s document is not signed by the director key the device trusts' },
  OTA_DIRECTOR_EXPIRED: { fault: 'remote', status: 409, summary: 'The director\'s document has expired or is not valid yet' },
  OTA_DIRECTOR_WRONG_BINDING: { fault: 'remote', status: 409, summary: 'The director\'s document is bound to another device, rollout, wave or execution' },
  OTA_TARGET_MISMATCH: { fault: 'remote', status: 409, summary: 'The director\'s document and the image repository disagree on the target (path, length, hashes or release counter)' },
  OTA_PLATFORM_MISMATCH: { fault: 'remote', status: 409, summary: 'The target is not for this device\'s platform, or the director names a platform the image repository does not list' },
  OTA_RELEASE_COUNTER_ROLLBACK: { fault: 'remote', status: 409, summary: 'The target\'s release counter is lower than the one the device already installed (rollback)' },
  OTA_AGENT_TOO_OLD: { fault: 'remote', status: 409, summary: 'The device\'s agent is older than the minimum agent version the target requires' },
  OTA_REPORT_SIGNATURE: { fault: 'remote', status: 401, summary: 'A device\'s version report is not signed by the device: it counts for nothing' },
  OTA_REPORT_STALE_NONCE: { fault: 'remote', status: 409, summary: 'A device\'s version report does not carry the nonce issued for this health check (a replay, or a claim sent before the reboot)' },
  OTA_REPORT_UNEXPECTED: { fault: 'remote', status: 409, summary: 'A device\'s version report arrived for an execution that is not waiting for its health check, or names another device or execution' },
  OTA_RELEASE_NOT_FOUND: { fault: 'remote', status: 404, summary: 'No release with this id in the image repository' },
  OTA_RELEASE_EXISTS: { fault: 'remote', status: 409, summary: 'A release with this id already exists (release ids are never reused)' },
  OTA_RELEASE_STATE: { fault: 'remote', status: 409, summary: 'The release action is not allowed in the release\'s current state (upload after verification, sign before the upload is verified, publish before signing)' },
  OTA_RELEASE_REVOKED: { fault: 'remote', status: 409, summary: 'The release was revoked: it is never uploaded, signed, published or rolled out again' },
  OTA_RELEASE_UNDER_THRESHOLD: { fault: 'remote', status: 409, summary: 'The release\'s targets metadata has fewer valid release-signer signatures than the targets role\'s threshold' },
  OTA_RELEASE_SIGNATURE_INVALID: { fault: 'remote', status: 400, summary: 'A release signature is not a valid signature of the proposed targets metadata by a key of the targets role' },
  OTA_TARGETS_PROPOSAL_OPEN: { fault: 'remote', status: 409, summary: 'Another release\'s targets metadata is being signed; publish or revoke it first (targets versions are signed one at a time)' },
  OTA_TARGETS_STALE: { fault: 'remote', status: 409, summary: 'The signed targets metadata builds on a targets version that is no longer the current one' },
  OTA_TARGETS_TOO_LARGE: { fault: 'remote', status: 409, summary: 'The next targets metadata would exceed the repository\'s size limit: revoke old releases (revoked ones are left out of it)' },
  OTA_UPLOAD_TOO_LARGE: { fault: 'remote', status: 413, summary: 'The uploaded artifact exceeds the repository\'s size limit' },
  OTA_UPLOAD_DIGEST_MISMATCH: { fault: 'remote', status: 400, summary: 'The uploaded artifact\'s length or SHA-256 differs from what the uploader declared' },
  OTA_REPOSITORY_NOT_INITIALISED: { fault: 'local', status: 503, summary: 'The image repository has no root metadata yet (run sdc ota init, then restart the control plane)' },
  OTA_REPOSITORY_NOT_FOUND: { fault: 'remote', status: 404, summary: 'The image repository holds no such metadata version or target' },
  OTA_REPOSITORY_VERSION_ROLLBACK: { fault: 'local', status: 409, summary: 'The repository refused to sign or serve a metadata version not above the highest it ever published (a restored backup or a stale database)' },
  OTA_REPOSITORY_KEYS: { fault: 'local', status: 500, summary: 'The repository\'s online snapshot or timestamp key is missing, unreadable or not the key root lists for its role' },
  OTA_ROLLOUT_NOT_FOUND: { fault: 'remote', status: 404, summary: 'No rollout with this id' },
  OTA_ROLLOUT_RELEASE_NOT_PUBLISHED: { fault: 'remote', status: 409, summary: 'A rollout names a release that is not published (or was revoked): only published releases are rolled out' },
  OTA_HEALTH_CHECK_FAILED: { fault: 'remote', status: 409, summary: 'The device\'s health check after an update failed: the update is rolled back' },
  OTA_UPDATE_STEP_FAILED: { fault: 'remote', status: 409, summary: 'A step of the device\'s update (TUF refresh, download, kernel STAGE or COMMIT) failed; the error names the step and the cause' },
  OTA_PRESIGN_INVALID: { fault: 'remote', status: 400, summary: 'A presigned URL was asked for with an expiry outside 60 s to 1 h, or for a blob key that is not allowed (1-512 characters of A-Z a-z 0-9 . _ - /, no . or .. segments)' },
  OTA_DOWNLOAD_FAILED: { fault: 'remote', status: 502, summary: 'An artifact download failed: the connection, an unexpected HTTP status, or no progress after the allowed number of resumptions' },
  OTA_DOWNLOAD_RANGE_INVALID: { fault: 'remote', status: 502, summary: 'A resumed download was answered 206 with a Content-Range that is not the range asked for (a lying or broken server); nothing is spliced' },
  OTA_DOWNLOAD_TOO_LARGE: { fault: 'remote', status: 502, summary: 'An artifact download sent more bytes than the expected length or the byte limit (an endless response)' },
  OTA_DOWNLOAD_TIMEOUT: { fault: 'remote', status: 504, summary: 'An artifact download stalled longer than the idle limit, or took longer than the total limit' },
  OTA_DOWNLOAD_DIGEST_MISMATCH: { fault: 'remote', status: 502, summary: 'A downloaded artifact\'s length or SHA-256 is not the expected one (a tampered or changed artifact); the file is discarded' },
});
