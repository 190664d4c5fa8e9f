import { hexFromBytes } from '../crypto/bytes.js';
import type { Sha256 } from '../ports/ports.js';
import { canonicalBytes } from '../protocol/canonical-json.js';
import type { JsonObject } from '../protocol/json-value.js';
import type { RolloutRecord } from './rollout-decisions.js';

/**
 * What approvers of a rollout approve (docs/ota.md "Rollouts that need approvals", decision 0005):
 * the rollout's id and its exact content: the release and its artifact (path, length, SHA-256 and
 * SHA-512, release counter, version), the platform, every wave's devices and thresholds, the rate,
 * who asked and until when approvals may come. An approver signs the ordinary approval statement
 * (core/protocol/approvals.ts) with `command_id` the rollout's id and `command_sha256` this
 * subject's hash, so the signing, the checks and the stored decisions are the commands' own; the
 * `kind` field keeps a rollout's subject from ever hashing like a command's.
 *
 * Pure: the hash function comes in. The approver's CLI recomputes the hash from the subject the
 * API shows, so it signs what it displayed, not a hash the control plane handed it.
 */
export interface RolloutApprovalSubject {
  readonly kind: 'ota_rollout';
  readonly id: string;
  readonly release_id: string;
  readonly platform: string;
  readonly target: {
    readonly path: string; readonly length: number; readonly sha256: string; readonly sha512: string; readonly release_counter: number; readonly version: string;
  };
  readonly waves: ReadonlyArray<{
    readonly devices: readonly string[];
    readonly success_threshold: { readonly succeeded_min: number; readonly succeeded_percent_min: number; readonly soak_ms: number };
    readonly error_threshold: { readonly executed_min: number; readonly failed_percent_max: number };
  }>;
  readonly devices_per_minute_max: number;
  /** Approvals count only until this time (ms since the epoch); then the rollout ends `expired`. */
  readonly expires_at: number;
  /** The key id of the control plane's command key, which signs the kernel commands once it starts. */
  readonly issuer: string;
  readonly requested_by: string;
}

/** The release facts a subject names (from the published release the rollout was started with). */
export interface RolloutApprovalTarget {
  readonly releaseId: string;
  readonly path: string;
  readonly length: number;
  readonly sha256: string;
  readonly sha512: string;
  readonly releaseCounter: number;
  readonly version: string;
}

export function rolloutApprovalSubject(input: {
  readonly record: RolloutRecord; readonly platform: string; readonly target: RolloutApprovalTarget;
  readonly expiresAtMs: number; readonly issuer: string; readonly requestedBy: string;
}): RolloutApprovalSubject {
  const { record, target } = input;
  return {
    kind: 'ota_rollout', id: record.rolloutId, release_id: target.releaseId, platform: input.platform,
    target: { path: target.path, length: target.length, sha256: target.sha256, sha512: target.sha512, release_counter: target.releaseCounter, version: target.version },
    waves: record.waves.map((devices, index) => {
      const wave = record.plan.waves[index]!;
      return {
        devices: [...devices],
        success_threshold: { succeeded_min: wave.successThreshold.succeededMin, succeeded_percent_min: wave.successThreshold.succeededPercentMin, soak_ms: wave.successThreshold.soakMs },
        error_threshold: { executed_min: wave.errorThreshold.executedMin, failed_percent_max: wave.errorThreshold.failedPercentMax },
      };
    }),
    devices_per_minute_max: record.plan.devicesPerMinuteMax, expires_at: input.expiresAtMs, issuer: input.issuer, requested_by: input.requestedBy,
  };
}

/** Lower-case hex SHA-256 of the canonical subject (RFC 8785): the `command_sha256` approvers sign. */
export function rolloutApprovalSubjectHash(subject: RolloutApprovalSubject, sha256: Sha256): string {
  return hexFromBytes(sha256(canonicalBytes(subject as unknown as JsonObject)));
}
