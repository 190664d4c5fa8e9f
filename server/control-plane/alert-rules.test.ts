import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import { alertRulesDefault, parseAlertRules, parseAlertRulesText } from './alert-rules.js';

/** The refusal's code and the field it names. */
function refusal(run: () => unknown): { code: string; path: unknown } {
  try {
    run();
  } catch (error) {
    assert.ok(SdcError.is(error), String(error));
    return { code: error.code, path: error.details['path'] };
  }
  assert.fail('not refused');
}

describe('alert rules configuration', () => {
  it('an empty document is the defaults; every rule can be set or turned off with null', () => {
    assert.deepEqual(parseAlertRules({}), alertRulesDefault);
    const rules = parseAlertRules({
      offlineAfterMs: 5_000, riskScoreAbove: 55.5, updateFailures: null, tamper: false,
      backpressure: { busPendingAbove: null, deadLettersAbove: 3 }, sampleIntervalMs: 2_000,
    });
    assert.deepEqual(rules, {
      offlineAfterMs: 5_000, riskScoreAbove: 55.5, updateFailures: null, tamper: false, tamperSignals: alertRulesDefault.tamperSignals,
      backpressure: { busPendingAbove: null, deadLettersAbove: 3 }, sampleIntervalMs: 2_000,
    });
    assert.deepEqual(parseAlertRules({ tamperSignals: { complianceReasons: ['kernel_attestation_failed'] } }).tamperSignals, { complianceReasons: ['kernel_attestation_failed'], hashChange: true });
    assert.deepEqual(parseAlertRules({ tamperSignals: { complianceReasons: [], hashChange: false } }).tamperSignals, { complianceReasons: [], hashChange: false });
    assert.deepEqual(parseAlertRules({ backpressure: { deadLettersAbove: 9 } }).backpressure, { busPendingAbove: alertRulesDefault.backpressure.busPendingAbove, deadLettersAbove: 9 });
  });

  it('refuses bad fields with API_ALERT_RULES_INVALID naming the field', () => {
    const cases: Array<[unknown, string]> = [
      [[], '(document)'],
      [{ offlineAfterMs: 0 }, 'offlineAfterMs'],
      [{ offlineAfterMs: 1.5 }, 'offlineAfterMs'],
      [{ offlineAfterMs: '60000' }, 'offlineAfterMs'],
      [{ riskScoreAbove: 101 }, 'riskScoreAbove'],
      [{ riskScoreAbove: 0 }, 'riskScoreAbove'],
      [{ updateFailures: 0 }, 'updateFailures'],
      [{ tamper: 'yes' }, 'tamper'],
      [{ tamperSignals: true }, 'tamperSignals'],
      [{ tamperSignals: { complianceReasons: 'kernel_attestation_failed' } }, 'tamperSignals.complianceReasons'],
      [{ tamperSignals: { complianceReasons: ['ok', 'Bad-Code'] } }, 'tamperSignals.complianceReasons.1'],
      [{ tamperSignals: { hashChange: 1 } }, 'tamperSignals.hashChange'],
      [{ tamperSignals: { binary: true } }, 'tamperSignals.binary'],
      [{ backpressure: 5 }, 'backpressure'],
      [{ backpressure: { busPendingAbove: -1 } }, 'backpressure.busPendingAbove'],
      [{ backpressure: { lagAbove: 1 } }, 'backpressure.lagAbove'],
      [{ sampleIntervalMs: null }, 'sampleIntervalMs'],
      [{ sampleIntervalMs: 10 }, 'sampleIntervalMs'],
      [{ offlineAfter: 5 }, 'offlineAfter'],
    ];
    for (const [document, path] of cases) assert.deepEqual(refusal(() => parseAlertRules(document)), { code: 'API_ALERT_RULES_INVALID', path }, JSON.stringify(document));
  });

  it('reads a file\'s text: JSON only, bounded in size', () => {
    assert.equal(parseAlertRulesText('{"offlineAfterMs": 1000}').offlineAfterMs, 1_000);
    assert.deepEqual(refusal(() => parseAlertRulesText('{offlineAfterMs: 1}')), { code: 'API_ALERT_RULES_INVALID', path: '(document)' });
    assert.deepEqual(refusal(() => parseAlertRulesText(`{"tamper": true${' '.repeat(70_000)}}`)), { code: 'API_ALERT_RULES_INVALID', path: '(document)' });
  });
});
