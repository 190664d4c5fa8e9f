/**
 * Key/value keys and pub/sub channels of the policy bundle push (docs/policy.md, "The device's
 * policy bundle"). The control plane signs, gateways send; they meet in the key/value store, so
 * a gateway never holds the command-signing key and never reads SQL.
 *
 * Pub/sub is at most once: every notice here is an optimisation over the keys, never the only
 * path. A gateway that missed one sends what the key holds at the device's next AUTH, and asks
 * again when that is missing, older than the current revision or near its expiry.
 */
export const policyBundleKeys = {
  /** The signed bundle for a device (canonical JSON of SignedPolicyBundle); expires with the bundle. */
  bundle: (deviceId: string): string => `sdc:policy-bundle:${deviceId}`,
  /** The policy revision in force, as the control plane last saw it (decimal). */
  revision: 'sdc:policy-bundle:revision',
  /**
   * When (control plane ms, decimal) a bundle input other than the policy and the device's tags
   * last changed: the approvers' keys and roles (a user removed, a role changed, a key registered
   * or aged out). A stored bundle issued before it is stale; gateways re-read it at each sweep.
   */
  inputsChangedAt: 'sdc:policy-bundle:inputs-changed-at',
  /** The digest of the approver keys the bundles were last cut with (control planes only: how they notice a change). */
  approversDigest: 'sdc:policy-bundle:approvers-digest',
  /** The version a device last reported accepting (decimal): what it enforces, for operators and compliance. */
  held: (deviceId: string): string => `sdc:policy-bundle:held:${deviceId}`,
} as const;

export const policyBundleChannels = {
  /** gateway -> control plane: a device id whose bundle is missing or stale; the control plane signs one. */
  requests: 'sdc:policy-bundle:requests',
  /** control plane -> gateways: a device id whose bundle key was just written; its gateway sends it. */
  ready: 'sdc:policy-bundle:ready',
  /** control plane -> gateways: a new policy revision (decimal); gateways ask for their devices' bundles. */
  revision: 'sdc:policy-bundle:revision',
  /** control plane -> gateways: the approvers' keys or roles changed at this time (decimal ms, as policyBundleKeys.inputsChangedAt); gateways ask for their devices' bundles. */
  inputs: 'sdc:policy-bundle:inputs',
} as const;
