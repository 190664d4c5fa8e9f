import { concatBytes, hexFromBytes } from '../crypto/bytes.js';
import type { Ed25519Provider, Sha256 } from '../ports/ports.js';
import { countEmbeddedApprovals, type ApprovalRefusal, type ApprovalVerdict, type ApproverKey } from '../protocol/approvals.js';
import { canonicalBytes } from '../protocol/canonical-json.js';
import type { JsonObject } from '../protocol/json-value.js';
import type { RolloutApprovalBlock, SignedCommand } from '../protocol/messages/command.js';
import type { ApprovalCondition } from '../protocol/policy.js';
import { deviceMerkleRoot, deviceMerkleRootOf, deviceMerkleTree, type DeviceMerkleTree } from './device-merkle.js';
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
  /**
   * 2 (since 2026-12-06): the hash is over the reduced subject (reducedRolloutSubject: each wave's
   * devices as a Merkle root, each wave as one digest), so a device can check its own kernel
   * commands' approvals. Absent: a subject from before, hashed whole as it always was (a rollout
   * that waited for approvals across the upgrade is still approved the old way; its commands carry
   * no approval block).
   */
  readonly v?: 2;
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

/** The subject version new rollouts get; `version: 1` builds the earlier one (no `v`) to re-derive a rollout stored with it. */
export const rolloutApprovalSubjectVersion = 2;

export function rolloutApprovalSubject(input: {
  readonly record: RolloutRecord; readonly platform: string; readonly target: RolloutApprovalTarget;
  readonly expiresAtMs: number; readonly issuer: string; readonly requestedBy: string; readonly version?: 1 | 2;
}): RolloutApprovalSubject {
  const { record, target } = input;
  return {
    kind: 'ota_rollout', ...((input.version ?? rolloutApprovalSubjectVersion) === 2 ? { v: 2 as const } : {}), id: record.rolloutId, release_id: target.releaseId, platform: input.platform,
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

/**
 * The subject as its hash is computed, for a subject of version 2: each wave's device list replaced
 * by its Merkle root and member count (core/ota/device-merkle.ts), and each wave then by one digest
 * (rolloutWaveDigest), so the reduced subject a kernel command carries stays small (64 waves are
 * 64 digests) and a device rebuilds its own wave's digest from its path. Everything else is the
 * subject's, field for field.
 */
export interface ReducedRolloutSubject extends Omit<RolloutApprovalSubject, 'waves' | 'v'> {
  readonly v: 2;
  readonly waves: readonly string[];
}

/** One wave as its digest covers it. */
export interface RolloutWaveFacts {
  readonly devices_count: number;
  readonly devices_root: string;
  readonly success_threshold: RolloutApprovalSubject['waves'][number]['success_threshold'];
  readonly error_threshold: RolloutApprovalSubject['waves'][number]['error_threshold'];
}

const waveDigestPrefix = new TextEncoder().encode('sdc-rollout-wave-v1\n');

/** Lower-case hex SHA-256 of the prefix and the wave's canonical facts. */
export function rolloutWaveDigest(wave: RolloutWaveFacts, sha256: Sha256): string {
  const { devices_count, devices_root, success_threshold, error_threshold } = wave;
  return hexFromBytes(sha256(concatBytes(waveDigestPrefix, canonicalBytes({ devices_count, devices_root, success_threshold, error_threshold } as unknown as JsonObject))));
}

/** A wave's facts: its devices' root and count, its thresholds. */
export function rolloutWaveFacts(wave: RolloutApprovalSubject['waves'][number], sha256: Sha256): RolloutWaveFacts {
  const { root, count } = deviceMerkleRoot(wave.devices, sha256);
  return { devices_count: count, devices_root: root, success_threshold: wave.success_threshold, error_threshold: wave.error_threshold };
}

export function reducedRolloutSubject(subject: RolloutApprovalSubject, sha256: Sha256): ReducedRolloutSubject {
  const { waves, v: _v, ...rest } = subject;
  return { ...rest, v: 2, waves: waves.map((wave) => rolloutWaveDigest(rolloutWaveFacts(wave, sha256), sha256)) };
}

/** Lower-case hex SHA-256 of a reduced subject (RFC 8785): what approvers of a version-2 subject sign. */
export function reducedRolloutSubjectHash(reduced: ReducedRolloutSubject, sha256: Sha256): string {
  const { kind, v, id, release_id, platform, target, waves, devices_per_minute_max, expires_at, issuer, requested_by } = reduced;
  return hexFromBytes(sha256(canonicalBytes({ kind, v, id, release_id, platform, target, waves, devices_per_minute_max, expires_at, issuer, requested_by } as unknown as JsonObject)));
}

/**
 * The `command_sha256` approvers sign, from the full subject the API shows: the one function the
 * approver's CLI, the console and the control plane all call. Version 2: the reduced subject's
 * hash (the roots computed here from the full lists, so an approver hashes what they saw); no
 * version: the whole subject's canonical hash, as before 2026-12-06.
 */
export function rolloutApprovalSubjectHash(subject: RolloutApprovalSubject, sha256: Sha256): string {
  if (subject.v === 2) return reducedRolloutSubjectHash(reducedRolloutSubject(subject, sha256), sha256);
  return hexFromBytes(sha256(canonicalBytes(subject as unknown as JsonObject)));
}

/** The kernel commands' block for one device of a started rollout; undefined when the device is in none of the subject's waves (or the subject is of version 1). */
export function rolloutApprovalBlock(input: {
  readonly subject: RolloutApprovalSubject;
  /** The rollout's start: the approvals had to hold then. */
  readonly startedAtMs: number;
  readonly approvals: ReadonlyArray<{ readonly approver: string; readonly kid: string; readonly expires_at: number; readonly signature: string }>;
  readonly waveIndex: number;
  readonly deviceId: string;
  /** The reduced subject and the wave's tree, when the caller keeps them between devices (built here otherwise). */
  readonly reduced?: ReducedRolloutSubject;
  readonly tree?: DeviceMerkleTree;
  readonly sha256: Sha256;
}): RolloutApprovalBlock | undefined {
  const { subject, sha256 } = input;
  const wave = subject.waves[input.waveIndex];
  if (subject.v !== 2 || wave === undefined || input.approvals.length === 0) return undefined;
  const tree = input.tree ?? deviceMerkleTree(wave.devices, sha256);
  const path = tree.pathOf(input.deviceId);
  if (path === undefined) return undefined;
  return {
    subject: (input.reduced ?? reducedRolloutSubject(subject, sha256)) as RolloutApprovalBlock['subject'],
    started_at: input.startedAtMs,
    approvals: input.approvals.map((a) => ({ approver: a.approver, kid: a.kid, decision: 'approve' as const, expires_at: a.expires_at, sig: a.signature })),
    wave: {
      index: input.waveIndex, devices_count: tree.count, success_threshold: wave.success_threshold, error_threshold: wave.error_threshold,
      position: path.position, siblings: [...path.siblings],
    },
  };
}

/**
 * The device's check of a rollout kernel command's approvals (`rollout_approval`) against the
 * approval condition its policy bundle names, after the command's signature verified: the block
 * is about this command (its issuer is the command's signer, its requester the command's, its
 * target what the command stages or commits, the start no later than the command), the device's
 * path leads to its wave's digest in the subject, the start is before the subject's expiry, and
 * at least `condition.count` distinct approvers of an accepted role signed the reduced subject's
 * hash with approvals that held at the start. Since 2026-12-06 (review h12) an approval whose key
 * the device's bundle does not hold, or whose approver's role it does not accept, is not counted
 * rather than refusing the command (the bundle may have changed between waves); any other bad
 * approval (a signature that does not verify under a known key, a duplicate, the requester's own)
 * still refuses it. Refusals: APPROVAL_INSUFFICIENT (no block, too few), APPROVAL_KEY_UNKNOWN or
 * APPROVAL_ROLE_NOT_ALLOWED (too few once those are left out), APPROVAL_EXPIRED (a start at or
 * after the subject's expiry), APPROVAL_STATEMENT_MISMATCH (another command's or another release's
 * block, a commit without the digest), APPROVAL_DEVICE_PROOF_INVALID (the path does not put this
 * device in the wave), and checkApproval's.
 */
export function verifyRolloutCommandApprovals(options: {
  readonly command: SignedCommand;
  readonly condition: ApprovalCondition;
  readonly resolveApproverKey: (kid: string) => ApproverKey | undefined;
  readonly provider: Ed25519Provider;
  readonly sha256: Sha256;
}): ApprovalVerdict {
  const { command, condition, sha256 } = options;
  const block = command.rollout_approval;
  if (block === undefined) return { valid: false, code: 'APPROVAL_INSUFFICIENT', reason: `command ${command.id} carries no approvals; ${condition.count} required` };
  const { subject } = block;
  const mismatch = rolloutBlockMismatch(command, block);
  if (mismatch !== undefined) return { valid: false, code: 'APPROVAL_STATEMENT_MISMATCH', reason: `the rollout approvals of command ${command.id} ${mismatch}` };
  const digest = subject.waves[block.wave.index];
  const root = digest === undefined ? undefined : deviceMerkleRootOf(command.device_id, block.wave, block.wave.devices_count, sha256);
  if (digest === undefined || root === undefined || rolloutWaveDigest({ ...block.wave, devices_root: root }, sha256) !== digest) {
    return { valid: false, code: 'APPROVAL_DEVICE_PROOF_INVALID', reason: `the path in command ${command.id} does not place ${command.device_id} in wave ${block.wave.index} of rollout ${subject.id}` };
  }
  // Approvals count only until the subject's expiry: a start at or after it is not one they allowed.
  if (!(block.started_at < subject.expires_at)) {
    return { valid: false, code: 'APPROVAL_EXPIRED', reason: `the approvals of rollout ${subject.id} counted until ${subject.expires_at}; command ${command.id} names a start at ${block.started_at}` };
  }
  // What this device's bundle says about an approver (its key, its role) may have changed since the
  // start, waves apart: such an approval is not counted, and the others may still be enough. Any
  // other refusal is an approval that is present and wrong (a bad signature by a key the device
  // knows, another subject's statement, the requester's own, expired at the start): tampering or a
  // control plane that lies, so the command is refused whatever else it carries.
  return countEmbeddedApprovals({
    approvals: block.approvals, subjectId: subject.id, subjectSha256: reducedRolloutSubjectHash(subject as ReducedRolloutSubject, sha256),
    requestedBy: subject.requested_by, atMs: block.started_at, condition, resolveApproverKey: options.resolveApproverKey, provider: options.provider,
    uncounted: uncountedCodes,
  });
}

/**
 * Refusals of one approval that leave it uncounted instead of refusing the command: the device's
 * bundle no longer holds the approver's key (removed or rotated after the start), or no longer
 * gives the approver an accepted role. Neither is evidence that anyone tampered with the block.
 */
const uncountedCodes: ReadonlySet<ApprovalRefusal['code']> = new Set(['APPROVAL_KEY_UNKNOWN', 'APPROVAL_ROLE_NOT_ALLOWED']);

/** Why the block is not about this command, in words; undefined when it is. */
function rolloutBlockMismatch(command: SignedCommand, block: RolloutApprovalBlock): string | undefined {
  const { subject } = block;
  if (subject.issuer !== command.sig.kid || subject.issuer !== command.issuer) return `name issuer ${subject.issuer}, not the command's signer ${command.sig.kid}`;
  if (command.requester !== undefined && command.requester.name !== subject.requested_by) return `were asked by ${subject.requested_by}, not the command's requester ${command.requester.name}`;
  if (block.started_at > command.issued_at) return `are from a start (${block.started_at}) after the command was issued (${command.issued_at})`;
  const args = command.args as Record<string, unknown>;
  const { target } = subject;
  switch (command.opcode) {
    case 'EXEC_STAGE_UPDATE':
      if (args['sha256'] !== target.sha256 || args['size_bytes'] !== target.length || args['version'] !== target.version) return `approve ${target.version} (${target.sha256}, ${target.length} bytes), not what the command stages`;
      return undefined;
    case 'EXEC_COMMIT_UPDATE':
      // The control plane always names the digest (rollouts.ts); a commit without it is bound by version only, so it is refused.
      if (args['version'] !== target.version || args['sha256'] !== target.sha256) return `approve ${target.version} (${target.sha256}), not what the command commits`;
      return undefined;
    case 'EXEC_ROLLBACK_UPDATE':
      return undefined;
    default:
      return `approve an update, not ${command.opcode}`;
  }
}
