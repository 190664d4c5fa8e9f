import { SdcError } from '../../core/errors/index.js';
import { alertThreshold } from '../../core/protocol/risk-score.js';

/**
 * The alert rules (issue 12): thresholds, not code. Loaded from the `alerts` file given to
 * `sdc serve --alerts FILE` (docs/api.md "Alert rules"); every rule left out takes its default,
 * and `null` turns a rule off. Each rule raises one alert per episode (alert-episodes.ts).
 */
export interface AlertRules {
  /** A device whose last session ended this long ago and has not come back: `device_offline`. */
  readonly offlineAfterMs: number | null;
  /** A telemetry sample scoring at or above this: `risk_score` (core/protocol/risk-score.ts). */
  readonly riskScoreAbove: number | null;
  /** This many update commands failing in a row on one device: `update_failed`. */
  readonly updateFailures: number | null;
  /** A device ALERT frame of kind `tamper`, or a compliance tamper signal: one critical `tamper` alert until acknowledged. */
  readonly tamper: boolean;
  /** Which compliance findings are tamper signals (compliance-tamper.ts); judged at each posture report. */
  readonly tamperSignals: {
    /** Compliance reason codes (core/protocol/compliance.ts) that raise `tamper` when they newly appear. */
    readonly complianceReasons: readonly string[];
    /** The configuration hash changed between two reports, or the binary hash changed under the same agent version. */
    readonly hashChange: boolean;
  };
  readonly backpressure: {
    /** Entries delivered to a consumer group and not yet acknowledged, per stream (counted up to pendingEntriesReadMax). */
    readonly busPendingAbove: number | null;
    /** Entries in a stream's dead-letter stream. */
    readonly deadLettersAbove: number | null;
  };
  /** How often offline devices and stream backlogs are sampled, and risk episodes checked for clearing. */
  readonly sampleIntervalMs: number;
}

export const alertRulesDefault: AlertRules = Object.freeze({
  // Six default heartbeat intervals: a gateway restart or a device reboot is not an alert.
  offlineAfterMs: 60_000,
  riskScoreAbove: alertThreshold,
  updateFailures: 1,
  tamper: true,
  // The findings that only a changed binary, configuration or kernel explains; an upgrade changes the
  // binary hash together with the agent version, so only a change under the same version counts.
  tamperSignals: Object.freeze({ complianceReasons: Object.freeze(['binary_hash_mismatch', 'config_hash_mismatch', 'kernel_attestation_failed']), hashChange: true }),
  // 1,000 unacknowledged entries is minutes behind at the simulator's rates; any dead letter is a lost event.
  backpressure: Object.freeze({ busPendingAbove: 1_000, deadLettersAbove: 0 }),
  sampleIntervalMs: 15_000,
});

/** Bounds on the thresholds: a day offline at most, a second's sampling at least. */
export const alertRuleLimits = Object.freeze({
  offlineAfterMsMax: 24 * 60 * 60 * 1000,
  sampleIntervalMsMin: 1_000,
  sampleIntervalMsMax: 60 * 60 * 1000,
  updateFailuresMax: 100,
  countAboveMax: 1_000_000_000,
  tamperReasonCodesMax: 32,
  fileBytesMax: 64 * 1024,
});

const topKeys = ['offlineAfterMs', 'riskScoreAbove', 'updateFailures', 'tamper', 'tamperSignals', 'backpressure', 'sampleIntervalMs'] as const;
const backpressureKeys = ['busPendingAbove', 'deadLettersAbove'] as const;
const tamperSignalKeys = ['complianceReasons', 'hashChange'] as const;

function invalid(path: string, message: string): SdcError {
  return new SdcError('API_ALERT_RULES_INVALID', `alert rules: ${path} ${message}`, { path });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function refuseUnknownKeys(value: Record<string, unknown>, known: readonly string[], at: string): void {
  for (const key of Object.keys(value)) if (!known.includes(key)) throw invalid(`${at}${key}`, 'is not a rule');
}

/** An integer in [min, max], `null` (rule off), or the default when absent. */
function integerOrNull(value: unknown, path: string, range: { min: number; max: number }, fallback: number | null): number | null {
  if (value === undefined) return fallback;
  if (value === null) return null;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < range.min || value > range.max) {
    throw invalid(path, `must be an integer from ${range.min} to ${range.max}, or null to turn the rule off`);
  }
  return value;
}

function riskThreshold(value: unknown): number | null {
  if (value === undefined) return alertRulesDefault.riskScoreAbove;
  if (value === null) return null;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > 100) throw invalid('riskScoreAbove', 'must be a number above 0 and at most 100, or null');
  return value;
}

function parseBackpressure(value: unknown): AlertRules['backpressure'] {
  if (value === undefined) return alertRulesDefault.backpressure;
  if (!isObject(value)) throw invalid('backpressure', 'must be an object');
  refuseUnknownKeys(value, backpressureKeys, 'backpressure.');
  const range = { min: 0, max: alertRuleLimits.countAboveMax };
  return {
    busPendingAbove: integerOrNull(value['busPendingAbove'], 'backpressure.busPendingAbove', range, alertRulesDefault.backpressure.busPendingAbove),
    deadLettersAbove: integerOrNull(value['deadLettersAbove'], 'backpressure.deadLettersAbove', range, alertRulesDefault.backpressure.deadLettersAbove),
  };
}

function parseTamperSignals(value: unknown): AlertRules['tamperSignals'] {
  const fallback = alertRulesDefault.tamperSignals;
  if (value === undefined) return fallback;
  if (!isObject(value)) throw invalid('tamperSignals', 'must be an object');
  refuseUnknownKeys(value, tamperSignalKeys, 'tamperSignals.');
  const reasons = value['complianceReasons'] ?? fallback.complianceReasons;
  if (!Array.isArray(reasons) || reasons.length > alertRuleLimits.tamperReasonCodesMax) {
    throw invalid('tamperSignals.complianceReasons', `must be a list of at most ${alertRuleLimits.tamperReasonCodesMax} compliance reason codes`);
  }
  reasons.forEach((code: unknown, index) => {
    if (typeof code !== 'string' || !/^[a-z][a-z0-9_]{0,63}$/.test(code)) throw invalid(`tamperSignals.complianceReasons.${index}`, 'must be a snake_case reason code');
  });
  const hashChange = value['hashChange'] ?? fallback.hashChange;
  if (typeof hashChange !== 'boolean') throw invalid('tamperSignals.hashChange', 'must be true or false');
  return Object.freeze({ complianceReasons: Object.freeze([...reasons as string[]]), hashChange });
}

/** Checks a rules document field by field; a refusal names the field (details.path). */
export function parseAlertRules(document: unknown): AlertRules {
  if (!isObject(document)) throw invalid('(document)', 'must be a JSON object');
  refuseUnknownKeys(document, topKeys, '');
  const tamper = document['tamper'] ?? alertRulesDefault.tamper;
  if (typeof tamper !== 'boolean') throw invalid('tamper', 'must be true or false');
  const sampleIntervalMs = integerOrNull(document['sampleIntervalMs'], 'sampleIntervalMs',
    { min: alertRuleLimits.sampleIntervalMsMin, max: alertRuleLimits.sampleIntervalMsMax }, alertRulesDefault.sampleIntervalMs);
  if (sampleIntervalMs === null) throw invalid('sampleIntervalMs', 'cannot be null: it is not a rule');
  return Object.freeze({
    offlineAfterMs: integerOrNull(document['offlineAfterMs'], 'offlineAfterMs', { min: 1, max: alertRuleLimits.offlineAfterMsMax }, alertRulesDefault.offlineAfterMs),
    riskScoreAbove: riskThreshold(document['riskScoreAbove']),
    updateFailures: integerOrNull(document['updateFailures'], 'updateFailures', { min: 1, max: alertRuleLimits.updateFailuresMax }, alertRulesDefault.updateFailures),
    tamper,
    tamperSignals: parseTamperSignals(document['tamperSignals']),
    backpressure: Object.freeze(parseBackpressure(document['backpressure'])),
    sampleIntervalMs,
  });
}

/** The rules from a file's text (JSON); a file over fileBytesMax or not JSON is refused the same way. */
export function parseAlertRulesText(text: string): AlertRules {
  if (text.length > alertRuleLimits.fileBytesMax) throw invalid('(document)', `is over ${alertRuleLimits.fileBytesMax} bytes`);
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw invalid('(document)', 'is not JSON');
  }
  return parseAlertRules(document);
}
