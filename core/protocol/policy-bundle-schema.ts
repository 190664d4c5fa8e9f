import { Type, type Static } from '@sinclair/typebox';
import { DeviceId, EpochMs, Kid, Signature } from './messages/fields.js';

/**
 * The wire shape of a signed policy bundle (policy-bundle.ts), shared by the POLICY_BUNDLE
 * message and the agent's copy on disk. The `policy` member is a policy document checked by
 * parsePolicy (docs/policy.md), not by this schema: one parser decides what a rule is.
 */
export const policyBundleFormat = 1;

const TagName = Type.String({ minLength: 1, maxLength: 128 });

/** One approver's signing key as the bundle carries it. */
export const ApproverKeyEntry = Type.Object({
  approver: Type.String({ pattern: '^[A-Za-z0-9_.@-]{1,128}$' }),
  role: Type.Union([Type.Literal('viewer'), Type.Literal('operator'), Type.Literal('approver'), Type.Literal('admin')]),
  kid: Kid,
  public_key: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: 'Raw 32-byte Ed25519 public key, base64url' }),
}, { additionalProperties: false });
export type ApproverKeyEntry = Static<typeof ApproverKeyEntry>;

export const PolicyBundleSchema = Type.Object({
  format: Type.Literal(policyBundleFormat),
  device_id: DeviceId,
  /** The control plane's policy revision the bundle was cut from; never goes down on a device. */
  version: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  issued_at: EpochMs,
  expires_at: EpochMs,
  /** The device's tags when the bundle was cut: the agent evaluates tag selectors with these. */
  device_tags: Type.Array(TagName, { maxItems: 256 }),
  /** A policy document holding only the rules that select this device (by id, id prefix, tag or '*'). */
  policy: Type.Unknown({ description: 'A policy document (docs/policy.md), checked by parsePolicy' }),
  /**
   * The approvers' registered signing keys, so the device can check the approvals a command
   * carries (core/protocol/approvals.ts); absent or empty: no approval can be checked on the device.
   */
  approvers: Type.Optional(Type.Array(ApproverKeyEntry, { maxItems: 256 })),
}, { additionalProperties: false });
export type PolicyBundleDocument = Static<typeof PolicyBundleSchema>;

export const SignedPolicyBundleSchema = Type.Object({
  bundle: PolicyBundleSchema,
  sig: Signature,
}, { additionalProperties: false, description: 'A policy bundle signed by the control plane (see policy-bundle.ts)' });
export type SignedPolicyBundle = Static<typeof SignedPolicyBundleSchema>;

/** The agent's answer to a POLICY_BUNDLE: taken, or refused with the code it was refused with. */
export const PolicyBundleReportSchema = Type.Object({
  version: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  status: Type.Union([Type.Literal('accepted'), Type.Literal('refused')]),
  /** The version the agent enforces after this bundle (the same as `version` when accepted). */
  held_version: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
  error: Type.Optional(Type.Object({
    code: Type.String({ pattern: '^[A-Z][A-Z0-9_]{2,63}$' }),
    message: Type.String({ maxLength: 512 }),
  }, { additionalProperties: false })),
}, { additionalProperties: false });
export type PolicyBundleReport = Static<typeof PolicyBundleReportSchema>;
