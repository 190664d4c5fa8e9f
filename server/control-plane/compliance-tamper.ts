import type { ComplianceReason, ComplianceResult } from '../../core/protocol/compliance.js';
import type { AlertRules } from './alert-rules.js';
import type { ReportedFacts } from './compliance.js';

/**
 * Tamper signals in a device's posture report (issue 12: "tamper detected" from the agent's own
 * binary and configuration hash and the kernel's attested status), judged against the device's
 * previous report. Pure: the compliance service passes both reports and the new judgement.
 *
 * A signal is raised when it is new, not on every report that still shows it: a device that
 * reconnects every minute with the same wrong hash would otherwise raise a tamper alert after
 * each acknowledgement. The alert (one per episode until acknowledged) is AlertMonitor.onTamper.
 */
export interface TamperSignal {
  /** A compliance reason code, or `binary_hash_changed` / `config_hash_changed`. */
  readonly code: string;
  readonly message: string;
}

export interface PreviousReport {
  readonly reported: ReportedFacts;
  readonly reasons: readonly ComplianceReason[];
}

export function tamperSignalsOf(o: {
  previous: PreviousReport | undefined; reported: ReportedFacts; result: ComplianceResult; rules: AlertRules['tamperSignals'];
}): TamperSignal[] {
  const before = new Set(o.previous?.reasons.map((reason) => reason.code) ?? []);
  const signals: TamperSignal[] = o.result.reasons
    .filter((reason) => o.rules.complianceReasons.includes(reason.code) && !before.has(reason.code))
    .map((reason) => ({ code: reason.code, message: reason.message }));
  if (!o.rules.hashChange || o.previous === undefined) return signals;
  const was = o.previous.reported;
  const now = o.reported;
  if (changed(was.config_sha256, now.config_sha256)) {
    signals.push({ code: 'config_hash_changed', message: `agent configuration hash changed from ${short(was.config_sha256)} to ${short(now.config_sha256)}` });
  }
  // An upgrade changes the binary with the version; the same version with another binary does not happen honestly.
  if (changed(was.binary_sha256, now.binary_sha256) && was.agent_version === now.agent_version) {
    signals.push({ code: 'binary_hash_changed', message: `agent binary hash changed from ${short(was.binary_sha256)} to ${short(now.binary_sha256)} under the same version ${now.agent_version ?? '(unreported)'}` });
  }
  return signals;
}

/** Both reported and different: a fact that appears or disappears is not a change of hash. */
function changed(before: string | undefined, after: string | undefined): boolean {
  return before !== undefined && after !== undefined && before !== after;
}

function short(hash: string | undefined): string {
  return `${(hash ?? '').slice(0, 16)}…`;
}
