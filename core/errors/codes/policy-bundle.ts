import { defineErrors } from '../error-spec.js';

/**
 * The signed policy bundle a device enforces locally (core/protocol/policy-bundle.ts): refusals
 * of a pushed bundle (each reported by the agent to the control plane) and the local refusal of
 * a command the bundle denies.
 */
export const policyBundleErrors = defineErrors({
  POLICY_BUNDLE_INVALID: { fault: 'remote', status: 400, summary: 'Policy bundle is malformed; details name the path of the bad field' },
  POLICY_BUNDLE_SIGNATURE_INVALID: { fault: 'remote', status: 401, summary: 'Policy bundle is not signed by a pinned control-plane key' },
  POLICY_BUNDLE_VERSION_STALE: { fault: 'remote', status: 409, summary: 'Policy bundle version is lower than the one the device holds' },
  POLICY_BUNDLE_EXPIRED: { fault: 'remote', status: 410, summary: 'Policy bundle is past its expiry (or its validity interval is malformed)' },
  POLICY_BUNDLE_DEVICE_MISMATCH: { fault: 'remote', status: 403, summary: 'Policy bundle is addressed to another device' },
  POLICY_BUNDLE_TOO_LARGE: { fault: 'local', status: 413, summary: "A device's policy bundle would not fit in one protocol frame; it is not signed or sent" },
  POLICY_BUNDLE_DENIED: { fault: 'remote', status: 403, summary: "The device's local policy bundle does not allow this command; it was not executed" },
});
