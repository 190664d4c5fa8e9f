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
});
