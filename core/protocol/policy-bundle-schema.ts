import { Type, type Static } from '@sinclair/typebox';
import { DeviceId, EpochMs, Signature } from './messages/fields.js';

/**
 * The wire shape of a signed policy bundle (policy-bundle.ts), shared by the POLICY_BUNDLE
 * message and the agent's copy on disk. The `policy` member is a policy document checked by
 * parsePolicy (docs/policy.md), not by this schema: one parser decides what a rule is.
 */
export const policyBundleFormat = 1;

const TagName = Type.String({ minLength: 1, maxLength: 128 });

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
