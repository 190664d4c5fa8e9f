import { assert, SdcError } from '../../core/errors/index.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { directorSignedJson, directorSigningBytes, directorLimits, type DirectorDocument } from '../../core/ota/director.js';
import { noticeStateSeq, signNoticeState, type NoticeStateEnvelope } from '../../core/ota/notice-state.js';
import {
  decideExecutionEvent, decideExecutionTimeout, decideVersionReport, executionDeadline, type ExecutionDecision,
} from '../../core/ota/execution-decisions.js';
import { defaultExecutionTimeouts, executionTable, type ExecutionEvent, type ExecutionState, type ExecutionTimeouts } from '../../core/ota/execution-machine.js';
import {
  decideOperatorAction, decideRollout, safetyStopOf as coreSafetyStopOf, startRollout, waveStats, type Executions, type OperatorAction, type RolloutPlan,
  type RolloutRecord, type WaveStats,
} from '../../core/ota/rollout-decisions.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import { commandRequester, type CommandRequester, type RolloutApprovalBlock, type SignedCommand } from '../../core/protocol/messages/command.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import type { OtaReportEvent } from '../../core/protocol/messages/ota.js';
import { signCommand } from '../../core/protocol/signed-command.js';
import { isTerminal } from '../../core/protocol/state-machine.js';
import { parseStrictJson } from '../../core/protocol/strict-json.js';
import { otaChannels, otaKeys } from '../bus-contract/ota-keys.js';
import { actors, newId, type ServiceContext } from '../control-plane/context.js';
import { nextCounterValue } from '../control-plane/stores/counters.js';
import { deviceSeqCounterName } from '../control-plane/command-device-seqs.js';
import type { ServiceSigner } from '../materials/materials.js';
import type { SqlExecutor } from '../stores/sql/sql-port.js';
import type { ReleaseService, ReleaseView } from './releases.js';
import {
  judgeRolloutDevices, refusalNoticeJson, releaseVerdicts, storedRefusal, type DeviceVerdict, type GatedCommand, type PolicyRefusal, type RolloutJudgement, type RolloutPolicyPort,
} from './rollout-policy.js';
import {
  executionsOfRollout, insertExecution, insertRollout, installedReleaseCounter, listRollouts, moveExecution, readExecution, readRollout,
  runningRolloutIds, updateRolloutRecord, type RolloutApproval, type StoredExecution, type StoredRollout,
} from './rollout-store.js';
import {
  reducedRolloutSubject, rolloutApprovalBlock, rolloutApprovalSubject, rolloutApprovalSubjectHash, type ReducedRolloutSubject, type RolloutApprovalSubject,
} from '../../core/ota/rollout-approval.js';
import { deviceMerkleTree, type DeviceMerkleTree } from '../../core/ota/device-merkle.js';
import { approvalLimits } from '../../core/protocol/approvals.js';
import type { PolicyActor, PolicyRole } from '../../core/protocol/policy.js';
import type { SigningKeyStore } from '../control-plane/signing-keys.js';
import { RolloutApprovalFlow, type RolloutDecisionSubmission, type RolloutDecisionView } from './rollout-approvals.js';
import {
  RolloutResumeFlow, type ResumeDecisionSubmission, type ResumeRequestView, type ResumeVerdict, type SafetyStop,
} from './rollout-resume-approvals.js';
import { createHash } from 'node:crypto';

/**
 * The rollout coordinator in the control plane (issue 10, docs/ota.md "Rollouts"): it stores
 * rollouts and their executions (rollout-store.ts) and performs what core/ota decides, on the
 * control plane's clock (a ManualClock in tests):
 * - `start` judges every device against the command policy for the rollout's STAGE and COMMIT
 *   (rollout-policy.ts: refused when every device is denied, or when any needs approvals), fixes
 *   the waves (assignWaves) and ticks once;
 * - `tick` asks decideRollout which devices to notify now (current wave only, within the rate);
 *   each is judged against the policy again (it may have changed since the start): a denied
 *   device's execution ends at once, `canceled` with the policy's code and reason; each allowed
 *   device gets an execution and a notice: the director's document (Uptane: this device, this
 *   rollout, wave and execution, exactly one target, short-lived) and the kernel's STAGE, COMMIT
 *   and ROLLBACK commands signed with the command key, so the kernel accepts exactly this digest
 *   and version; the notice goes to the device's gateway through the key/value store; each
 *   execution's STAGE and COMMIT take places in the policy's rate limits as commands do, and a
 *   device refused a place ends like a denied one (COMMAND_RATE_LIMITED);
 * - `onReport` applies a device's signed OTA_REPORT through decideExecutionEvent, and a version
 *   report through decideVersionReport (the only way to `succeeded`);
 * - `sweep` times executions out (every one ends: hawkBit #693) and ticks running rollouts;
 * - `act` performs pause, resume, abort and emergency abort (decideOperatorAction), canceling
 *   what that decides and telling the devices.
 * One control plane at a time coordinates a rollout: every transition is a compare-and-set on
 * the execution's state, so a second one never double-applies, but notifying is not leased.
 */

export interface RolloutServiceOptions {
  readonly context: ServiceContext;
  readonly releases: ReleaseService;
  /** The control plane's command key: signs the kernel commands and, as the director key, the director's documents. */
  readonly signer: ServiceSigner;
  /** Verifies a device-signed frame against the enrolled key (DeviceService.verifyDeviceFrame). */
  readonly verifyReportFrame: (deviceId: string, frame: string) => Promise<MessageBody<'OTA_REPORT'>>;
  /** The command policy every device is judged by for the rollout's STAGE and COMMIT, as its creator (rollout-policy.ts). */
  readonly policy: RolloutPolicyPort;
  readonly timeouts?: ExecutionTimeouts;
  /** Lifetime of a director's document; at most directorLimits.lifetimeMsMax. */
  readonly directorLifetimeMs?: number;
  /** Counts executions by final state (the metrics hook), when the control plane has one. */
  readonly onExecutionFinished?: (state: ExecutionState) => void;
  /** Counts `notice_refused` reports taken but not audited, by why (the metrics hook): see #noticeRefused. */
  readonly onNoticeRefusalUnaudited?: (reason: NoticeRefusalUnaudited) => void;
  /** Counts `artifact_url_expired` reports answered without a new URL, by why (the metrics hook): see #artifactUrlExpired. */
  readonly onArtifactUrlNotRenewed?: (reason: ArtifactUrlNotRenewed) => void;
  /** Lifetime of the presigned artifact URL in each notice (60..3600 s; default artifactUrlExpirySecondsDefault). */
  readonly artifactUrlExpirySeconds?: number;
  /**
   * The kernel's commit watchdog window, signed into each COMMIT command (the kernel requires the
   * agent to pass exactly this): default commitWatchdogMsDefault, within the kernel's 100 ms..24 h.
   */
  readonly commitWatchdogMs?: number;
  /**
   * At most one push of an execution's notice per this interval for a report that shows the device
   * missed it (default noticeRepushIntervalMsDefault): every notice makes the agent send its reports
   * again, and those repeats must not push it again at once.
   */
  readonly noticeRepushIntervalMs?: number;
  /**
   * The approval flow for rollouts the policy lets start only with approvals (rollout-approvals.ts):
   * the approvers' registered signing keys. Without it such a start is refused with
   * OTA_ROLLOUT_APPROVAL_REQUIRED, as before rollouts could wait.
   */
  readonly approvals?: { readonly signingKeys: Pick<SigningKeyStore, 'byKid'> };
}

/** How long a rollout waits for approvals unless its start says otherwise: a working day and a night. */
export const rolloutApprovalWindowMsDefault = 24 * 3_600_000;
/** The longest wait a start may ask for: approvals of a week-old plan are approvals of a stale fleet. */
export const rolloutApprovalWindowMsMax = 7 * 24 * 3_600_000;

/** Below the agent's report re-send interval (half a step timeout by default), far above a round trip. */
export const noticeRepushIntervalMsDefault = 5_000;
/** Approved rollouts' waves whose device tree is kept between ticks (a wave of a million devices is a tree of about 64 MB and its ids: few are kept). */
const approvalTreesKept = 4;
/** Executions whose last re-push time is kept (the oldest forgotten first): a bound, not a cache that matters past a few minutes. */
const noticeRepushesTracked = 4_096;

/**
 * Why a `notice_refused` report was not audited: `repeat`, one was audited already for its
 * execution and code (a replayed frame, or the agent's next report of the same refusal);
 * `ended`, its execution is over (the control plane no longer pushes its news).
 */
export type NoticeRefusalUnaudited = 'repeat' | 'ended';
/** The codes the agent refuses a notice with (core/ota/notice-state.ts); any other is one more key, `other`, so a device has at most five per execution. */
const noticeRefusalCodes: ReadonlySet<string> = new Set(['OTA_NOTICE_STATE_UNSIGNED', 'OTA_NOTICE_STATE_SIGNATURE', 'OTA_NOTICE_STATE_BINDING', 'OTA_NOTICE_STATE_REPLAYED']);
/** The `counters` row whose presence says this execution's refusal with this code was audited (a durable mark: a restart does not audit it again). */
export function noticeRefusedCounterName(executionId: string, code: string): string {
  return `ota_notice_refused:${executionId}:${noticeRefusalCodes.has(code) ? code : 'other'}`;
}

/**
 * Why an `artifact_url_expired` report got no new URL: `reannounced`, the newest URL the control
 * plane issued for the execution is still good for more than a quarter of its lifetime, so the
 * stored notice (which carries it) was announced again and nothing was signed (the device may
 * have missed that notice, or its clock runs ahead); `unexpired`, the same but announced again
 * within noticeRepushIntervalMs already, so nothing was done (a replayed frame); `ended`, the
 * execution is over.
 */
export type ArtifactUrlNotRenewed = 'reannounced' | 'unexpired' | 'ended';

/** Reboot, health check and the control plane's nonce all fit in it; a device silent for longer is rolled back by its kernel. */
export const commitWatchdogMsDefault = 15 * 60_000;

/** A quarter hour: long enough for a slow download to start (it resumes with a fresh URL if it outlives it), short enough to be worthless when leaked. */
export const artifactUrlExpirySecondsDefault = 900;

/** Devices a refused start names in its error and audit entry (the count says how many there were). */
export const rolloutRefusalDevicesNamedMax = 20;

export interface StartRolloutInput {
  readonly releaseId: string;
  /** The platform the director names; one of the release's platforms. */
  readonly platform: string;
  readonly deviceIds: readonly string[];
  readonly plan: RolloutPlan;
  /** How long the rollout may wait for approvals, when the policy requires some (default rolloutApprovalWindowMsDefault). */
  readonly approvalWindowMs?: number;
}

/** A rollout's approval wait as the API shows it (null for a rollout that needed none). */
export interface RolloutApprovalView {
  readonly rule_id: string;
  readonly count: number;
  readonly roles: readonly PolicyRole[];
  readonly policy_revision: number;
  readonly expires_at_ms: number;
  /** What approvers sign: `subject_sha256` is core rolloutApprovalSubjectHash of it, recomputed by the approver's CLI. */
  readonly subject: RolloutApprovalSubject;
  readonly subject_sha256: string;
  readonly decisions: readonly RolloutDecisionView[];
  readonly outcome: { readonly state: string; readonly at_ms: number; readonly by: string; readonly code?: string; readonly approvers?: readonly string[] } | null;
}

export interface RolloutView {
  readonly id: string;
  readonly release_id: string;
  readonly status: RolloutRecord['status'];
  readonly pause_reason: RolloutRecord['pauseReason'];
  readonly wave_index: number;
  readonly waves: ReadonlyArray<{ readonly devices: readonly string[]; readonly size: number; readonly started: number; readonly succeeded: number; readonly failed: number; readonly terminal: number }>;
  readonly executions: ReadonlyArray<{
    readonly id: string; readonly device_id: string; readonly wave: number; readonly state: ExecutionState; readonly created_at_ms: number; readonly ended_at_ms: number | null;
    readonly last_error_code: string | null;
    /** Set when the policy refused the device: its execution ended `canceled` without a notice. */
    readonly policy_refusal?: PolicyRefusal;
  }>;
  readonly created_by: string;
  readonly created_at_ms: number;
  readonly updated_at_ms: number;
  readonly approval: RolloutApprovalView | null;
  /** The latest request to resume past a safety stop with approvals (decision 0019), waiting or ended; null when none was asked. */
  readonly resume_request: ResumeRequestView | null;
}

/** What the policy says about one operator resuming a paused rollout now (GET /v1/rollouts/{id}/resume-authority; the console's Resume button). */
export interface ResumeAuthorityView {
  readonly status: RolloutRecord['status'];
  readonly safety_stop: SafetyStop['reason'] | null;
  /** `allowed`: resume; `approval_required`: request a resume, approvers decide; `denied`: the policy does not let them; `not_paused`: nothing to resume. */
  readonly verdict: 'allowed' | 'approval_required' | 'denied' | 'not_paused';
  readonly code?: string;
  readonly message?: string;
}

/** The notice as stored per execution: everything but the health nonce and the cancel flag, which come from the row. */
type StoredNotice = Omit<MessageBody<'OTA_NOTICE'>, 'health_nonce' | 'cancel' | 'notice_state'> & { readonly platform: string };

/** Device events a report may carry, mapped to the execution table's (version_report and canceled are handled apart). */
const reportEvents: Readonly<Record<Exclude<OtaReportEvent, 'version_report' | 'canceled' | 'artifact_url_expired' | 'notice_refused'>, ExecutionEvent>> = {
  accept: 'accept', refuse: 'refuse', precheck_pass: 'precheck_pass', download_complete: 'download_complete', download_fail: 'download_fail',
  verify_fail: 'verify_fail', stage: 'stage', stage_fail: 'stage_fail', commit: 'commit', commit_fail: 'commit_fail', reboot: 'reboot',
  reboot_fail: 'reboot_fail', rebooted: 'rebooted', health_check_start: 'health_check_start', watchdog_rollback: 'watchdog_rollback',
  rollback_complete: 'rollback_complete', rollback_fail: 'rollback_fail',
};

/**
 * Whether the device's notice must say cancel: the execution was canceled before its commit, or a
 * cancel after the commit is being rolled back (canceled_at, migration 019; a rollback the device's
 * own failed health check started has none, and a finished rollback needs no notice).
 */
function tellsCancel(execution: StoredExecution): boolean {
  return execution.state === 'canceled' || (execution.state === 'rolling_back' && execution.canceledAtMs !== null);
}

export class RolloutService {
  readonly #ctx: ServiceContext;
  readonly #o: RolloutServiceOptions;
  readonly #timeouts: ExecutionTimeouts;
  /** One tick per rollout at a time in this process: notifying twice would create two executions (the unique index refuses the second). */
  readonly #ticking = new Map<string, Promise<void>>();
  readonly #noticeRepushIntervalMs: number;
  /**
   * The first tick's devices judged by `start` with their rate-limit places taken, handed to that
   * tick (the first #tickNow of the rollout uses them instead of taking places again); whatever it
   * does not use is given back when `start` ends. At most one entry per `start` in progress.
   */
  readonly #placesAtStart = new Map<string, RolloutJudgement>();
  /** When each execution's notice was last pushed again for a missed one (#repushIfMissed), oldest first. */
  readonly #repushedAtMs = new Map<string, number>();
  readonly #approvals: RolloutApprovalFlow | undefined;
  /** Approvals for a resume past a safety stop (rollout-resume-approvals.ts); with the start's flow, or not at all. */
  readonly #resumes: RolloutResumeFlow | undefined;
  /** Per approved rollout and wave, its reduced subject and the wave's device tree, kept for the wave's next devices (the last few only). */
  readonly #approvalTrees = new Map<string, { reduced: ReducedRolloutSubject; tree: DeviceMerkleTree }>();

  constructor(options: RolloutServiceOptions) {
    this.#ctx = options.context;
    this.#o = options;
    this.#timeouts = options.timeouts ?? defaultExecutionTimeouts;
    const repushMs = options.noticeRepushIntervalMs ?? noticeRepushIntervalMsDefault;
    assert(Number.isSafeInteger(repushMs) && repushMs >= 1, 'noticeRepushIntervalMs must be a positive integer');
    this.#noticeRepushIntervalMs = repushMs;
    this.#approvals = options.approvals === undefined ? undefined : new RolloutApprovalFlow({
      context: options.context, policy: options.policy, signingKeys: options.approvals.signingKeys,
      stillWaiting: (rollout, approvals, nowMs) => this.#stillWaiting(rollout, approvals, nowMs),
      started: (rolloutId) => this.tick(rolloutId),
    });
    this.#resumes = options.approvals === undefined ? undefined : new RolloutResumeFlow({
      context: options.context, policy: options.policy, signingKeys: options.approvals.signingKeys,
      stopOf: async (rollout) => {
        const executions = await executionsOfRollout(this.#ctx.db, rollout.id);
        return { executions: coordinatorView(executions), stop: safetyStopOf(rollout.record, executions) };
      },
      judge: async (rollout, _stop, resumer, approvals, nowMs) => this.#resumeVerdict(rollout, await executionsOfRollout(this.#ctx.db, rollout.id), resumer, approvals, nowMs),
      refuse: (rollout, stop, actor, verdict) => this.#refuseResume(rollout, stop, actor, verdict),
      resumed: (rolloutId) => this.tick(rolloutId),
    });
  }

  async start(input: StartRolloutInput, actor: string): Promise<RolloutView> {
    const release = await this.#o.releases.get(input.releaseId).catch((error: unknown) => {
      throw SdcError.is(error, 'OTA_RELEASE_NOT_FOUND') ? new SdcError('OTA_ROLLOUT_RELEASE_NOT_PUBLISHED', error.message) : error;
    });
    if (release.state !== 'published') throw new SdcError('OTA_ROLLOUT_RELEASE_NOT_PUBLISHED', `release ${release.id} is ${release.state}, not published`);
    const platforms = (release.custom['sdc'] as { platforms?: unknown } | undefined)?.platforms;
    if (!Array.isArray(platforms) || !platforms.includes(input.platform)) {
      throw new SdcError('OTA_ROLLOUT_PLAN_INVALID', `release ${release.id} is not for platform ${input.platform}`);
    }
    const id = newId('ro', this.#ctx.random).replace('_', '-');
    const record = startRollout(id, input.plan, input.deviceIds);
    const nowMs = this.#ctx.clock.nowMs();
    await this.#requireDevices(this.#ctx.db, input.deviceIds);
    const denied = await this.#judgeAtStart(release, input, actor, nowMs);
    if (denied.approval !== undefined) return this.#startWaiting(release, input, actor, record, denied.approval, nowMs);
    const first = await this.#takeFirstPlaces(release, input, actor, record, nowMs);
    let handed = false;
    try {
      await this.#ctx.db.transaction(async (tx) => {
        await this.#requireDevices(tx, input.deviceIds);
        await insertRollout(tx, { id, releaseId: release.id, platform: input.platform, record, createdBy: actor, createdAtMs: nowMs, updatedAtMs: nowMs, approval: null });
        await this.#ctx.audit.record(tx, {
          kind: 'ota.rollout.started', actor: actors.user(actor), subject: `rollout:${id}`,
          payload: { release_id: release.id, platform: input.platform, devices: input.deviceIds.length, waves: record.waves.length, policy_denied: denied.count, policy_revision: denied.revision },
        });
      });
      await this.#ctx.settleAudit();
      this.#placesAtStart.set(id, first);
      handed = true;
      await this.tick(id);
    } finally {
      // Not stored: every place is given back. Stored: the first tick took the judgement and gave back
      // what it did not use; if no tick took it (it failed before), its places are given back here.
      if (!handed) {
        await releaseVerdicts(first.verdicts.values());
      } else if (this.#placesAtStart.get(id) === first) {
        this.#placesAtStart.delete(id);
        await releaseVerdicts(first.verdicts.values());
      }
    }
    return this.view(id);
  }

  /**
   * The devices the first tick will notify (decideRollout on no executions: the first wave, within
   * devicesPerMinuteMax), judged with their rate-limit places taken. When none of them gets one and
   * a rate limit is why, the start is refused with COMMAND_RATE_LIMITED (audited, every place given
   * back): a rollout whose first wave cannot update any device is not started. Devices refused for
   * other reasons with others allowed go on as before (they end canceled at the tick).
   */
  async #takeFirstPlaces(release: ReleaseView, input: StartRolloutInput, actor: string, record: RolloutRecord, nowMs: number): Promise<RolloutJudgement> {
    const notify = decideRollout(record, new Map(), nowMs).notify;
    const judgement = await judgeRolloutDevices(this.#o.policy, { requester: actor, deviceIds: notify, commands: this.#gatedCommands(release), nowMs, places: 'take' });
    const verdicts = [...judgement.verdicts];
    if (verdicts.some(([, verdict]) => verdict.allowed)) return judgement;
    const refusals = verdicts.flatMap(([deviceId, verdict]) => (verdict.allowed ? [] : [{ deviceId, ...verdict.refusal }]));
    const limited = refusals.filter((refusal) => refusal.code === 'COMMAND_RATE_LIMITED');
    if (limited.length === 0) return judgement;
    return this.#refuseStart(release, input, actor, judgement.revision, 'COMMAND_RATE_LIMITED', limited,
      `the policy's rate limit leaves no place for the rollout's first devices: ${limited[0]!.reason} (${limited[0]!.opcode}); start it when the window has room, or with fewer devices per minute`);
  }

  /**
   * The policy's word on every device before anything is stored (rollout-policy.ts): when any
   * device needs approvals, what the rollout must wait for (refused with OTA_ROLLOUT_APPROVAL_REQUIRED
   * on a service built without the approval flow), and
   * with OTA_ROLLOUT_POLICY_DENIED when every device is denied; each refusal audited. Otherwise the
   * number of devices denied now (each is judged again when its turn comes, and ends then).
   */
  async #judgeAtStart(release: ReleaseView, input: StartRolloutInput, actor: string, nowMs: number): Promise<{ count: number; revision: number; approval?: WaitFor }> {
    const judgement = await judgeRolloutDevices(this.#o.policy, { requester: actor, deviceIds: input.deviceIds, commands: this.#gatedCommands(release), nowMs });
    const refusals = [...judgement.verdicts].flatMap(([deviceId, verdict]) => (verdict.allowed ? [] : [{ deviceId, ...verdict.refusal }]));
    const approvals = refusals.filter((refusal) => refusal.code === 'OTA_ROLLOUT_APPROVAL_REQUIRED');
    const refuse = async (code: 'OTA_ROLLOUT_APPROVAL_REQUIRED' | 'OTA_ROLLOUT_POLICY_DENIED', which: typeof refusals, message: string): Promise<never> => (
      this.#refuseStart(release, input, actor, judgement.revision, code, which, message));
    if (approvals.length > 0 && this.#approvals !== undefined) {
      // The rollout waits for approvals instead: the most any device's rule asks, from any role one of those rules takes.
      const count = Math.max(...approvals.map((refusal) => refusal.approval?.count ?? 1));
      const roles = [...new Set(approvals.flatMap((refusal) => refusal.approval?.roles ?? []))];
      return { count: refusals.length - approvals.length, revision: judgement.revision, approval: { ruleId: approvals[0]!.rule_id ?? '?', count, roles, devices: approvals.length } };
    }
    if (approvals.length > 0) {
      await refuse('OTA_ROLLOUT_APPROVAL_REQUIRED', approvals,
        `the policy allows ${approvals[0]!.opcode} on ${approvals.length} of the rollout's devices only with approvals (rule ${approvals[0]!.rule_id ?? '?'}), and rollouts collect no approvals yet: leave those devices out, or have an approver or admin start it`);
    }
    if (refusals.length === input.deviceIds.length) {
      await refuse('OTA_ROLLOUT_POLICY_DENIED', refusals, `the policy allows the update on none of the rollout's devices: ${refusals[0]!.reason} (${refusals[0]!.opcode})`);
    }
    return { count: refusals.length, revision: judgement.revision };
  }

  /**
   * Stores a rollout that waits for approvals (docs/ota.md "Rollouts that need approvals"):
   * `pending_approval`, its waves fixed, the subject approvers sign and its hash, no execution and
   * no rate-limit place taken; audited `ota.rollout.approval_requested`. Nothing is sent until the
   * approvals are in (rollout-approvals.ts).
   */
  async #startWaiting(release: ReleaseView, input: StartRolloutInput, actor: string, record: RolloutRecord, wait: WaitFor, nowMs: number): Promise<RolloutView> {
    const windowMs = input.approvalWindowMs ?? rolloutApprovalWindowMsDefault;
    if (!Number.isSafeInteger(windowMs) || windowMs < 60_000 || windowMs > rolloutApprovalWindowMsMax) {
      throw new SdcError('OTA_ROLLOUT_PLAN_INVALID', `the approval window must be 60000..${rolloutApprovalWindowMsMax} ms, not ${windowMs}`);
    }
    const subject = rolloutApprovalSubject({ record, platform: input.platform, target: this.#targetOf(release), expiresAtMs: nowMs + windowMs, issuer: this.#o.signer.kid, requestedBy: actor });
    const approval: RolloutApproval = {
      rule_id: wait.ruleId, count: wait.count, roles: wait.roles, policy_revision: (await this.#o.policy.current()).revision, subject, subject_sha256: rolloutApprovalSubjectHash(subject, sha256),
    };
    const waiting: RolloutRecord = { ...record, status: 'pending_approval' };
    await this.#ctx.db.transaction(async (tx) => {
      await this.#requireDevices(tx, input.deviceIds);
      await insertRollout(tx, { id: record.rolloutId, releaseId: release.id, platform: input.platform, record: waiting, createdBy: actor, createdAtMs: nowMs, updatedAtMs: nowMs, approval });
      await this.#ctx.audit.record(tx, {
        kind: 'ota.rollout.approval_requested', actor: actors.user(actor), subject: `rollout:${record.rolloutId}`,
        payload: {
          release_id: release.id, platform: input.platform, devices: input.deviceIds.length, waves: record.waves.length, devices_needing_approval: wait.devices,
          rule_id: wait.ruleId, count: wait.count, roles: [...wait.roles], expires_at: subject.expires_at, subject_sha256: approval.subject_sha256, policy_revision: approval.policy_revision,
        },
      });
    });
    await this.#ctx.settleAudit();
    this.#ctx.logger.info({ rollout_id: record.rolloutId, rule_id: wait.ruleId, count: wait.count }, 'rollout waits for approvals');
    return this.view(record.rolloutId);
  }

  /**
   * How many of a waiting rollout's devices the current policy would still hold for approvals with
   * `approvals` (nothing reserved). Refused first when the release is no longer the one approved:
   * revoked or unpublished (OTA_ROLLOUT_RELEASE_NOT_PUBLISHED), or its artifact differs from the
   * subject's or the command key that would sign its commands was rotated during the wait
   * (APPROVAL_STATEMENT_MISMATCH), so approvals never start other content or another signer's.
   */
  async #stillWaiting(rollout: StoredRollout, approvals: readonly PolicyActor[], nowMs: number): Promise<number> {
    const release = await this.#o.releases.get(rollout.releaseId);
    if (release.state !== 'published') throw new SdcError('OTA_ROLLOUT_RELEASE_NOT_PUBLISHED', `release ${release.id} is ${release.state}, not published`);
    const approved = rollout.approval!.subject;
    // In the subject's own version: a rollout that waited across the upgrade to version 2 is still approved as it was asked.
    const now = rolloutApprovalSubject({
      record: rollout.record, platform: rollout.platform, target: this.#targetOf(release), expiresAtMs: approved.expires_at, issuer: this.#o.signer.kid, requestedBy: approved.requested_by,
      version: approved.v === 2 ? 2 : 1,
    });
    if (rolloutApprovalSubjectHash(now, sha256) !== rollout.approval!.subject_sha256) {
      throw new SdcError('APPROVAL_STATEMENT_MISMATCH', `rollout ${rollout.id} no longer has the content its approvals were asked for`, { rolloutId: rollout.id });
    }
    const judgement = await judgeRolloutDevices(this.#o.policy, {
      requester: rollout.createdBy, deviceIds: rollout.record.waves.flat(), commands: this.#gatedCommands(release), nowMs, approvals,
    });
    return [...judgement.verdicts.values()].filter((verdict) => !verdict.allowed && verdict.refusal.code === 'OTA_ROLLOUT_APPROVAL_REQUIRED').length;
  }

  #targetOf(release: ReleaseView) {
    const sdc = release.custom['sdc'] as { version: string; release_counter: number };
    const artifact = release.artifact;
    if (artifact === null) throw new SdcError('OTA_ROLLOUT_RELEASE_NOT_PUBLISHED', `release ${release.id} has no artifact`);
    return { releaseId: release.id, path: release.target_path, length: artifact.length, sha256: artifact.sha256, sha512: artifact.sha512, releaseCounter: sdc.release_counter, version: sdc.version };
  }

  /** An approver's signed decision on a waiting rollout (POST /v1/rollouts/{id}/approve|reject). */
  async decide(submission: RolloutDecisionSubmission): Promise<{ started: boolean; rollout: RolloutView }> {
    if (this.#approvals === undefined) throw new SdcError('APPROVAL_NOT_PENDING', `rollout ${submission.rolloutId} is not waiting for approvals: this control plane collects none for rollouts`);
    const started = await this.#approvals.decide(submission);
    return { started, rollout: await this.view(submission.rolloutId) };
  }

  /** Refuses a start: audited (`ota.rollout.denied`) with the first refusal's policy facts, then thrown with `code`. */
  async #refuseStart(
    release: ReleaseView, input: StartRolloutInput, actor: string, revision: number,
    code: 'OTA_ROLLOUT_APPROVAL_REQUIRED' | 'OTA_ROLLOUT_POLICY_DENIED' | 'COMMAND_RATE_LIMITED', which: ReadonlyArray<PolicyRefusal & { deviceId: string }>, message: string,
  ): Promise<never> {
    const first = which[0]!;
    // Named devices in the audit entry and the error are bounded: a fleet may be 10,000 devices.
    const named = which.slice(0, rolloutRefusalDevicesNamedMax).map((refusal) => refusal.deviceId);
    await this.#ctx.audit.append({
      kind: 'ota.rollout.denied', actor: actors.user(actor), subject: `release:${release.id}`,
      payload: {
        code, release_id: release.id, platform: input.platform, devices: input.deviceIds.length, refused: which.length, devices_named: named,
        policy: { revision, reason: first.reason, opcode: first.opcode, ...(first.rule_id === undefined ? {} : { rule_id: first.rule_id }) },
      },
    });
    throw new SdcError(code, message, {
      refused: which.length, devices: named.join(','), opcode: first.opcode, reason: first.reason, revision, ...(first.rule_id === undefined ? {} : { rule_id: first.rule_id }),
    });
  }

  /** The kernel commands' opcodes and arguments the policy judges (their arguments' size counts for argsBytesMax), as #createExecution signs them. */
  #gatedCommands(release: ReleaseView): GatedCommand[] {
    const sdc = release.custom['sdc'] as { version: string };
    const artifact = release.artifact;
    if (artifact === null) throw new SdcError('OTA_ROLLOUT_RELEASE_NOT_PUBLISHED', `release ${release.id} has no artifact`);
    return [
      { opcode: 'EXEC_STAGE_UPDATE', args: { version: sdc.version, sha256: artifact.sha256, size_bytes: artifact.length } },
      // The approved digest and the watchdog window are signed: the kernel takes them from here, not from the agent.
      { opcode: 'EXEC_COMMIT_UPDATE', args: { version: sdc.version, sha256: artifact.sha256, watchdog_ms: this.#o.commitWatchdogMs ?? commitWatchdogMsDefault } },
    ];
  }

  async view(id: string): Promise<RolloutView> {
    return this.#viewOf(await readRollout(this.#ctx.db, id));
  }

  async list(limit: number, status?: RolloutRecord['status']): Promise<RolloutView[]> {
    const rollouts = await listRollouts(this.#ctx.db, { limit, ...(status === undefined ? {} : { status }) });
    return Promise.all(rollouts.map((rollout) => this.#viewOf(rollout)));
  }

  /**
   * The Approvals inbox's rollouts (GET /v1/approvals/rollouts): those waiting for approvals that
   * `userName` may still decide, newest first. Left out: a rollout they started (the server refuses
   * its requester), one they decided already (one decision per approver), one whose rule does not
   * take their current role, and one whose approval window has closed (the sweep ends it expired).
   * The same judgement as a decision's checks (server/control-plane/approvals.ts,
   * checkApprovalSubmission), which still run when they decide; at most `limit` of the newest
   * waiting rollouts are read.
   */
  async awaitingDecisionBy(userName: string, limit: number): Promise<RolloutView[]> {
    if (this.#approvals === undefined) return [];
    const role = await this.#o.policy.roleOf(userName);
    if (role === undefined) return [];
    const nowMs = this.#ctx.clock.nowMs();
    const waiting = (await listRollouts(this.#ctx.db, { limit, status: 'pending_approval' })).filter((rollout) => {
      const approval = rollout.approval;
      return approval !== null && approval.subject.requested_by !== userName && approval.roles.includes(role) && nowMs < approval.subject.expires_at;
    });
    const views = (await Promise.all(waiting.map((rollout) => this.#viewOf(rollout)))).filter((view) => !(view.approval?.decisions ?? []).some((d) => d.approver === userName));
    // Paused rollouts whose resume past a safety stop waits for approvals (decision 0019): the same judgement on the request.
    const resumes = this.#resumes === undefined ? [] : await Promise.all((await this.#resumes.awaitingDecisionBy(userName, role, limit)).map((rollout) => this.#viewOf(rollout)));
    return [...views, ...resumes].sort((a, b) => b.created_at_ms - a.created_at_ms || (a.id < b.id ? 1 : -1)).slice(0, limit);
  }

  async #viewOf(rollout: StoredRollout): Promise<RolloutView> {
    const executions = await executionsOfRollout(this.#ctx.db, rollout.id);
    const decisions = rollout.approval === null || this.#approvals === undefined ? [] : await this.#approvals.decisionsOf(rollout.id);
    const resume = this.#resumes === undefined ? null : await this.#resumes.viewOf(rollout);
    return { ...viewOf(rollout, executions, decisions), resume_request: resume };
  }

  /** One coordinator tick for a rollout; concurrent calls for one rollout wait for each other. */
  async tick(rolloutId: string): Promise<void> {
    const previous = this.#ticking.get(rolloutId) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.#tickNow(rolloutId));
    this.#ticking.set(rolloutId, run);
    try {
      await run;
    } finally {
      if (this.#ticking.get(rolloutId) === run) this.#ticking.delete(rolloutId);
    }
  }

  async #tickNow(rolloutId: string): Promise<void> {
    const rollout = await readRollout(this.#ctx.db, rolloutId);
    const executions = await executionsOfRollout(this.#ctx.db, rolloutId);
    const nowMs = this.#ctx.clock.nowMs();
    const decision = decideRollout(rollout.record, coordinatorView(executions), nowMs);
    if (decision.next !== rollout.record) {
      await this.#ctx.db.transaction(async (tx) => {
        await updateRolloutRecord(tx, rolloutId, decision.next, nowMs);
        if (decision.next.status !== rollout.record.status) {
          await this.#ctx.audit.record(tx, {
            kind: `ota.rollout.${decision.next.status}`, actor: actors.system, subject: `rollout:${rolloutId}`,
            payload: { wave: decision.next.waveIndex, ...(decision.next.pauseReason === null ? {} : { reason: decision.next.pauseReason }) },
          });
        }
      });
      await this.#ctx.settleAudit();
      if (decision.next.status === 'paused') this.#ctx.logger.warn({ rollout_id: rolloutId, reason: decision.next.pauseReason, wave: decision.next.waveIndex }, 'rollout paused');
    }
    if (decision.notify.length === 0) return;
    const release = await this.#o.releases.get(rollout.releaseId);
    // Judged again now, not only at the start: the policy, its time windows and the creator's role may have changed.
    const commands = this.#gatedCommands(release);
    // Each device's places in the policy's rate limits are taken now (or were, by `start`, for its first tick).
    const atStart = this.#placesAtStart.get(rolloutId);
    this.#placesAtStart.delete(rolloutId);
    const judged = atStart === undefined ? undefined : decision.notify.filter((deviceId) => atStart.verdicts.has(deviceId));
    const rest = decision.notify.filter((deviceId) => atStart?.verdicts.has(deviceId) !== true);
    const verdicts = new Map(atStart === undefined ? [] : [...atStart.verdicts].filter(([deviceId]) => judged!.includes(deviceId)));
    if (atStart !== undefined) await releaseVerdicts([...atStart.verdicts].filter(([deviceId]) => !verdicts.has(deviceId)).map(([, verdict]) => verdict));
    let role = atStart?.role;
    try {
      if (rest.length > 0) {
        // A rollout that waited for approvals is judged with those it started with, as a released command is.
        const approvals = (rollout.approval?.outcome?.approvals ?? []).map((a) => ({ id: a.approver, role: a.role }));
        const judgement = await judgeRolloutDevices(this.#o.policy, { requester: rollout.createdBy, deviceIds: rest, commands, nowMs, places: 'take', approvals });
        for (const [deviceId, verdict] of judgement.verdicts) verdicts.set(deviceId, verdict);
        role = judgement.role;
      }
    } catch (error) {
      await releaseVerdicts(verdicts.values());
      throw error;
    }
    const pending = new Set(decision.notify);
    try {
      for (const deviceId of decision.notify) {
        const verdict = verdicts.get(deviceId)!;
        if (!verdict.allowed) await this.#recordRefused(rollout, decision.next.waveIndex, deviceId, release, verdict.refusal);
        else await this.#createExecution(rollout, decision.next.waveIndex, deviceId, release, { commands, requester: commandRequester(rollout.createdBy, role!) });
        pending.delete(deviceId);
      }
    } finally {
      // A device whose execution was not stored (the store failed) gives its places back; the next tick takes them again.
      await releaseVerdicts([...pending].map((deviceId) => verdicts.get(deviceId)!));
    }
  }

  /**
   * A device the policy refused: its execution is created ended (`canceled`, which no threshold
   * counts: the device was not updated, and did not fail), with the policy's code and its refusal
   * where the notice would be, audited; the device is told nothing and no device_seq is used.
   */
  async #recordRefused(rollout: StoredRollout, wave: number, deviceId: string, release: ReleaseView, refusal: PolicyRefusal): Promise<void> {
    const nowMs = this.#ctx.clock.nowMs();
    const executionId = newId('ex', this.#ctx.random).replace('_', '-');
    const sdc = release.custom['sdc'] as { release_counter: number };
    await this.#ctx.db.transaction(async (tx) => {
      await insertExecution(tx, {
        executionId, rolloutId: rollout.id, deviceId, wave, state: 'canceled', createdAtMs: nowMs, stateEnteredAtMs: nowMs, endedAtMs: nowMs, healthNonce: null,
        targetReleaseCounter: sdc.release_counter, previousReleaseCounter: await installedReleaseCounter(tx, deviceId), noticeJson: refusalNoticeJson(refusal),
        lastErrorCode: refusal.code, updatedAtMs: nowMs, canceledAtMs: null,
      });
      await this.#ctx.audit.record(tx, {
        kind: 'ota.execution.policy_denied', actor: actors.user(rollout.createdBy), subject: `device:${deviceId}`,
        payload: { rollout_id: rollout.id, execution_id: executionId, wave, release_id: release.id, code: refusal.code, policy: refusal as unknown as JsonObject },
      });
    });
    this.#o.onExecutionFinished?.('canceled');
    await this.#ctx.settleAudit();
    this.#ctx.logger.warn({ device_id: deviceId, rollout_id: rollout.id, code: refusal.code, rule_id: refusal.rule_id }, `rollout device refused by the policy: ${refusal.reason}`);
  }

  /** Creates one execution (queued) with its notice, moves it to notified and hands the notice to the device's gateway. */
  async #createExecution(
    rollout: StoredRollout, wave: number, deviceId: string, release: ReleaseView, gated: { commands: readonly GatedCommand[]; requester: CommandRequester | undefined },
  ): Promise<void> {
    const nowMs = this.#ctx.clock.nowMs();
    const executionId = newId('ex', this.#ctx.random).replace('_', '-');
    const sdc = release.custom['sdc'] as { release_counter: number; version: string };
    if (release.artifact === null) throw new SdcError('OTA_ROLLOUT_RELEASE_NOT_PUBLISHED', `release ${release.id} has no artifact`);
    const artifact = release.artifact;
    const platform = rollout.platform;
    const [stage, commit] = gated.commands as [GatedCommand, GatedCommand];
    // The creator and the role they were judged in travel signed, so the device's policy bundle judges the same actor;
    // an approved rollout's approvals and this device's place in its wave too, so the bundle can check them.
    const signing = { deviceId, nowMs, requester: gated.requester, rolloutApproval: this.#rolloutApprovalFor(rollout, wave, deviceId) };
    await this.#ctx.db.transaction(async (tx) => {
      const previous = await installedReleaseCounter(tx, deviceId);
      const seqs = [await nextCounterValue(tx, deviceSeqCounterName(deviceId)), await nextCounterValue(tx, deviceSeqCounterName(deviceId)), await nextCounterValue(tx, deviceSeqCounterName(deviceId))];
      const document: DirectorDocument = {
        deviceId, rolloutId: rollout.id, wave, executionId, issuedAtMs: nowMs,
        expiresAtMs: nowMs + Math.min(this.#o.directorLifetimeMs ?? directorLimits.lifetimeMsMax, directorLimits.lifetimeMsMax),
        target: { path: release.target_path, length: artifact.length, hashes: { sha256: artifact.sha256, sha512: artifact.sha512 }, releaseCounter: sdc.release_counter, platform },
      };
      const notice: StoredNotice = {
        execution_id: executionId, rollout_id: rollout.id, wave, platform,
        director: {
          signed: directorSignedJson(document),
          signature: { key_id: this.#o.signer.kid, sig: base64urlFromBytes(this.#ctx.ed25519.sign(this.#o.signer.seed, directorSigningBytes(document))) },
        },
        kernel_commands: {
          stage: this.#kernelCommand(executionId, 'stage', seqs[0]!, signing, stage),
          commit: this.#kernelCommand(executionId, 'commit', seqs[1]!, signing, commit),
          // The rollback is not judged (docs/ota.md "Rollouts and the command policy"): it carries no approvals, and the notice stays small.
          rollback: this.#kernelCommand(executionId, 'rollback', seqs[2]!, { ...signing, rolloutApproval: undefined }, { opcode: 'EXEC_ROLLBACK_UPDATE', args: {} }),
        },
      };
      await insertExecution(tx, {
        executionId, rolloutId: rollout.id, deviceId, wave, state: 'queued', createdAtMs: nowMs, stateEnteredAtMs: nowMs, endedAtMs: null, healthNonce: null,
        targetReleaseCounter: sdc.release_counter, previousReleaseCounter: previous, noticeJson: canonicalize(notice), lastErrorCode: null, updatedAtMs: nowMs,
        canceledAtMs: null,
      });
      await moveExecution(tx, { executionId, from: 'queued', to: 'notified', atMs: nowMs, terminal: false, healthNonce: null, errorCode: null });
      await this.#ctx.audit.record(tx, {
        kind: 'ota.execution.notified', actor: actors.system, subject: `device:${deviceId}`,
        payload: { rollout_id: rollout.id, execution_id: executionId, wave, release_id: release.id, release_counter: sdc.release_counter },
      });
    });
    await this.#ctx.settleAudit();
    const stored = await readExecution(this.#ctx.db, executionId);
    if (stored !== undefined) await this.#pushNotice(stored);
  }

  /**
   * The `rollout_approval` block of an approved rollout's kernel commands for one device (core
   * rolloutApprovalBlock: the reduced subject, the start, the approvals it started with, the
   * device's Merkle path in its wave); undefined for a rollout that needed no approvals, or whose
   * subject is of version 1 (approved before the device could check: its commands carry none).
   */
  #rolloutApprovalFor(rollout: StoredRollout, wave: number, deviceId: string): RolloutApprovalBlock | undefined {
    const approval = rollout.approval;
    const outcome = approval?.outcome;
    if (approval === null || outcome?.state !== 'started' || outcome.approvals === undefined || approval.subject.v !== 2) return undefined;
    const key = `${rollout.id}/${wave}`;
    let kept = this.#approvalTrees.get(key);
    if (kept === undefined) {
      const devices = approval.subject.waves[wave]?.devices ?? [];
      kept = { reduced: reducedRolloutSubject(approval.subject, sha256), tree: deviceMerkleTree(devices, sha256) };
      this.#approvalTrees.set(key, kept);
      if (this.#approvalTrees.size > approvalTreesKept) this.#approvalTrees.delete(this.#approvalTrees.keys().next().value!);
    }
    const block = rolloutApprovalBlock({
      subject: approval.subject, startedAtMs: outcome.at_ms, approvals: outcome.approvals.slice(0, approvalLimits.approvalsMax), waveIndex: wave, deviceId,
      reduced: kept.reduced, tree: kept.tree, sha256,
    });
    if (block === undefined) this.#ctx.logger.warn({ rollout_id: rollout.id, device_id: deviceId, wave }, 'device not in its wave of the approved subject: its kernel commands carry no approvals');
    return block;
  }

  #kernelCommand(
    executionId: string, step: string, deviceSeq: number,
    signing: { deviceId: string; nowMs: number; requester: CommandRequester | undefined; rolloutApproval: RolloutApprovalBlock | undefined }, what: GatedCommand,
  ): SignedCommand {
    const { deviceId, nowMs, requester, rolloutApproval } = signing;
    // Valid as long as the execution may last: the kernel takes them at any step until then.
    const ttlMs = this.#timeouts.executionMs + 60_000;
    return signCommand({
      command: {
        id: `${executionId}-${step}`, device_id: deviceId, opcode: what.opcode, args: what.args, issued_at: nowMs, expires_at: nowMs + ttlMs, device_seq: deviceSeq, issuer: this.#o.signer.kid,
        ...(requester === undefined ? {} : { requester }),
        ...(rolloutApproval === undefined ? {} : { rollout_approval: rolloutApproval }),
      },
      kid: this.#o.signer.kid, seed: this.#o.signer.seed, provider: this.#ctx.ed25519,
    });
  }

  /**
   * Writes the execution's notice under the device's key and announces it; a terminal execution's
   * key is removed, unless the device must still be told to cancel (tellsCancel). Never throws.
   */
  async #pushNotice(execution: StoredExecution): Promise<void> {
    const { kv } = this.#ctx;
    // A device the policy refused was never told anything: its key may hold another rollout's notice.
    if (storedRefusal(execution.noticeJson) !== undefined) return;
    const cancel = tellsCancel(execution);
    try {
      if (isTerminal(executionTable, execution.state) && !cancel) {
        await kv.del(otaKeys.notice(execution.deviceId));
        return;
      }
      const { platform: _platform, ...stored } = parseStrictJson(execution.noticeJson, { frameBytesMax: 64 * 1024 }) as unknown as StoredNotice;
      const artifact = await this.#artifactUrl(stored);
      const notice: MessageBody<'OTA_NOTICE'> = {
        ...stored, cancel, ...(execution.healthNonce === null ? {} : { health_nonce: execution.healthNonce }), ...(artifact === undefined ? {} : { artifact_url: artifact.url }),
        notice_state: this.#noticeState(execution, cancel),
      };
      const ttlMs = Math.max(1_000, execution.createdAtMs + this.#timeouts.executionMs - this.#ctx.clock.nowMs());
      await kv.set(otaKeys.notice(execution.deviceId), canonicalize(notice), { ttlMs });
      // Only now: a record written before a notice write that failed would say the stored notice's expired URL
      // is fresh, and each ask until three quarters of the lifetime would only re-send it (h20).
      if (artifact !== undefined) await this.#recordArtifactUrlExpiry(stored.execution_id, artifact.expiresAtMs);
      await kv.publish(otaChannels.noticeReady, execution.deviceId);
    } catch (error) {
      this.#ctx.logger.warn({ err: error, device_id: execution.deviceId, execution_id: execution.executionId }, 'OTA notice not pushed; the device gets it at its next AUTH');
    }
  }

  /**
   * The signed word on the notice's cancel and nonce (core/ota/notice-state.ts), with the
   * director's key: the gateway relays the notice, and the agent takes neither without it.
   * Deterministic (Ed25519, no time in it): every push of the same news carries the same bytes.
   */
  #noticeState(execution: StoredExecution, cancel: boolean): NoticeStateEnvelope {
    const healthNonce = execution.healthNonce;
    return signNoticeState({
      deviceId: execution.deviceId, rolloutId: execution.rolloutId, executionId: execution.executionId,
      seq: noticeStateSeq({ cancel, healthNonce }), cancel, healthNonce,
    }, this.#o.signer, this.#ctx.ed25519);
  }

  /**
   * A fresh presigned GET of the director's target, minted at each push (a URL in a notice stored
   * in the key/value store would outlive itself). None when the artifact store cannot presign or
   * the API does not listen yet: the device then downloads from the TUF targets route.
   */
  async #artifactUrl(notice: Pick<StoredNotice, 'director' | 'execution_id'>): Promise<{ url: string; expiresAtMs: number } | undefined> {
    const sha256 = (notice.director.signed as { targets?: Array<{ hashes?: { sha256?: unknown } }> }).targets?.[0]?.hashes?.sha256;
    if (typeof sha256 !== 'string') return undefined;
    try {
      const lifetimeMs = this.#artifactUrlLifetimeMs();
      const url = await this.#o.releases.presignArtifact(sha256, lifetimeMs / 1_000);
      return url === undefined ? undefined : { url, expiresAtMs: this.#ctx.clock.nowMs() + lifetimeMs };
    } catch (error) {
      this.#ctx.logger.warn({ err: error, execution_id: notice.execution_id }, 'no presigned artifact URL for the OTA notice; the device uses the TUF targets route');
      return undefined;
    }
  }

  /** When the stored notice's URL expires (#artifactUrlExpired renews only near that). Never throws. */
  async #recordArtifactUrlExpiry(executionId: string, expiresAtMs: number): Promise<void> {
    const ttlMs = Math.max(1_000, expiresAtMs - this.#ctx.clock.nowMs());
    await this.#ctx.kv.set(otaKeys.artifactUrlExpiry(executionId), String(expiresAtMs), { ttlMs }).catch((error: unknown) => {
      // Without it the device's next ask is answered with a new URL, as before the record existed: the URL is still sent.
      this.#ctx.logger.warn({ err: error, execution_id: executionId }, 'OTA artifact URL expiry not recorded');
    });
  }

  #artifactUrlLifetimeMs(): number {
    return (this.#o.artifactUrlExpirySeconds ?? artifactUrlExpirySecondsDefault) * 1_000;
  }

  /** A device's OTA_REPORT frame from the events stream. Refusals throw typed errors (the consumer logs and acks them). */
  async onReport(data: { device_id: string; gateway_id: string; at_ms: number; frame: string }): Promise<void> {
    const report = await this.#o.verifyReportFrame(data.device_id, data.frame);
    const execution = await readExecution(this.#ctx.db, report.execution_id);
    if (execution === undefined || execution.deviceId !== data.device_id) {
      throw new SdcError('OTA_REPORT_UNEXPECTED', `report for execution ${report.execution_id}, which device ${data.device_id} does not run`);
    }
    const nowMs = this.#ctx.clock.nowMs();
    if (report.event === 'canceled') return; // the control plane applied the cancel when it was asked; the device confirms it stopped
    if (report.event === 'notice_refused') {
      await this.#noticeRefused(execution, report.error?.code ?? 'OTA_NOTICE_STATE_UNSIGNED', data.gateway_id);
      return;
    }
    if (report.event === 'artifact_url_expired') {
      await this.#artifactUrlExpired(execution, data.gateway_id, nowMs);
      return;
    }
    // The agent sends its reports again whenever the notice comes again (each AUTH): one for an execution that ended, or a
    // version report after the verdict was taken, is a repeat, not an attack; logged, not dead-lettered. (In rolling_back the
    // verdict is the device's failed health check, or a cancel after the commit that this device may have missed.)
    if (isTerminal(executionTable, execution.state) || (report.event === 'version_report' && execution.state === 'rolling_back')) {
      this.#ctx.logger.info({ device_id: data.device_id, execution_id: execution.executionId, event: report.event, state: execution.state }, 'OTA report for a settled step ignored');
      await this.#repushIfMissed(execution, report.event, nowMs);
      return;
    }
    let decision: ExecutionDecision;
    let event: string = report.event;
    if (report.event === 'version_report') {
      const verdict = decideVersionReport(execution, {
        deviceId: data.device_id, executionId: report.execution_id, nonce: report.nonce ?? '', releaseCounter: report.release_counter ?? -1,
        healthy: report.healthy === true, signatureValid: true,
      }, nowMs);
      if (!verdict.accepted) throw new SdcError(verdict.code, verdict.message, { deviceId: data.device_id, executionId: report.execution_id });
      decision = verdict.decision;
      event = verdict.event;
    } else {
      decision = decideExecutionEvent(execution, reportEvents[report.event], nowMs);
    }
    if (!decision.applied) {
      // Reports arrive at least once: a repeat or a late one is normal, and said in the log only.
      this.#ctx.logger.info({ device_id: data.device_id, execution_id: execution.executionId, event, state: decision.state, reason: decision.reason }, 'OTA report not applied');
      await this.#repushIfMissed(execution, report.event, nowMs);
      return;
    }
    await this.#apply(execution, decision, event, report.error?.code ?? null, actors.device(data.device_id));
  }

  /**
   * The device asks for a new artifact URL (the one it holds was refused with 403, or expired
   * before use; it keeps its partial download). The frame is signed but carries nothing fresh, so
   * a gateway could replay one forever, and each answer used to be a newly presigned URL and a
   * notice push. A new URL (a push of the notice, still saying cancel when a cancel after the
   * commit is being rolled back) only when the newest URL issued for this execution is expired or
   * has at most a quarter of its lifetime left (its expiry is recorded at each push, in the
   * key/value store, so every control plane sees it): a download that outlived its URL always
   * gets one, a replay at most one per URL lifetime. Otherwise the stored notice, which carries
   * that newest URL, is announced again (nothing signed), at most once per noticeRepushIntervalMs
   * per execution: a device that missed that notice, or whose clock runs ahead (after its first
   * ask it tries the URL it is given), still gets the URL. Not refused: a throw would dead-letter
   * every replayed frame; logged and counted (onArtifactUrlNotRenewed).
   */
  async #artifactUrlExpired(execution: StoredExecution, gatewayId: string, nowMs: number): Promise<void> {
    const fields = { device_id: execution.deviceId, execution_id: execution.executionId, gateway_id: gatewayId };
    const notRenewed = (reason: ArtifactUrlNotRenewed): void => {
      this.#o.onArtifactUrlNotRenewed?.(reason);
      this.#ctx.logger.info({ ...fields, state: execution.state, reason }, 'OTA artifact URL not renewed (the newest one is still valid, or the execution ended)');
    };
    if (isTerminal(executionTable, execution.state)) return notRenewed('ended');
    let expiresAtMs: number | undefined;
    try {
      const value = await this.#ctx.kv.get(otaKeys.artifactUrlExpiry(execution.executionId));
      expiresAtMs = value === null ? undefined : Number(value);
    } catch (error) {
      // Unknown: answered with a new URL, as before the record existed (the push needs the store too).
      this.#ctx.logger.warn({ err: error, ...fields }, 'OTA artifact URL expiry unread; renewing');
    }
    if (expiresAtMs === undefined || !Number.isFinite(expiresAtMs) || expiresAtMs - nowMs <= this.#artifactUrlLifetimeMs() / 4) {
      this.#ctx.logger.info(fields, 'OTA artifact URL renewed: the device asked and the newest one is expired or nearly');
      await this.#pushNotice(execution);
      return;
    }
    const lastMs = this.#repushedAtMs.get(execution.executionId);
    if (lastMs !== undefined && nowMs - lastMs < this.#noticeRepushIntervalMs) return notRenewed('unexpired');
    this.#noteRepush(execution.executionId, nowMs);
    try {
      await this.#ctx.kv.publish(otaChannels.noticeReady, execution.deviceId);
    } catch (error) {
      this.#ctx.logger.warn({ err: error, ...fields }, 'OTA notice not announced again; the device gets it at its next AUTH');
    }
    notRenewed('reannounced');
  }

  /**
   * The device refused a notice for this execution whose cancel or nonce was not the control
   * plane's signed word (core/ota/notice-state.ts): on the path from here, the gateway named, or
   * something on it, changed a notice. Nothing moves (the device went on as before); the operator
   * sees it in the log and the audit. Audited once per execution and code, and only while the
   * execution runs: the frame is signed but carries nothing fresh, so a gateway could replay one
   * forever (h1 counted an audit entry per frame, any execution the device ever had), and the
   * agent itself reports the 1st, 2nd, 4th ... refusal. The mark is a `counters` row written in
   * the audit entry's transaction, so a restart or a second control plane does not audit it again;
   * a repeat costs one read. Repeats and reports on ended executions are logged and counted
   * (onNoticeRefusalUnaudited), not refused: a refusal would dead-letter each replayed frame.
   */
  async #noticeRefused(execution: StoredExecution, code: string, gatewayId: string): Promise<void> {
    const fields = { device_id: execution.deviceId, execution_id: execution.executionId, gateway_id: gatewayId, code };
    const unaudited = (reason: NoticeRefusalUnaudited): void => {
      this.#o.onNoticeRefusalUnaudited?.(reason);
      this.#ctx.logger.info({ ...fields, state: execution.state, reason }, 'OTA notice refusal not audited (audited once per execution and code, while it runs)');
    };
    if (isTerminal(executionTable, execution.state)) return unaudited('ended');
    const mark = noticeRefusedCounterName(execution.executionId, code);
    const [seen] = await this.#ctx.db.query<{ value: number }>('SELECT value FROM counters WHERE name = ?', [mark]);
    if (seen !== undefined) return unaudited('repeat');
    const audited = await this.#ctx.db.transaction(async (tx) => {
      if (await nextCounterValue(tx, mark) !== 1) return false; // another consumer came first
      await this.#ctx.audit.record(tx, {
        kind: 'ota.execution.notice_refused', actor: actors.device(execution.deviceId), subject: `device:${execution.deviceId}`,
        payload: { rollout_id: execution.rolloutId, execution_id: execution.executionId, gateway_id: gatewayId, code },
      });
      return true;
    });
    if (!audited) return unaudited('repeat');
    await this.#ctx.settleAudit();
    this.#ctx.logger.warn(fields, 'the device refused an OTA notice whose cancel or health nonce is not signed by the control plane');
  }

  /**
   * A report that shows the device missed news the control plane pushed: `rebooted` again while
   * the execution waits in health_checking with its nonce (the notice carrying the nonce was lost),
   * or any report on an execution that was canceled, before its commit (`canceled`) or after it
   * (`rolling_back` with canceled_at set): the cancel was lost. A device that got a cancel after
   * its commit sends nothing new until `rollback_complete` (or `rollback_fail`), which moves the
   * execution on; one that did not keeps re-sending what it sent before (`rebooted` while it waits
   * for the nonce, a `version_report` if it had one). A rollback that the device's own failed
   * health check started has no canceled_at and is never pushed. A push is one frame on a
   * live session with no acknowledgement, so nothing else would send it again before the device's
   * next AUTH, and the step would time out (found by the model tier's validation at 1,000 agents:
   * `sdc sim --scenario ota-cut-download --agents 1000 --seed 1`). Pushed again only once the news
   * is noticeRepushIntervalMs old, and at most once per that interval per execution: the notice
   * makes the agent send every report again, and those repeats arrive within a round trip.
   */
  async #repushIfMissed(execution: StoredExecution, event: OtaReportEvent, nowMs: number): Promise<void> {
    const missedNonce = event === 'rebooted' && execution.state === 'health_checking' && execution.healthNonce !== null;
    const missedCancel = tellsCancel(execution);
    if (!missedNonce && !missedCancel) return;
    // Within the interval of the news itself the report crossed the notice, or answers it (the
    // agent repeats every report when a notice comes): only a repeat from an agent still waiting
    // after that (its re-send timer, half a step timeout by default) shows the notice went missing.
    if (nowMs - execution.stateEnteredAtMs < this.#noticeRepushIntervalMs) return;
    const lastMs = this.#repushedAtMs.get(execution.executionId);
    if (lastMs !== undefined && nowMs - lastMs < this.#noticeRepushIntervalMs) return;
    this.#noteRepush(execution.executionId, nowMs);
    this.#ctx.logger.info({ device_id: execution.deviceId, execution_id: execution.executionId, event, state: execution.state }, 'OTA notice pushed again: the report shows the device missed it');
    await this.#pushNotice(execution);
  }

  /** Remembers when this execution's notice was last pushed or announced again for a report (the newest last, a bounded map). */
  #noteRepush(executionId: string, nowMs: number): void {
    this.#repushedAtMs.delete(executionId);
    this.#repushedAtMs.set(executionId, nowMs);
    if (this.#repushedAtMs.size > noticeRepushesTracked) this.#repushedAtMs.delete(this.#repushedAtMs.keys().next().value!);
  }

  async #apply(execution: StoredExecution, decision: Extract<ExecutionDecision, { applied: true }>, event: string, errorCode: string | null, actor: string): Promise<void> {
    const healthNonce = decision.issueHealthNonce ? base64urlFromBytes(this.#ctx.random.bytes(32)) : null;
    const terminal = isTerminal(executionTable, decision.to);
    const moved = await this.#ctx.db.transaction(async (tx) => {
      const ok = await moveExecution(tx, {
        executionId: execution.executionId, from: decision.from, to: decision.to, atMs: decision.atMs, terminal, healthNonce, errorCode, canceled: event === 'cancel',
      });
      if (!ok) return false;
      await this.#ctx.audit.record(tx, {
        kind: 'ota.execution.transition', actor, subject: `device:${execution.deviceId}`,
        payload: { rollout_id: execution.rolloutId, execution_id: execution.executionId, event, from: decision.from, to: decision.to, ...(errorCode === null ? {} : { code: errorCode }) },
      });
      return true;
    });
    if (!moved) return;
    // Counted as soon as the transaction resolves, before the notice push and the tick. Close behind
    // the commit, not atomic with it: the committed state is visible to other readers before this
    // line runs (sql.js resolves after its journal's fsync, MySQL after COMMIT's answer), and another
    // transition's settleAudit may chain this one's entry meanwhile, so a reader may see the
    // execution finished (the API, the audit chain) a moment before it is counted.
    if (terminal) this.#o.onExecutionFinished?.(decision.to);
    await this.#ctx.settleAudit();
    this.#ctx.logger.info({ device_id: execution.deviceId, execution_id: execution.executionId, event, from: decision.from, to: decision.to }, 'OTA execution moved');
    const after = await readExecution(this.#ctx.db, execution.executionId);
    if (after === undefined) return;
    // A new nonce, or a cancel (the device stops before its next step, or rolls back after its
    // commit), is news for the device; any other terminal state clears its notice.
    if (healthNonce !== null || terminal || event === 'cancel') await this.#pushNotice(after);
    if (terminal) await this.tick(execution.rolloutId);
  }

  /** The periodic pass: timeouts of every active execution of running or paused rollouts, then a tick of each running rollout. */
  async sweep(): Promise<void> {
    // Rollouts whose approval window closed end `expired` (nothing ran; nothing to time out).
    if (this.#approvals !== undefined) await this.#approvals.expireDue();
    // Resume requests whose window closed end `expired` (the rollout stays paused).
    if (this.#resumes !== undefined) await this.#resumes.expireDue();
    const ids = [...new Set([...await runningRolloutIds(this.#ctx.db), ...await this.#pausedOrAbortedWithActive()])];
    for (const id of ids) {
      const nowMs = this.#ctx.clock.nowMs();
      for (const execution of await executionsOfRollout(this.#ctx.db, id)) {
        const decision = decideExecutionTimeout(execution, nowMs, this.#timeouts);
        if (decision?.applied === true) await this.#apply(execution, decision, executionDeadline(execution, this.#timeouts)!.event, null, actors.system);
      }
      await this.tick(id);
    }
  }

  async #pausedOrAbortedWithActive(): Promise<string[]> {
    const rows = await this.#ctx.db.query<{ rollout_id: string }>(
      "SELECT DISTINCT rollout_id FROM ota_executions WHERE ended_at IS NULL LIMIT ?", [200]);
    return rows.map((row) => row.rollout_id);
  }

  /** An operator's or admin's action (the route checks the role: emergency_abort needs an admin). */
  async act(rolloutId: string, action: OperatorAction, actor: string): Promise<RolloutView> {
    let rollout = await readRollout(this.#ctx.db, rolloutId);
    if (rollout.record.status === 'pending_approval' && (action === 'abort' || action === 'emergency_abort') && this.#approvals !== undefined) {
      // Nothing ran: the wait ends `aborted` (audited `ota.rollout.abort`); approvals that come later are refused.
      try {
        await this.#approvals.abort(rollout, actor);
        return this.view(rolloutId);
      } catch (error) {
        // The last approval started it (or a rejection or expiry ended it) since the read above: the
        // operator's abort then applies to what it is now, below, rather than being refused.
        if (!SdcError.is(error, 'APPROVAL_NOT_PENDING')) throw error;
        rollout = await readRollout(this.#ctx.db, rolloutId);
      }
    }
    const executions = await executionsOfRollout(this.#ctx.db, rolloutId);
    const decision = decideOperatorAction(rollout.record, action, coordinatorView(executions));
    if (!decision.ok) throw new SdcError(decision.code, decision.message, { rolloutId, status: rollout.record.status });
    const nowMs = this.#ctx.clock.nowMs();
    // Resuming past a safety stop waives thresholds the rollout was started (and approved) with: it needs a start's authority.
    const stop = action === 'resume' ? safetyStopOf(rollout.record, executions) : null;
    if (stop !== null) await this.#judgeResume(rollout, executions, stop, actor, nowMs);
    await this.#ctx.db.transaction(async (tx) => {
      await updateRolloutRecord(tx, rolloutId, decision.next, nowMs);
      await this.#ctx.audit.record(tx, {
        kind: `ota.rollout.${action}`, actor: actors.user(actor), subject: `rollout:${rolloutId}`,
        payload: { cancel: decision.cancel.length, wave: decision.next.waveIndex, ...(action === 'resume' ? resumeFacts(rollout.record, stop) : {}) },
      });
      // A resume request waiting for approvals ends with the stop it was for: resumed by someone who needed none, or aborted.
      if (action !== 'pause') await this.#resumes?.endWithin(tx, rollout, { state: action === 'resume' ? 'superseded' : 'aborted', by: actor, nowMs });
    });
    await this.#ctx.settleAudit();
    const byDevice = new Map(executions.map((e) => [e.deviceId, e]));
    for (const deviceId of decision.cancel) {
      const execution = byDevice.get(deviceId);
      if (execution === undefined) continue;
      const cancel = decideExecutionEvent(execution, 'cancel', nowMs);
      if (!cancel.applied) continue;
      await this.#apply(execution, cancel, 'cancel', null, actors.user(actor));
    }
    if (decision.next.status === 'running') await this.tick(rolloutId);
    return this.view(rolloutId);
  }

  /**
   * A resume past a safety stop (docs/ota.md "Resuming after a safety stop") is judged as a start by
   * the resumer: every device the rollout has still to notify (its whole fleet when none is left),
   * for STAGE and COMMIT, by the current policy with the resumer as actor and no approvals, nothing
   * reserved. Refused, audited `ota.rollout.resume_denied`, when any device needs approvals
   * (OTA_ROLLOUT_APPROVAL_REQUIRED: a rollout that needed them to start needs them again; the
   * resumer asks for them with a resume request, rollout-resume-approvals.ts), or when the resumer
   * is denied a device the creator's authority (with the rollout's approvals) would still update,
   * or every device (OTA_ROLLOUT_POLICY_DENIED). A rate-limit refusal is not the resumer's
   * authority: each execution still takes its places when its turn comes.
   */
  async #judgeResume(rollout: StoredRollout, executions: readonly StoredExecution[], stop: SafetyStop, actor: string, nowMs: number): Promise<void> {
    const verdict = await this.#resumeVerdict(rollout, executions, actor, [], nowMs);
    if (verdict.refused !== undefined) await this.#refuseResume(rollout, stop, actor, verdict);
  }

  /** The policy's word on `actor` resuming `rollout` past its stop with `approvals` (decision 0019), without auditing. */
  async #resumeVerdict(rollout: StoredRollout, executions: readonly StoredExecution[], actor: string, resumeApprovals: readonly PolicyActor[], nowMs: number): Promise<ResumeVerdict> {
    const release = await this.#o.releases.get(rollout.releaseId);
    const commands = this.#gatedCommands(release);
    const notified = new Set(executions.map((e) => e.deviceId));
    const left = rollout.record.waves.flat().filter((deviceId) => !notified.has(deviceId));
    const deviceIds = left.length > 0 ? left : rollout.record.waves.flat();
    const approvals = (rollout.approval?.outcome?.approvals ?? []).map((a) => ({ id: a.approver, role: a.role }));
    const [resumer, creator] = await Promise.all([
      judgeRolloutDevices(this.#o.policy, { requester: actor, deviceIds, commands, nowMs, ...(resumeApprovals.length === 0 ? {} : { approvals: resumeApprovals }) }),
      judgeRolloutDevices(this.#o.policy, { requester: rollout.createdBy, deviceIds, commands, nowMs, approvals }),
    ]);
    const authority = (verdict: DeviceVerdict | undefined) => verdict === undefined || verdict.allowed || verdict.refusal.code === 'COMMAND_RATE_LIMITED';
    const refusals = [...resumer.verdicts].flatMap(([deviceId, verdict]) => (verdict.allowed || verdict.refusal.code === 'COMMAND_RATE_LIMITED' ? [] : [{ deviceId, ...verdict.refusal }]));
    const needApprovals = refusals.filter((refusal) => refusal.code === 'OTA_ROLLOUT_APPROVAL_REQUIRED');
    const beyond = refusals.filter((refusal) => refusal.code !== 'OTA_ROLLOUT_APPROVAL_REQUIRED' && authority(creator.verdicts.get(refusal.deviceId)));
    const base = { deviceIds, revision: resumer.revision, needApprovals };
    const stopText = `rollout ${rollout.id} paused on its ${safetyStopOf(rollout.record, executions)?.reason ?? 'safety stop'}`;
    if (beyond.length > 0 || (refusals.length === deviceIds.length && deviceIds.length > 0 && needApprovals.length === 0)) {
      const which = beyond.length > 0 ? beyond : refusals;
      return { ...base, refused: { code: 'OTA_ROLLOUT_POLICY_DENIED', which, message: `${stopText}; resuming it needs the authority to start it, and the policy does not allow ${actor} `
        + `${which[0]!.opcode} on ${which.length} of the devices it would update: ${which[0]!.reason}` } };
    }
    if (needApprovals.length > 0) {
      const how = this.#resumes === undefined
        ? ', and this control plane collects no approvals for a resume: abort it and start a new rollout, which approvers decide'
        : `: ask approvers with a resume request (POST /v1/rollouts/${rollout.id}/resume-request), or abort it`;
      return { ...base, refused: { code: 'OTA_ROLLOUT_APPROVAL_REQUIRED', which: needApprovals, message: `${stopText}; the policy allows ${needApprovals[0]!.opcode} on ${needApprovals.length} `
        + `of its devices only with approvals (rule ${needApprovals[0]!.rule_id ?? '?'})${how}` } };
    }
    return base;
  }

  /** Refuses a resume past a safety stop: audited (`ota.rollout.resume_denied`) with the first refusal's policy facts, then thrown with its code. */
  async #refuseResume(rollout: StoredRollout, stop: SafetyStop, actor: string, verdict: ResumeVerdict): Promise<never> {
    const { code, which, message } = verdict.refused!;
    const first = which[0]!;
    const named = which.slice(0, rolloutRefusalDevicesNamedMax).map((refusal) => refusal.deviceId);
    await this.#ctx.audit.append({
      kind: 'ota.rollout.resume_denied', actor: actors.user(actor), subject: `rollout:${rollout.id}`,
      payload: {
        code, ...resumeFacts(rollout.record, stop), devices: verdict.deviceIds.length, refused: which.length, devices_named: named,
        policy: { revision: verdict.revision, reason: first.reason, opcode: first.opcode, ...(first.rule_id === undefined ? {} : { rule_id: first.rule_id }) },
      },
    });
    throw new SdcError(code, message, {
      rolloutId: rollout.id, pauseReason: stop.reason, refused: which.length, devices: named.join(','), opcode: first.opcode, reason: first.reason, revision: verdict.revision,
      ...(first.rule_id === undefined ? {} : { rule_id: first.rule_id }),
    });
  }

  /** Asks approvers to resume a rollout paused at a safety stop (POST /v1/rollouts/{id}/resume-request; rollout-resume-approvals.ts). */
  async requestResume(rolloutId: string, actor: string, reason: string, windowMs?: number): Promise<RolloutView> {
    if (this.#resumes === undefined) throw new SdcError('OTA_ROLLOUT_APPROVAL_REQUIRED', `this control plane collects no approvals for a resume of rollout ${rolloutId}: abort it and start a new rollout`, { rolloutId });
    await this.#resumes.request(rolloutId, actor, reason, windowMs);
    return this.view(rolloutId);
  }

  /** An approver's signed decision on a rollout's waiting resume request (POST /v1/rollouts/{id}/resume-request/approve|reject). */
  async decideResume(submission: ResumeDecisionSubmission): Promise<{ resumed: boolean; rollout: RolloutView }> {
    if (this.#resumes === undefined) throw new SdcError('APPROVAL_NOT_PENDING', `rollout ${submission.rolloutId} has no resume request waiting: this control plane collects none`);
    const resumed = await this.#resumes.decide(submission);
    return { resumed, rollout: await this.view(submission.rolloutId) };
  }

  /** Whether `actor` may resume the rollout now, needs approvals for it, or is denied (nothing audited: a question, not an attempt). */
  async resumeAuthority(rolloutId: string, actor: string): Promise<ResumeAuthorityView> {
    const rollout = await readRollout(this.#ctx.db, rolloutId);
    const status = rollout.record.status;
    if (status !== 'paused') return { status, safety_stop: null, verdict: 'not_paused' };
    const executions = await executionsOfRollout(this.#ctx.db, rolloutId);
    const stop = safetyStopOf(rollout.record, executions);
    if (stop === null) return { status, safety_stop: null, verdict: 'allowed' };
    const verdict = await this.#resumeVerdict(rollout, executions, actor, [], this.#ctx.clock.nowMs());
    if (verdict.refused === undefined) return { status, safety_stop: stop.reason, verdict: 'allowed' };
    const refused = verdict.refused;
    const approvalRequired = refused.code === 'OTA_ROLLOUT_APPROVAL_REQUIRED' && this.#resumes !== undefined;
    return { status, safety_stop: stop.reason, verdict: approvalRequired ? 'approval_required' : 'denied', code: refused.code, message: refused.message };
  }

  async #requireDevices(tx: SqlExecutor, deviceIds: readonly string[]): Promise<void> {
    for (const deviceId of deviceIds) {
      const [row] = await tx.query<{ id: string }>('SELECT id FROM devices WHERE id = ?', [deviceId]);
      if (row === undefined) throw new SdcError('OTA_ROLLOUT_PLAN_INVALID', `device ${deviceId} is not known`, { deviceId });
    }
  }
}

/**
 * The safety stop a resume would waive (core safetyStopOf): the automatic pause the rollout is in
 * (error threshold, success threshold not met), or, for an operator's pause, the one the next tick
 * would have made, or the error threshold crossed by the whole wave's figures (accepted failures
 * included: earlier resumes do not lower the bar), with the wave's whole figures.
 */
function safetyStopOf(record: RolloutRecord, executions: readonly StoredExecution[]): SafetyStop | null {
  const view = coordinatorView(executions);
  const reason = coreSafetyStopOf(record, view);
  return reason === null ? null : { reason, stats: waveStats(record.waves[record.waveIndex]!, view) };
}

/** What a resume's audit entry (and a refused one's) says about the pause: its reason, the safety stop waived, the wave's thresholds and figures. */
function resumeFacts(record: RolloutRecord, stop: SafetyStop | null): JsonObject {
  const wave = record.plan.waves[record.waveIndex];
  return {
    pause_reason: record.pauseReason ?? 'none', safety_stop: stop?.reason ?? null,
    ...(wave === undefined ? {} : {
      error_threshold: { executed_min: wave.errorThreshold.executedMin, failed_percent_max: wave.errorThreshold.failedPercentMax },
      success_threshold: { succeeded_min: wave.successThreshold.succeededMin, succeeded_percent_min: wave.successThreshold.succeededPercentMin, soak_ms: wave.successThreshold.soakMs },
    }),
    ...(stop === null ? {} : { wave_stats: { size: stop.stats.size, executed: stop.stats.executed, failed: stop.stats.failed, succeeded: stop.stats.succeeded } }),
    accepted_before: { executed: record.accepted.executed, failed: record.accepted.failed, success_waived: record.accepted.successWaived },
  };
}

function coordinatorView(executions: readonly StoredExecution[]): Executions {
  return new Map(executions.map((e) => [e.deviceId, { state: e.state, createdAtMs: e.createdAtMs, endedAtMs: e.endedAtMs }]));
}

function viewOf(rollout: StoredRollout, executions: readonly StoredExecution[], decisions: readonly RolloutDecisionView[]): Omit<RolloutView, 'resume_request'> {
  const view = coordinatorView(executions);
  return {
    id: rollout.id, release_id: rollout.releaseId, status: rollout.record.status, pause_reason: rollout.record.pauseReason, wave_index: rollout.record.waveIndex,
    waves: rollout.record.waves.map((devices) => {
      const stats = waveStats(devices, view);
      return { devices, size: stats.size, started: stats.started, succeeded: stats.succeeded, failed: stats.failed, terminal: stats.terminal };
    }),
    executions: executions.map((e) => {
      const refusal = storedRefusal(e.noticeJson);
      return {
        id: e.executionId, device_id: e.deviceId, wave: e.wave, state: e.state, created_at_ms: e.createdAtMs, ended_at_ms: e.endedAtMs, last_error_code: e.lastErrorCode,
        ...(refusal === undefined ? {} : { policy_refusal: refusal }),
      };
    }),
    created_by: rollout.createdBy, created_at_ms: rollout.createdAtMs, updated_at_ms: rollout.updatedAtMs,
    approval: approvalViewOf(rollout.approval, decisions),
  };
}

function approvalViewOf(approval: RolloutApproval | null, decisions: readonly RolloutDecisionView[]): RolloutApprovalView | null {
  if (approval === null) return null;
  const outcome = approval.outcome;
  return {
    rule_id: approval.rule_id, count: approval.count, roles: approval.roles, policy_revision: approval.policy_revision, expires_at_ms: approval.subject.expires_at,
    subject: approval.subject, subject_sha256: approval.subject_sha256, decisions,
    outcome: outcome === undefined ? null : {
      state: outcome.state, at_ms: outcome.at_ms, by: outcome.by, ...(outcome.code === undefined ? {} : { code: outcome.code }),
      ...(outcome.approvals === undefined ? {} : { approvers: outcome.approvals.map((a) => a.approver) }),
    },
  };
}

/** What a rollout waits for at its start: the first rule asking approvals, the most any asks, the roles any takes, how many devices need them. */
interface WaitFor { readonly ruleId: string; readonly count: number; readonly roles: readonly PolicyRole[]; readonly devices: number }

const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());
