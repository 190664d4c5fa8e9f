import { SdcError, type ErrorCode } from '../errors/index.js';
import { isTerminal, nextState } from '../protocol/state-machine.js';
import { executionOutcome, executionTable, type ExecutionState } from './execution-machine.js';

/**
 * The rollout coordinator's decisions, as data (like core/protocol/command-decisions.ts): given
 * the rollout's record, the executions so far and `nowMs`, say which devices to notify, whether
 * the wave is complete, whether to pause, and what an operator's action does. The control plane
 * stores the record and the executions and performs what is decided; nothing here reads a store,
 * a clock or a socket.
 */

/** Limits on a plan, so a bad request cannot make the coordinator's work unbounded. */
export const rolloutLimits = {
  wavesMax: 64,
  fleetDevicesMax: 1_000_000,
  devicesPerMinuteMax: 100_000,
  /** A week: a longer soak is an operator forgetting the rollout, not a policy. */
  soakMsMax: 7 * 24 * 60 * 60_000,
} as const;

/** The rate limit's window: at most `devicesPerMinuteMax` executions start in any window this long. */
export const rateWindowMs = 60_000;

/** A wave's devices: a share of the whole fleet (whole percent), or named devices. */
export type WaveSelector = { readonly percent: number } | { readonly deviceIds: readonly string[] };

export interface WavePlan {
  readonly selector: WaveSelector;
  /** The wave succeeds when at least this many devices, and this whole percent of the wave, succeeded, and then after `soakMs`. */
  readonly successThreshold: { readonly succeededMin: number; readonly succeededPercentMin: number; readonly soakMs: number };
  /** The rollout pauses once at least `executedMin` devices of the wave finished and more than `failedPercentMax` percent of them failed. */
  readonly errorThreshold: { readonly executedMin: number; readonly failedPercentMax: number };
}

export interface RolloutPlan {
  readonly waves: readonly WavePlan[];
  readonly devicesPerMinuteMax: number;
}

/**
 * `pending_approval`: stored, waiting for the approvals the command policy requires (no execution
 * exists, decideRollout notifies nobody); it leaves for `running` once they are in, or ends
 * `rejected` (an approver refused it) or `expired` (its approval window closed) (docs/ota.md,
 * "Rollouts that need approvals").
 */
export type RolloutStatus = 'pending_approval' | 'running' | 'paused' | 'completed' | 'aborted' | 'rejected' | 'expired';
export type PauseReason = 'error_threshold' | 'success_threshold_not_met' | 'operator';

export interface RolloutRecord {
  readonly rolloutId: string;
  readonly plan: RolloutPlan;
  /** Each wave's devices, fixed when the rollout starts (assignWaves). */
  readonly waves: readonly (readonly string[])[];
  readonly status: RolloutStatus;
  readonly pauseReason: PauseReason | null;
  readonly waveIndex: number;
  /** What the operator accepted by resuming the current wave past a safety stop: those failures are not counted again. */
  readonly accepted: WaveAcceptance;
}

export interface WaveAcceptance {
  readonly failed: number;
  readonly executed: number;
  /** Resumed after the wave ended below its success threshold: the operator takes the wave as it is. */
  readonly successWaived: boolean;
}

const nothingAccepted: WaveAcceptance = { failed: 0, executed: 0, successWaived: false };

/** What the coordinator needs to know about one device's execution. */
export interface RolloutExecution {
  readonly state: ExecutionState;
  readonly createdAtMs: number;
  /** When it reached a terminal state; null while running. */
  readonly endedAtMs: number | null;
}

export type Executions = ReadonlyMap<string, RolloutExecution>;

// ---------------------------------------------------------------------------------------------
// Starting: the plan and the waves

/** Checks the plan against the fleet and fixes each wave's devices; throws OTA_ROLLOUT_PLAN_INVALID. */
export function assignWaves(plan: RolloutPlan, fleetDeviceIds: readonly string[]): string[][] {
  checkPlan(plan, fleetDeviceIds);
  const fleet = new Set(fleetDeviceIds);
  // Named devices are reserved for their wave, so a share taken earlier never takes them.
  const named = new Set<string>();
  for (const wave of plan.waves) if ('deviceIds' in wave.selector) for (const id of wave.selector.deviceIds) addNamed(named, fleet, id);
  const assigned = new Set<string>();
  const waves = plan.waves.map((wave, index) => {
    const devices = 'deviceIds' in wave.selector ? [...wave.selector.deviceIds] : takeShare(fleetDeviceIds, wave.selector.percent, assigned, named);
    if (devices.length === 0) invalid(`wave ${index} has no device`);
    for (const id of devices) assigned.add(id);
    return devices;
  });
  const left = fleetDeviceIds.length - assigned.size;
  if (left > 0) invalid(`${left} device(s) of the fleet are in no wave`);
  return waves;
}

function addNamed(named: Set<string>, fleet: ReadonlySet<string>, id: string): void {
  if (!fleet.has(id)) invalid(`device ${id} is not in the rollout's fleet`);
  if (named.has(id)) invalid(`device ${id} is named in two waves`);
  named.add(id);
}

// ceil: a small share of a small fleet still reaches a device; integer arithmetic, no floats.
function takeShare(fleet: readonly string[], percent: number, assigned: ReadonlySet<string>, named: ReadonlySet<string>): string[] {
  const count = Math.ceil((percent * fleet.length) / 100);
  const devices: string[] = [];
  for (const id of fleet) {
    if (devices.length >= count) break;
    if (!assigned.has(id) && !named.has(id)) devices.push(id);
  }
  return devices;
}

function checkPlan(plan: RolloutPlan, fleetDeviceIds: readonly string[]): void {
  if (fleetDeviceIds.length === 0 || fleetDeviceIds.length > rolloutLimits.fleetDevicesMax) invalid(`fleet size ${fleetDeviceIds.length} is outside 1..${rolloutLimits.fleetDevicesMax}`);
  if (new Set(fleetDeviceIds).size !== fleetDeviceIds.length) invalid('the fleet names a device twice');
  if (plan.waves.length === 0 || plan.waves.length > rolloutLimits.wavesMax) invalid(`${plan.waves.length} waves is outside 1..${rolloutLimits.wavesMax}`);
  checkInteger('devicesPerMinuteMax', plan.devicesPerMinuteMax, 1, rolloutLimits.devicesPerMinuteMax);
  plan.waves.forEach((wave, index) => {
    if ('percent' in wave.selector) checkInteger(`wave ${index} percent`, wave.selector.percent, 1, 100);
    checkInteger(`wave ${index} succeededMin`, wave.successThreshold.succeededMin, 0, rolloutLimits.fleetDevicesMax);
    checkInteger(`wave ${index} succeededPercentMin`, wave.successThreshold.succeededPercentMin, 0, 100);
    checkInteger(`wave ${index} soakMs`, wave.successThreshold.soakMs, 0, rolloutLimits.soakMsMax);
    checkInteger(`wave ${index} executedMin`, wave.errorThreshold.executedMin, 0, rolloutLimits.fleetDevicesMax);
    checkInteger(`wave ${index} failedPercentMax`, wave.errorThreshold.failedPercentMax, 0, 100);
  });
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) invalid(`${name} ${String(value)} is not an integer in ${min}..${max}`);
}

function invalid(message: string): never {
  throw new SdcError('OTA_ROLLOUT_PLAN_INVALID', message);
}

/** A new rollout's record: running, at its first wave. */
export function startRollout(rolloutId: string, plan: RolloutPlan, fleetDeviceIds: readonly string[]): RolloutRecord {
  return { rolloutId, plan, waves: assignWaves(plan, fleetDeviceIds), status: 'running', pauseReason: null, waveIndex: 0, accepted: nothingAccepted };
}

// ---------------------------------------------------------------------------------------------
// The coordinator's tick

export interface WaveStats {
  readonly size: number;
  /** Devices with an execution (notified, or about to be). */
  readonly started: number;
  readonly terminal: number;
  readonly succeeded: number;
  readonly failed: number;
  /** Terminal and counted (a canceled execution is neither a success nor a failure). */
  readonly executed: number;
  /** When the last device of the wave ended; null while any has not. */
  readonly settledAtMs: number | null;
}

export function waveStats(devices: readonly string[], executions: Executions): WaveStats {
  let started = 0, terminal = 0, succeeded = 0, failed = 0, executed = 0, lastEndMs = 0;
  for (const id of devices) {
    const execution = executions.get(id);
    if (execution === undefined) continue;
    started++;
    if (!isTerminal(executionTable, execution.state)) continue;
    terminal++;
    lastEndMs = Math.max(lastEndMs, execution.endedAtMs ?? 0);
    const outcome = executionOutcome[execution.state];
    if (outcome === 'success') succeeded++;
    if (outcome === 'failure') failed++;
    if (outcome !== 'not_counted') executed++;
  }
  return { size: devices.length, started, terminal, succeeded, failed, executed, settledAtMs: terminal === devices.length ? lastEndMs : null };
}

/** Whether the wave's failures, net of what the operator accepted, cross its error threshold. */
export function errorThresholdCrossed(wave: WavePlan, stats: WaveStats, accepted: WaveAcceptance): boolean {
  const executed = stats.executed - accepted.executed;
  const failed = stats.failed - accepted.failed;
  // Cross-multiplied: integer percentages without division or floats.
  return executed >= wave.errorThreshold.executedMin && failed * 100 > wave.errorThreshold.failedPercentMax * executed;
}

export function successThresholdMet(wave: WavePlan, stats: WaveStats, accepted: WaveAcceptance): boolean {
  if (accepted.successWaived) return true;
  const { succeededMin, succeededPercentMin } = wave.successThreshold;
  return stats.succeeded >= succeededMin && stats.succeeded * 100 >= succeededPercentMin * stats.size;
}

export interface RolloutDecision {
  /** The record after this tick (status, wave, acceptance). */
  readonly next: RolloutRecord;
  /** Devices to create an execution for (queued) and notify now, in this order. */
  readonly notify: readonly string[];
  /** Set when the tick completed a wave: its index. */
  readonly completedWave: number | null;
  /** When to tick again if nothing else happens (the soak's end, a free place in the rate window); executions' own deadlines are apart. */
  readonly wakeAtMs: number | null;
}

/**
 * One tick. In order: a rollout not running notifies no one; the current wave's error
 * threshold pauses it; a wave whose devices all ended either misses its success threshold
 * (pause), soaks, or completes (the next wave starts, or the rollout completes); then the
 * wave's devices without an execution are notified as the rate limit allows.
 * A wave completes only once every device in it ended, which the execution timeouts guarantee
 * (hawkBit #693), so its error rate is final before any device of the next wave is notified.
 */
export function decideRollout(record: RolloutRecord, executions: Executions, nowMs: number): RolloutDecision {
  if (record.status !== 'running') return { next: record, notify: [], completedWave: null, wakeAtMs: null };
  const wave = record.plan.waves[record.waveIndex]!;
  const stats = waveStats(record.waves[record.waveIndex]!, executions);
  if (errorThresholdCrossed(wave, stats, record.accepted)) return paused(record, 'error_threshold');
  if (stats.settledAtMs !== null) {
    if (!successThresholdMet(wave, stats, record.accepted)) return paused(record, 'success_threshold_not_met');
    const soakEndMs = stats.settledAtMs + wave.successThreshold.soakMs;
    if (nowMs < soakEndMs) return { next: record, notify: [], completedWave: null, wakeAtMs: soakEndMs };
    return completeWave(record, executions, nowMs);
  }
  return { ...notifyWithinRate(record, executions, nowMs), next: record, completedWave: null };
}

function paused(record: RolloutRecord, reason: PauseReason): RolloutDecision {
  return { next: { ...record, status: 'paused', pauseReason: reason }, notify: [], completedWave: null, wakeAtMs: null };
}

function completeWave(record: RolloutRecord, executions: Executions, nowMs: number): RolloutDecision {
  const completedWave = record.waveIndex;
  if (completedWave === record.waves.length - 1) {
    return { next: { ...record, status: 'completed', pauseReason: null }, notify: [], completedWave, wakeAtMs: null };
  }
  const next: RolloutRecord = { ...record, waveIndex: completedWave + 1, accepted: nothingAccepted };
  return { ...notifyWithinRate(next, executions, nowMs), next, completedWave };
}

/** Devices of the current wave without an execution, as many as the sliding rate window allows. */
function notifyWithinRate(record: RolloutRecord, executions: Executions, nowMs: number): { notify: string[]; wakeAtMs: number | null } {
  const waiting = record.waves[record.waveIndex]!.filter((id) => !executions.has(id));
  if (waiting.length === 0) return { notify: [], wakeAtMs: null };
  const recentStartsMs = [...executions.values()].map((e) => e.createdAtMs).filter((t) => t > nowMs - rateWindowMs).sort((a, b) => a - b);
  const free = Math.max(0, record.plan.devicesPerMinuteMax - recentStartsMs.length);
  const notify = waiting.slice(0, free);
  if (notify.length === waiting.length) return { notify, wakeAtMs: null };
  // The window is now full: the next place frees when its oldest start (maybe one made now) leaves it.
  return { notify, wakeAtMs: (recentStartsMs[0] ?? nowMs) + rateWindowMs };
}

// ---------------------------------------------------------------------------------------------
// The operator

export type OperatorAction = 'pause' | 'resume' | 'abort' | 'emergency_abort';

export type OperatorDecision =
  | {
    readonly ok: true; readonly next: RolloutRecord;
    /** Executions to cancel now (the `cancel` event of the execution table). */
    readonly cancel: readonly string[];
  }
  | { readonly ok: false; readonly code: Extract<ErrorCode, 'OTA_ROLLOUT_STATE'>; readonly message: string };

/**
 * - pause: a running rollout stops notifying; executions in flight go on.
 * - resume: a paused rollout runs again. Past a safety stop (safetyStopOf) the failures and
 *   successes seen so far in the current wave are accepted (not counted again by the error
 *   threshold), and a wave that ended below its success threshold is taken as it is; otherwise
 *   nothing is accepted and the wave's figures count on as before the pause.
 * - abort: no device is notified any more; executions not yet notified (queued) are canceled,
 *   those in flight finish (each still ends by its timeouts).
 * - emergency_abort: as abort, and every execution in flight is canceled where the table
 *   allows (before commit it stops; after commit the device rolls back). Also after an abort.
 */
export function decideOperatorAction(record: RolloutRecord, action: OperatorAction, executions: Executions): OperatorDecision {
  const { status } = record;
  // Waiting for approvals, or ended without them: nothing ever ran; the service aborts a pending one itself.
  if (status === 'pending_approval' || status === 'rejected' || status === 'expired') {
    return { ok: false, code: 'OTA_ROLLOUT_STATE', message: `rollout ${record.rolloutId} is ${status}: ${action} is not allowed` };
  }
  if (action === 'pause' && status === 'running') return { ok: true, next: { ...record, status: 'paused', pauseReason: 'operator' }, cancel: [] };
  if (action === 'resume' && status === 'paused') return { ok: true, next: resumed(record, executions), cancel: [] };
  if (action === 'abort' && (status === 'running' || status === 'paused')) {
    return { ok: true, next: aborted(record), cancel: cancelable(executions, (state) => state === 'queued') };
  }
  if (action === 'emergency_abort' && status !== 'completed') {
    return { ok: true, next: aborted(record), cancel: cancelable(executions, (state) => nextState(executionTable, state, 'cancel') !== undefined) };
  }
  return { ok: false, code: 'OTA_ROLLOUT_STATE', message: `rollout ${record.rolloutId} is ${status}: ${action} is not allowed` };
}

function resumed(record: RolloutRecord, executions: Executions): RolloutRecord {
  // Nothing to waive: the wave goes on with its figures as they were (else a pause and a resume
  // below executedMin would drop its failures from the error threshold's count).
  if (safetyStopOf(record, executions) === null) return { ...record, status: 'running', pauseReason: null };
  const stats = waveStats(record.waves[record.waveIndex]!, executions);
  // Past a stop the wave is taken as it is: a wave that ended below its success threshold is
  // waived whatever the pause's own reason (an operator's pause, or an error-threshold pause of a
  // wave that has settled meanwhile), else the next tick would pause it again at once.
  const wave = record.plan.waves[record.waveIndex];
  const successShort = wave !== undefined && stats.settledAtMs !== null && !successThresholdMet(wave, stats, record.accepted);
  const successWaived = record.accepted.successWaived || record.pauseReason === 'success_threshold_not_met' || successShort;
  return { ...record, status: 'running', pauseReason: null, accepted: { failed: stats.failed, executed: stats.executed, successWaived } };
}

export type SafetyStopReason = Extract<PauseReason, 'error_threshold' | 'success_threshold_not_met'>;

/**
 * The safety stop a resume of this record would waive (docs/ota.md "Resuming after a safety
 * stop"), or null (not paused, or nothing to waive). The automatic pause it is in; or, for an
 * operator's pause, the current wave's error threshold crossed either by the figures since the
 * last acceptance (what the next tick would pause on) or by the whole wave's figures (every
 * execution of the wave so far, accepted failures included: acceptances made by earlier resumes
 * do not lower the bar), or the wave ended below its success threshold and not waived.
 */
export function safetyStopOf(record: RolloutRecord, executions: Executions): SafetyStopReason | null {
  if (record.status !== 'paused') return null;
  if (record.pauseReason === 'error_threshold' || record.pauseReason === 'success_threshold_not_met') return record.pauseReason;
  const wave = record.plan.waves[record.waveIndex];
  const devices = record.waves[record.waveIndex];
  if (wave === undefined || devices === undefined) return null;
  const stats = waveStats(devices, executions);
  if (errorThresholdCrossed(wave, stats, record.accepted) || errorThresholdCrossed(wave, stats, nothingAccepted)) return 'error_threshold';
  if (stats.settledAtMs !== null && !successThresholdMet(wave, stats, record.accepted)) return 'success_threshold_not_met';
  return null;
}

function aborted(record: RolloutRecord): RolloutRecord {
  return { ...record, status: 'aborted', pauseReason: null };
}

function cancelable(executions: Executions, select: (state: ExecutionState) => boolean): string[] {
  return [...executions].filter(([, e]) => select(e.state)).map(([id]) => id);
}
