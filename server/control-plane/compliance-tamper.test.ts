import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ComplianceReason, ComplianceResult } from '../../core/protocol/compliance.js';
import { alertRulesDefault } from './alert-rules.js';
import { tamperSignalsOf, type PreviousReport } from './compliance-tamper.js';
import type { ReportedFacts } from './compliance.js';

const [binA, binB, cfgA, cfgB] = ['a', 'b', 'c', 'd'].map((c) => c.repeat(64)) as [string, string, string, string];
const reason = (code: string): ComplianceReason => ({ code, severity: 'non_compliant', message: `${code} message` });
const result = (...codes: string[]): ComplianceResult => ({ state: codes.length > 0 ? 'non_compliant' : 'compliant', reasons: codes.map(reason) });
const previous = (reported: ReportedFacts, ...codes: string[]): PreviousReport => ({ reported, reasons: codes.map(reason) });
const codesOf = (o: Parameters<typeof tamperSignalsOf>[0]): string[] => tamperSignalsOf(o).map((s) => s.code);
const rules = alertRulesDefault.tamperSignals;

describe('tamper signals in a posture report (compliance-tamper.ts)', () => {
  it('a configured reason counts when it is new, not while it persists; other reasons never', () => {
    const reported: ReportedFacts = { binary_sha256: binB };
    assert.deepEqual(codesOf({ previous: undefined, reported, result: result('binary_hash_mismatch', 'cert_expired'), rules }), ['binary_hash_mismatch']);
    assert.deepEqual(codesOf({ previous: previous(reported, 'binary_hash_mismatch'), reported, result: result('binary_hash_mismatch'), rules }), []);
    assert.deepEqual(codesOf({ previous: previous(reported, 'cert_expired'), reported, result: result('kernel_attestation_failed'), rules }), ['kernel_attestation_failed']);
    assert.deepEqual(codesOf({ previous: undefined, reported, result: result('binary_hash_mismatch'), rules: { complianceReasons: [], hashChange: true } }), []);
  });

  it('hash changes: the configuration always, the binary only under the same agent version; appearing or vanishing facts are no change', () => {
    const was: ReportedFacts = { agent_version: '0.1.0', binary_sha256: binA, config_sha256: cfgA };
    assert.deepEqual(codesOf({ previous: previous(was), reported: { ...was, config_sha256: cfgB }, result: result(), rules }), ['config_hash_changed']);
    assert.deepEqual(codesOf({ previous: previous(was), reported: { ...was, binary_sha256: binB }, result: result(), rules }), ['binary_hash_changed']);
    assert.deepEqual(codesOf({ previous: previous(was), reported: { ...was, agent_version: '0.2.0', binary_sha256: binB }, result: result(), rules }), [], 'an upgrade');
    assert.deepEqual(codesOf({ previous: previous({ agent_version: '0.1.0' }), reported: was, result: result(), rules }), [], 'first reported');
    assert.deepEqual(codesOf({ previous: previous(was), reported: { agent_version: '0.1.0' }, result: result(), rules }), [], 'no longer reported');
    assert.deepEqual(codesOf({ previous: previous(was), reported: { ...was, config_sha256: cfgB }, result: result(), rules: { ...rules, hashChange: false } }), [], 'rule off');
    assert.deepEqual(codesOf({ previous: undefined, reported: was, result: result(), rules }), [], 'no previous report');
  });
});
