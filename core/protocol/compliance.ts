import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { SdcError } from '../errors/index.js';
import { kernelBackendKinds, type KernelAttestationStatus, type KernelBackendKind } from './messages/posture.js';

/**
 * The compliance evaluator (roadmap 10.3): a device's facts and the configured rules in, a state
 * with its reasons out. Pure: the caller passes `nowMs`. The facts come from the device's AUTH
 * posture (agent version, OS version, binary and configuration hashes, kernel attestation, policy
 * bundle version, see messages/posture.ts) and from its record (certificate expiry).
 *
 * A reason is `warning` or `non_compliant`; the state is the worst reason, `compliant` with none.
 * A rule about a fact the device did not report gives a warning (`*_unreported`): unknown is not
 * compliant, but it is not proof of a fault either. Rules that are not configured judge nothing.
 */

export const complianceStates = ['compliant', 'warning', 'non_compliant'] as const;
export type ComplianceState = (typeof complianceStates)[number];

export interface ComplianceReason {
  /** Stable snake_case code, e.g. `cert_expiring`, `binary_hash_mismatch`. */
  readonly code: string;
  readonly severity: 'warning' | 'non_compliant';
  readonly message: string;
}

export interface ComplianceResult {
  readonly state: ComplianceState;
  readonly reasons: readonly ComplianceReason[];
}

/** What is known about one device. Absent: not reported (or, for the certificate, not on record). */
export interface ComplianceFacts {
  readonly agentVersion?: string;
  readonly osVersion?: string;
  readonly binarySha256?: string;
  readonly configSha256?: string;
  readonly kernelAttestation?: KernelAttestationStatus;
  readonly kernelBackend?: KernelBackendKind;
  readonly policyBundleVersion?: number;
  readonly certNotAfterMs?: number;
  /** When the device last reported its posture (its last AUTH). */
  readonly reportedAtMs?: number;
}

const dayMs = 24 * 3_600_000;
const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$' });
const Version = Type.String({ pattern: '^[0-9]{1,9}(\\.[0-9]{1,9}){0,3}$', description: 'Dotted numbers, e.g. 0.1.0' });

/** The rules, as configured (a JSON file, `sdc serve --compliance FILE`); every member optional. */
export const ComplianceRulesSchema = Type.Object({
  /** A certificate expiring within this is a warning (default 7 days); expired is non-compliant. */
  cert_expiry_warn_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 365 * dayMs })),
  /** Lowest agent version allowed (compared as dotted numbers; `sdc-agent/0.1.0` reads as 0.1.0). */
  agent_version_min: Type.Optional(Version),
  /** OS versions allowed, each a prefix of the reported one (e.g. `Linux 6.`). */
  os_versions_allowed: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 64 })),
  /** The agent binaries' expected SHA-256 values: any other is a tamper signal. */
  binary_sha256_allowed: Type.Optional(Type.Array(Sha256Hex, { minItems: 1, maxItems: 64 })),
  /** The agent configurations' expected SHA-256 values. */
  config_sha256_allowed: Type.Optional(Type.Array(Sha256Hex, { minItems: 1, maxItems: 256 })),
  /** true: a kernel that is not `attested` is non-compliant. false (default): `unattested` is accepted; `failed` never is. */
  kernel_attestation_required: Type.Optional(Type.Boolean()),
  /** Kernel backends allowed (e.g. `["native", "windows"]`): a device on another one, such as the `mock`, is non-compliant. */
  kernel_backends_allowed: Type.Optional(Type.Array(Type.Union(kernelBackendKinds.map((kind) => Type.Literal(kind))), { minItems: 1, maxItems: kernelBackendKinds.length, uniqueItems: true })),
  /** Lowest policy bundle version a device must enforce. */
  policy_bundle_version_min: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
  /** Facts older than this (no AUTH since) are a warning: the device has not reported lately. */
  posture_max_age_ms: Type.Optional(Type.Integer({ minimum: 60_000, maximum: 365 * dayMs })),
}, { additionalProperties: false });
export type ComplianceRules = Static<typeof ComplianceRulesSchema>;

export const complianceDefaults = Object.freeze({
  /** The figure: warn 7 days before the certificate expires. */
  certExpiryWarnMs: 7 * dayMs,
});

const rulesCheck = TypeCompiler.Compile(ComplianceRulesSchema);

/** Checks a rules document; COMPLIANCE_RULES_INVALID names the bad field's path. */
export function parseComplianceRules(value: unknown): ComplianceRules {
  if (rulesCheck.Check(value)) return value;
  const first = rulesCheck.Errors(value).First();
  throw new SdcError('COMPLIANCE_RULES_INVALID', `compliance rules ${first?.path || '/'}: ${first?.message ?? 'invalid'}`, { path: first?.path ?? '' });
}

type Check = (facts: ComplianceFacts, rules: ComplianceRules, nowMs: number) => ComplianceReason | undefined;
const warning = (code: string, message: string): ComplianceReason => ({ code, severity: 'warning', message });
const failing = (code: string, message: string): ComplianceReason => ({ code, severity: 'non_compliant', message });

const checkCertificate: Check = (facts, rules, nowMs) => {
  if (facts.certNotAfterMs === undefined) return warning('cert_unknown', 'no certificate on record');
  if (facts.certNotAfterMs <= nowMs) return failing('cert_expired', `certificate expired at ${new Date(facts.certNotAfterMs).toISOString()}`);
  const warnMs = rules.cert_expiry_warn_ms ?? complianceDefaults.certExpiryWarnMs;
  const leftMs = facts.certNotAfterMs - nowMs;
  if (leftMs <= warnMs) return warning('cert_expiring', `certificate expires in ${Math.ceil(leftMs / dayMs)} day(s), at ${new Date(facts.certNotAfterMs).toISOString()}`);
  return undefined;
};

const checkAgentVersion: Check = (facts, rules) => {
  if (rules.agent_version_min === undefined) return undefined;
  if (facts.agentVersion === undefined) return warning('agent_version_unreported', 'agent version not reported');
  const reported = versionOf(facts.agentVersion);
  if (reported === undefined) return warning('agent_version_unparseable', `agent version ${facts.agentVersion} has no dotted version number`);
  if (compareVersions(reported, versionOf(rules.agent_version_min)!) < 0) {
    return failing('agent_version_outdated', `agent version ${facts.agentVersion} is below ${rules.agent_version_min}`);
  }
  return undefined;
};

const checkOsVersion: Check = (facts, rules) => {
  const allowed = rules.os_versions_allowed;
  if (allowed === undefined) return undefined;
  if (facts.osVersion === undefined) return warning('os_version_unreported', 'OS version not reported');
  const osVersion = facts.osVersion;
  return allowed.some((prefix) => osVersion.startsWith(prefix)) ? undefined : failing('os_version_not_allowed', `OS version ${osVersion} is not allowed`);
};

const hashCheck = (fact: 'binarySha256' | 'configSha256', rule: 'binary_sha256_allowed' | 'config_sha256_allowed', what: string, code: string): Check => (facts, rules) => {
  const allowed = rules[rule];
  if (allowed === undefined) return undefined;
  const reported = facts[fact];
  if (reported === undefined) return warning(`${code}_unreported`, `${what} hash not reported`);
  return allowed.includes(reported) ? undefined : failing(`${code}_mismatch`, `${what} hash ${reported.slice(0, 16)}… is not an expected one (tamper signal)`);
};

const checkKernel: Check = (facts, rules) => {
  const required = rules.kernel_attestation_required === true;
  if (facts.kernelAttestation === undefined) return required ? warning('kernel_attestation_unreported', 'kernel attestation not reported') : undefined;
  if (facts.kernelAttestation === 'failed') return failing('kernel_attestation_failed', 'the kernel service failed its check (tamper signal)');
  if (facts.kernelAttestation === 'unattested' && required) return failing('kernel_unattested', 'the kernel service is not attested');
  return undefined;
};

const checkKernelBackend: Check = (facts, rules) => {
  const allowed = rules.kernel_backends_allowed;
  if (allowed === undefined) return undefined;
  if (facts.kernelBackend === undefined) return warning('kernel_backend_unreported', 'kernel backend not reported');
  return allowed.includes(facts.kernelBackend) ? undefined : failing('kernel_backend_not_allowed', `the device runs the ${facts.kernelBackend} kernel backend, not one of ${allowed.join(', ')}`);
};

const checkPolicyBundle: Check = (facts, rules) => {
  if (rules.policy_bundle_version_min === undefined) return undefined;
  if (facts.policyBundleVersion === undefined) return warning('policy_bundle_unreported', 'policy bundle version not reported');
  if (facts.policyBundleVersion < rules.policy_bundle_version_min) {
    return failing('policy_bundle_outdated', `policy bundle version ${facts.policyBundleVersion} is below ${rules.policy_bundle_version_min}`);
  }
  return undefined;
};

const checkFreshness: Check = (facts, rules, nowMs) => {
  if (rules.posture_max_age_ms === undefined) return undefined;
  if (facts.reportedAtMs === undefined) return warning('posture_unreported', 'the device has not reported its posture');
  return nowMs - facts.reportedAtMs > rules.posture_max_age_ms ? warning('posture_stale', `posture last reported at ${new Date(facts.reportedAtMs).toISOString()}`) : undefined;
};

const checks: readonly Check[] = [
  checkCertificate, checkAgentVersion, checkOsVersion,
  hashCheck('binarySha256', 'binary_sha256_allowed', 'agent binary', 'binary_hash'),
  hashCheck('configSha256', 'config_sha256_allowed', 'agent configuration', 'config_hash'),
  checkKernel, checkKernelBackend, checkPolicyBundle, checkFreshness,
];

/** The device's state under `rules` at `nowMs`: the worst of its reasons, in a fixed order. */
export function evaluateCompliance(facts: ComplianceFacts, rules: ComplianceRules, nowMs: number): ComplianceResult {
  const reasons = checks.map((check) => check(facts, rules, nowMs)).filter((reason): reason is ComplianceReason => reason !== undefined);
  const state: ComplianceState = reasons.some((r) => r.severity === 'non_compliant') ? 'non_compliant' : reasons.length > 0 ? 'warning' : 'compliant';
  return { state, reasons };
}

/** The dotted number in a version string (the last one, so `sdc-agent/0.1.0` gives [0, 1, 0]). */
export function versionOf(text: string): number[] | undefined {
  const matches = text.match(/[0-9]{1,9}(\.[0-9]{1,9}){0,3}/g);
  const last = matches?.at(-1);
  return last === undefined ? undefined : last.split('.').map(Number);
}

export function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i += 1) {
    const diff = (a[i] ?? 0) - (b[i] ?? 0);
    if (diff !== 0) return Math.sign(diff);
  }
  return 0;
}

/** A device's stored compliance, as other modules read it. `unknown`: no facts reported yet. */
export interface DeviceCompliance {
  readonly deviceId: string;
  readonly state: ComplianceState | 'unknown';
  readonly reasons: readonly ComplianceReason[];
  readonly evaluatedAtMs: number | null;
}

/**
 * The port other code reads a device's compliance through (e.g. a policy posture condition):
 * the control plane's ComplianceService implements it. Undefined for a device that does not exist.
 */
export interface DeviceComplianceReader {
  readCompliance(deviceId: string): Promise<DeviceCompliance | undefined>;
}
