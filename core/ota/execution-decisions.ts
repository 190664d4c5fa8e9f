import { isTerminal, nextState } from '../protocol/state-machine.js';
import type { ErrorCode } from '../errors/index.js';
import { executionTable, type ExecutionActiveState, type ExecutionEvent, type ExecutionState, type ExecutionTimeouts } from './execution-machine.js';

/**
 * Decisions about one device's execution, as data (like core/protocol/command-decisions.ts):
 * given the stored record, what happened and `nowMs`, say what changes. The control plane
 * performs them; nothing here reads a store, a clock or a socket.
 */
export interface ExecutionRecord {
  readonly executionId: string;
  readonly deviceId: string;
  readonly state: ExecutionState;
  /** When the execution was created (queued): the overall timeout counts from here. */
  readonly createdAtMs: number;
  /** When the current state was entered: the per-step timeout counts from here. */
  readonly stateEnteredAtMs: number;
  /** The nonce issued when the health check started; null in every other state. */
  readonly healthNonce: string | null;
  /** The release counter of the rollout's target, and the one the device ran before. */
  readonly targetReleaseCounter: number;
  readonly previousReleaseCounter: number;
}

export type ExecutionDecision =
  | {
    readonly applied: true; readonly from: ExecutionState; readonly to: ExecutionState; readonly atMs: number;
    /** Entering health_checking: the caller draws a fresh nonce (RandomSource) and stores it; any other move clears it. */
    readonly issueHealthNonce: boolean;
  }
  | { readonly applied: false; readonly reason: 'terminal' | 'illegal' | 'needs_version_report'; readonly state: ExecutionState };

/** Events that only a verified version report may cause (decideVersionReport), never a bare progress message. */
const reportOnlyEvents: readonly ExecutionEvent[] = ['health_check_pass', 'health_check_fail'];

/**
 * Applies a progress report, an operator's cancel or a timeout. Refusals are data: reports
 * arrive at least once, so a duplicate or late one is normal. The outcome of a health check
 * is refused here (`needs_version_report`): it comes only from decideVersionReport.
 */
export function decideExecutionEvent(record: ExecutionRecord, event: ExecutionEvent, atMs: number): ExecutionDecision {
  if (reportOnlyEvents.includes(event)) return { applied: false, reason: 'needs_version_report', state: record.state };
  return applyEvent(record, event, atMs);
}

function applyEvent(record: ExecutionRecord, event: ExecutionEvent, atMs: number): ExecutionDecision {
  const from = record.state;
  if (isTerminal(executionTable, from)) return { applied: false, reason: 'terminal', state: from };
  const to = nextState(executionTable, from, event);
  if (to === undefined) return { applied: false, reason: 'illegal', state: from };
  return { applied: true, from, to, atMs, issueHealthNonce: to === 'health_checking' };
}

// ---------------------------------------------------------------------------------------------
// Timeouts (quinn's poll_timeout: the driver asks when to call back, then calls with nowMs)

export interface ExecutionDeadline {
  readonly atMs: number;
  readonly event: 'step_timeout' | 'execution_timeout';
}

/** When this execution times out if nothing else happens; undefined once terminal. */
export function executionDeadline(record: ExecutionRecord, timeouts: ExecutionTimeouts): ExecutionDeadline | undefined {
  if (isTerminal(executionTable, record.state)) return undefined;
  const stepAtMs = record.stateEnteredAtMs + timeouts.stepMs[record.state as ExecutionActiveState];
  const executionAtMs = record.createdAtMs + timeouts.executionMs;
  // On a tie the execution's own bound is named: it is the one no progress can extend.
  return executionAtMs <= stepAtMs ? { atMs: executionAtMs, event: 'execution_timeout' } : { atMs: stepAtMs, event: 'step_timeout' };
}

/** The timeout event due at `nowMs`, if any. */
export function decideExecutionTimeout(record: ExecutionRecord, nowMs: number, timeouts: ExecutionTimeouts): ExecutionDecision | undefined {
  const deadline = executionDeadline(record, timeouts);
  if (deadline === undefined || nowMs < deadline.atMs) return undefined;
  return applyEvent(record, deadline.event, nowMs);
}

// ---------------------------------------------------------------------------------------------
// The device's next step, with cancellation checked first

/** What the agent does next in each state; `none` where it waits for something outside it. */
export type DeviceStep =
  | 'check_director' | 'precheck' | 'download' | 'verify_and_stage' | 'commit' | 'reboot' | 'health_check'
  | 'report_version' | 'rollback' | 'none';

const stepByState: Readonly<Record<ExecutionActiveState, DeviceStep>> = {
  queued: 'none', notified: 'check_director', prechecking: 'precheck', downloading: 'download', verifying: 'verify_and_stage',
  staged: 'commit', committed: 'reboot', rebooting: 'none', health_checking: 'report_version', rolling_back: 'rollback',
};

export type DeviceStepDecision =
  | { readonly type: 'cancel' }
  | { readonly type: 'step'; readonly step: DeviceStep }
  | { readonly type: 'done' };

/**
 * The agent asks this before every step (mender #1815: abort was checked only at commit). A
 * requested cancel wins wherever the table allows one; once rolling back, the rollback goes on.
 */
export function decideDeviceStep(input: { readonly state: ExecutionState; readonly cancelRequested: boolean; readonly rebootRequired: boolean }): DeviceStepDecision {
  if (isTerminal(executionTable, input.state)) return { type: 'done' };
  if (input.cancelRequested && nextState(executionTable, input.state, 'cancel') !== undefined) return { type: 'cancel' };
  const step = stepByState[input.state as ExecutionActiveState];
  if (input.state === 'committed' && !input.rebootRequired) return { type: 'step', step: 'health_check' };
  return { type: 'step', step };
}

// ---------------------------------------------------------------------------------------------
// The version report: the only way to success

/**
 * The device's version report after the update, as the control plane received it. The caller
 * verifies the signature with the device's key (an Ed25519 port) and passes the verdict in; the
 * rest is checked here.
 */
export interface VersionReport {
  readonly deviceId: string;
  readonly executionId: string;
  readonly nonce: string;
  readonly releaseCounter: number;
  readonly healthy: boolean;
  readonly signatureValid: boolean;
}

export type VersionReportDecision =
  | { readonly accepted: true; readonly event: 'health_check_pass' | 'health_check_fail' | 'watchdog_rollback'; readonly decision: ExecutionDecision }
  | { readonly accepted: false; readonly code: Extract<ErrorCode, `OTA_REPORT_${string}`>; readonly message: string };

/**
 * Success is counted only here: a signed report, for this device and execution, while the
 * execution waits for its health check (so after the reboot), carrying the nonce issued when
 * the health check started (so not a report made before the reboot, nor a replay of another
 * execution's). Then the reported release decides: the target and healthy is a pass; the
 * previous release means the watchdog already rolled back; anything else is a failed check.
 */
export function decideVersionReport(record: ExecutionRecord, report: VersionReport, atMs: number): VersionReportDecision {
  if (!report.signatureValid) return refuseReport('OTA_REPORT_SIGNATURE', `version report for ${record.executionId} is not signed by ${record.deviceId}`);
  if (report.deviceId !== record.deviceId || report.executionId !== record.executionId) {
    return refuseReport('OTA_REPORT_UNEXPECTED', `version report names ${report.deviceId}/${report.executionId}, not ${record.deviceId}/${record.executionId}`);
  }
  if (record.state !== 'health_checking') return refuseReport('OTA_REPORT_UNEXPECTED', `execution ${record.executionId} is ${record.state}, not waiting for its health check`);
  if (record.healthNonce === null || report.nonce !== record.healthNonce) {
    return refuseReport('OTA_REPORT_STALE_NONCE', `version report for ${record.executionId} does not carry this health check's nonce`);
  }
  const event = reportEvent(record, report);
  return { accepted: true, event, decision: applyEvent(record, event, atMs) };
}

function reportEvent(record: ExecutionRecord, report: VersionReport): 'health_check_pass' | 'health_check_fail' | 'watchdog_rollback' {
  if (report.releaseCounter === record.targetReleaseCounter) return report.healthy ? 'health_check_pass' : 'health_check_fail';
  if (report.releaseCounter === record.previousReleaseCounter) return 'watchdog_rollback';
  return 'health_check_fail';
}

function refuseReport(code: Extract<ErrorCode, `OTA_REPORT_${string}`>, message: string): VersionReportDecision {
  return { accepted: false, code, message };
}
