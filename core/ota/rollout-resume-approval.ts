import { hexFromBytes } from '../crypto/bytes.js';
import type { Sha256 } from '../ports/ports.js';
import { canonicalBytes } from '../protocol/canonical-json.js';
import type { JsonObject } from '../protocol/json-value.js';
import type { RolloutRecord, SafetyStopReason, WaveStats } from './rollout-decisions.js';

/**
 * What approvers of a resume past a safety stop approve (decision 0019, docs/ota.md "Resuming
 * after a safety stop"): this one request (its id), for this rollout, to waive this stop: the
 * wave, the pause's reason and the safety stop, the wave's thresholds and its figures when asked,
 * what earlier resumes had accepted, and the hash of the rollout's whole record as it was when
 * asked (`stop_sha256`), so an approval of one stop can never resume a later one. Who asked, why,
 * and until when approvals may come. Approvers sign the ordinary approval statement
 * (core/protocol/approvals.ts) with `command_id` the request's id (`rr-…`, never a command's `c_…`
 * or a rollout's `ro-…`) and `command_sha256` this subject's hash; the `kind` field keeps it from
 * hashing like a command's or a rollout start's subject.
 *
 * Pure: the hash function comes in, so the console and the CLI recompute the hash from the
 * subject they show.
 */
export interface RolloutResumeSubject {
  readonly kind: 'ota_rollout_resume';
  readonly v: 1;
  readonly request_id: string;
  readonly rollout_id: string;
  readonly release_id: string;
  /** The hash of the subject the rollout's start was approved with; null when its start needed none. */
  readonly rollout_subject_sha256: string | null;
  readonly wave: number;
  readonly pause_reason: 'error_threshold' | 'success_threshold_not_met' | 'operator';
  readonly safety_stop: SafetyStopReason;
  readonly error_threshold: { readonly executed_min: number; readonly failed_percent_max: number };
  readonly success_threshold: { readonly succeeded_min: number; readonly succeeded_percent_min: number; readonly soak_ms: number };
  /** The wave's figures when the resume was asked: the failures and the shortfall the resume accepts. */
  readonly wave_stats: { readonly size: number; readonly executed: number; readonly failed: number; readonly succeeded: number };
  readonly accepted_before: { readonly executed: number; readonly failed: number; readonly success_waived: boolean };
  /** SHA-256 of the rollout's record (canonical JSON) when asked: any resume, pause or wave change since makes it another stop. */
  readonly stop_sha256: string;
  readonly requested_by: string;
  readonly reason: string;
  readonly requested_at: number;
  readonly expires_at: number;
}

/** The stored record's hash a resume request is bound to (`stop_sha256`). */
export function rolloutStopHash(record: RolloutRecord, sha256: Sha256): string {
  return hexFromBytes(sha256(canonicalBytes(record as unknown as JsonObject)));
}

/** The subject of a request to resume `record` past `stop`, whose wave's figures are `stats`. */
export function rolloutResumeSubject(input: {
  readonly requestId: string;
  readonly record: RolloutRecord;
  readonly releaseId: string;
  readonly rolloutSubjectSha256: string | null;
  readonly stop: SafetyStopReason;
  readonly stats: WaveStats;
  readonly requestedBy: string;
  readonly reason: string;
  readonly requestedAtMs: number;
  readonly expiresAtMs: number;
}, sha256: Sha256): RolloutResumeSubject {
  const { record } = input;
  const wave = record.plan.waves[record.waveIndex]!;
  return {
    kind: 'ota_rollout_resume', v: 1, request_id: input.requestId, rollout_id: record.rolloutId, release_id: input.releaseId,
    rollout_subject_sha256: input.rolloutSubjectSha256, wave: record.waveIndex, pause_reason: record.pauseReason ?? 'operator', safety_stop: input.stop,
    error_threshold: { executed_min: wave.errorThreshold.executedMin, failed_percent_max: wave.errorThreshold.failedPercentMax },
    success_threshold: { succeeded_min: wave.successThreshold.succeededMin, succeeded_percent_min: wave.successThreshold.succeededPercentMin, soak_ms: wave.successThreshold.soakMs },
    wave_stats: { size: input.stats.size, executed: input.stats.executed, failed: input.stats.failed, succeeded: input.stats.succeeded },
    accepted_before: { executed: record.accepted.executed, failed: record.accepted.failed, success_waived: record.accepted.successWaived },
    stop_sha256: rolloutStopHash(record, sha256), requested_by: input.requestedBy, reason: input.reason, requested_at: input.requestedAtMs, expires_at: input.expiresAtMs,
  };
}

/** The hash approvers sign (the statement's `command_sha256`): SHA-256 of the subject's canonical JSON, lower-case hex. */
export function rolloutResumeSubjectHash(subject: RolloutResumeSubject, sha256: Sha256): string {
  return hexFromBytes(sha256(canonicalBytes(subject as unknown as JsonObject)));
}

/**
 * Why the rollout as it is now is no longer the stop the request was asked for, or undefined when
 * it still is: paused, the same record (no resume, pause or wave change since), the same safety
 * stop, and the wave's figures unchanged (an execution that ended meanwhile would make the resume
 * accept more than the approvers saw).
 */
export function rolloutResumeStaleness(subject: RolloutResumeSubject, now: { readonly record: RolloutRecord; readonly stop: SafetyStopReason | null; readonly stats: WaveStats | undefined }, sha256: Sha256): string | undefined {
  if (now.record.status !== 'paused') return `the rollout is ${now.record.status}, no longer paused`;
  if (rolloutStopHash(now.record, sha256) !== subject.stop_sha256) return 'the rollout was resumed, paused again or moved on since the request: another stop';
  if (now.stop !== subject.safety_stop) return `the safety stop is now ${now.stop ?? 'none'}, not ${subject.safety_stop}`;
  const s = now.stats;
  const asked = subject.wave_stats;
  if (s === undefined || s.size !== asked.size || s.executed !== asked.executed || s.failed !== asked.failed || s.succeeded !== asked.succeeded) {
    return `the wave's figures changed since the request (${asked.failed} of ${asked.executed} failed then, ${s?.failed ?? '?'} of ${s?.executed ?? '?'} now)`;
  }
  return undefined;
}
