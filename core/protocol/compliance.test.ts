import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertRefused } from '../errors/assert-refused.js';
import { evaluateCompliance, parseComplianceRules, versionOf, type ComplianceFacts, type ComplianceRules } from './compliance.js';

const dayMs = 24 * 3_600_000;
const nowMs = Date.UTC(2026, 11, 2);
const goodBinary = 'a'.repeat(64);
const goodConfig = 'c'.repeat(64);
const rules: ComplianceRules = parseComplianceRules({
  agent_version_min: '0.1.0', os_versions_allowed: ['Linux 6.'], binary_sha256_allowed: [goodBinary], config_sha256_allowed: [goodConfig],
  kernel_attestation_required: false, policy_bundle_version_min: 3, posture_max_age_ms: 7 * dayMs,
});
/** Facts as a healthy agent reports them in its AUTH, with a certificate 90 days from expiry. */
const healthy: ComplianceFacts = {
  agentVersion: 'sdc-agent/0.1.0', osVersion: 'Linux 6.8.0', binarySha256: goodBinary, configSha256: goodConfig,
  kernelAttestation: 'unattested', policyBundleVersion: 3, certNotAfterMs: nowMs + 90 * dayMs, reportedAtMs: nowMs - 60_000,
};
const codes = (facts: ComplianceFacts, r: ComplianceRules = rules) => evaluateCompliance(facts, r, nowMs).reasons.map((reason) => reason.code);

test('a healthy posture is compliant with no reasons', () => {
  assert.deepEqual(evaluateCompliance(healthy, rules, nowMs), { state: 'compliant', reasons: [] });
});

test('a certificate expiring in 5 days is a warning; expired is non-compliant; the 7-day threshold is configurable', () => {
  const expiring = evaluateCompliance({ ...healthy, certNotAfterMs: nowMs + 5 * dayMs }, rules, nowMs);
  assert.equal(expiring.state, 'warning');
  assert.deepEqual(expiring.reasons.map((r) => [r.code, r.severity]), [['cert_expiring', 'warning']]);
  assert.match(expiring.reasons[0]!.message, /expires in 5 day/);
  assert.equal(evaluateCompliance({ ...healthy, certNotAfterMs: nowMs + 7 * dayMs + 1 }, rules, nowMs).state, 'compliant', 'just over 7 days left');
  assert.equal(evaluateCompliance({ ...healthy, certNotAfterMs: nowMs + 7 * dayMs }, rules, nowMs).state, 'warning', 'exactly 7 days left');
  assert.deepEqual(codes({ ...healthy, certNotAfterMs: nowMs }), ['cert_expired']);
  assert.equal(evaluateCompliance({ ...healthy, certNotAfterMs: nowMs - 1 }, rules, nowMs).state, 'non_compliant');
  assert.equal(evaluateCompliance({ ...healthy, certNotAfterMs: nowMs + 5 * dayMs }, { ...rules, cert_expiry_warn_ms: 3 * dayMs }, nowMs).state, 'compliant');
});

test('tamper signals: another binary or configuration hash, a failed kernel check', () => {
  const tampered = evaluateCompliance({ ...healthy, binarySha256: 'b'.repeat(64), configSha256: 'd'.repeat(64), kernelAttestation: 'failed' }, rules, nowMs);
  assert.equal(tampered.state, 'non_compliant');
  assert.deepEqual(tampered.reasons.map((r) => r.code), ['binary_hash_mismatch', 'config_hash_mismatch', 'kernel_attestation_failed']);
  assert.ok(tampered.reasons.every((r) => r.severity === 'non_compliant'));
  // An unattested kernel is accepted unless attestation is required.
  assert.deepEqual(codes({ ...healthy, kernelAttestation: 'unattested' }, { ...rules, kernel_attestation_required: true }), ['kernel_unattested']);
  assert.deepEqual(codes({ ...healthy, kernelAttestation: 'attested' }, { ...rules, kernel_attestation_required: true }), []);
});

test('kernel backends: a rule allowing native and windows makes a mock-backed device non-compliant, an unreported backend a warning', () => {
  const nativeOnly = parseComplianceRules({ kernel_backends_allowed: ['native', 'windows'] });
  assert.deepEqual(codes({ ...healthy, kernelBackend: 'native' }, nativeOnly), []);
  const mock = evaluateCompliance({ ...healthy, kernelBackend: 'mock' }, nativeOnly, nowMs);
  assert.deepEqual(mock.reasons.map((r) => [r.code, r.severity]), [['kernel_backend_not_allowed', 'non_compliant']]);
  assert.match(mock.reasons[0]!.message, /mock kernel backend/);
  assert.deepEqual(codes(healthy, nativeOnly), ['kernel_backend_unreported']);
  assert.deepEqual(codes({ ...healthy, kernelBackend: 'mock' }), [], 'no rule: the backend judges nothing');
  assertRefused(() => parseComplianceRules({ kernel_backends_allowed: ['simulated'] }), 'COMPLIANCE_RULES_INVALID');
});

test('versions: an older agent, an OS not allowed and an older policy bundle are non-compliant', () => {
  assert.deepEqual(codes({ ...healthy, agentVersion: 'sdc-agent/0.0.9' }), ['agent_version_outdated']);
  assert.deepEqual(codes({ ...healthy, agentVersion: 'sdc-agent/0.10.0' }), [], '0.10 is above 0.1 (numbers, not text)');
  assert.deepEqual(codes({ ...healthy, agentVersion: 'sim/1' }), [], '1 reads as 1.0.0');
  assert.deepEqual(codes({ ...healthy, agentVersion: 'custom' }), ['agent_version_unparseable']);
  assert.deepEqual(codes({ ...healthy, osVersion: 'Linux 5.15.0' }), ['os_version_not_allowed']);
  assert.deepEqual(codes({ ...healthy, policyBundleVersion: 2 }), ['policy_bundle_outdated']);
  assert.deepEqual(versionOf('sdc-agent/2.4.10'), [2, 4, 10]);
});

test('a fact a configured rule needs but the device did not report is a warning; without rules nothing but the certificate is judged', () => {
  const silent: ComplianceFacts = { certNotAfterMs: nowMs + 90 * dayMs };
  const result = evaluateCompliance(silent, rules, nowMs);
  assert.equal(result.state, 'warning');
  assert.deepEqual(result.reasons.map((r) => r.code), [
    'agent_version_unreported', 'os_version_unreported', 'binary_hash_unreported', 'config_hash_unreported', 'policy_bundle_unreported', 'posture_unreported',
  ]);
  assert.deepEqual(evaluateCompliance(silent, {}, nowMs), { state: 'compliant', reasons: [] });
  assert.deepEqual(codes({}, {}), ['cert_unknown']);
  assert.deepEqual(codes({ ...healthy, reportedAtMs: nowMs - 8 * dayMs }), ['posture_stale']);
});

test('rules are checked: an unknown member or a bad hash is refused with its path', () => {
  assertRefused(() => parseComplianceRules({ agent_version_minimum: '1.0' }), 'COMPLIANCE_RULES_INVALID');
  assert.match(assertRefused(() => parseComplianceRules({ binary_sha256_allowed: ['XYZ'] }), 'COMPLIANCE_RULES_INVALID').message, /binary_sha256_allowed\/0/);
  assertRefused(() => parseComplianceRules('rules'), 'COMPLIANCE_RULES_INVALID');
  assert.deepEqual(parseComplianceRules({}), {});
});
