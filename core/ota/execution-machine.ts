import type { TransitionTable } from '../protocol/state-machine.js';

/**
 * The lifecycle of one device's execution of a rollout, as the control plane records it from
 * the device's signed progress reports and its own timers.
 *
 * Designed against failures seen in fleets:
 * - a device that never answers must not stall the rollout (hawkBit #693): every non-terminal
 *   state has a per-step timeout and the execution as a whole has one (`step_timeout`,
 *   `execution_timeout`, both to `timed_out`), so every execution ends;
 * - success is never taken from a claim made before the reboot (hawkBit #3185): `succeeded` is
 *   entered only from `health_checking`, by `health_check_pass`, which only the signed version
 *   report carrying the nonce issued for this health check produces (execution-decisions.ts);
 * - cancellation is checked before every step, not only before commit (mender #1815): `cancel`
 *   is legal in every non-terminal state but `rolling_back` (already undoing). Before commit it
 *   ends the execution (`canceled`, nothing installed); after commit it rolls back.
 */
export const executionStates = [
  'queued', 'notified', 'prechecking', 'downloading', 'verifying', 'staged', 'committed', 'rebooting', 'health_checking',
  'succeeded', 'rejected', 'failed', 'rolling_back', 'rolled_back', 'rollback_failed', 'timed_out', 'canceled',
] as const;
export type ExecutionState = (typeof executionStates)[number];

export const executionEvents = [
  'notify', // the update notice (with the director's document) was handed to the device's session
  'accept', // the device's signed report: it took the notice and started its prechecks
  'refuse', // the device's signed refusal: the director and image repository disagree, wrong platform, counter rollback, agent too old, no space
  'precheck_pass', // the device's prechecks passed; it starts downloading
  'download_complete', // the whole artifact is on the device; it verifies length and every hash
  'download_fail', // the download failed for good (retries and resumes exhausted, or refused bytes)
  'verify_fail', // the artifact's length or a hash differs from the signed target
  'stage', // the kernel's STAGE accepted the verified artifact (it checks the digest again)
  'stage_fail', // the kernel's STAGE refused the artifact
  'commit', // the kernel's COMMIT switched to the staged image (the digest it approved)
  'commit_fail', // the kernel's COMMIT refused (staged digest differs from what was approved): the old image stays active
  'reboot', // the device reported that it reboots into the committed image
  'reboot_fail', // the device could not reboot into the committed image: it rolls back
  'health_check_start', // a target without reboot: the device starts the health check right after commit
  'rebooted', // the device came back after the reboot (a new session); the control plane issues the health-check nonce
  'health_check_pass', // the device's signed version report with the fresh nonce: the target runs and is healthy
  'health_check_fail', // the device's signed version report with the fresh nonce: unhealthy, or another version than the target
  'watchdog_rollback', // the device reports that its kernel watchdog already restored the previous image
  'rollback_complete', // the device restored the previous image (kernel ROLLBACK) and reported it
  'rollback_fail', // the device reported that ROLLBACK failed
  'cancel', // the operator (or an emergency abort) canceled this execution; checked before every step
  'step_timeout', // the current state outlived its per-step timeout
  'execution_timeout', // the execution outlived its overall timeout
] as const;
export type ExecutionEvent = (typeof executionEvents)[number];

export const executionTerminalStates: readonly ExecutionState[] = [
  'succeeded', 'rejected', 'failed', 'rolled_back', 'rollback_failed', 'timed_out', 'canceled',
];

/**
 * What a terminal state says about the version installed on the device:
 * - `target`: the device runs the rollout's release, confirmed healthy after the reboot by its
 *   signed version report with a fresh nonce;
 * - `previous`: the device runs what it ran before (the update never committed, or was rolled back);
 * - `unknown`: neither is known; the device's next signed version report says which.
 */
export type InstalledVersionKnowledge = 'target' | 'previous' | 'unknown';

export const executionInstalledVersion: Readonly<Record<ExecutionState, InstalledVersionKnowledge | 'pending'>> = {
  queued: 'pending', notified: 'pending', prechecking: 'pending', downloading: 'pending', verifying: 'pending',
  staged: 'pending', committed: 'pending', rebooting: 'pending', health_checking: 'pending', rolling_back: 'pending',
  succeeded: 'target',
  rejected: 'previous', failed: 'previous', canceled: 'previous', rolled_back: 'previous',
  // ROLLBACK failed: the device may run either image, or neither well.
  rollback_failed: 'unknown',
  // The control plane stopped waiting; the device may have committed meanwhile.
  timed_out: 'unknown',
};

/**
 * How a terminal state counts for a wave's thresholds: `timed_out` is a failure (a device that
 * stopped answering during an update is as bad a sign as one that reported failing), so is a
 * refusal; a canceled execution was stopped by the operator and counts as neither.
 */
export type ExecutionOutcome = 'success' | 'failure' | 'not_counted';

export const executionOutcome: Readonly<Record<ExecutionState, ExecutionOutcome | 'pending'>> = {
  queued: 'pending', notified: 'pending', prechecking: 'pending', downloading: 'pending', verifying: 'pending',
  staged: 'pending', committed: 'pending', rebooting: 'pending', health_checking: 'pending', rolling_back: 'pending',
  succeeded: 'success',
  rejected: 'failure', failed: 'failure', rolled_back: 'failure', rollback_failed: 'failure', timed_out: 'failure',
  canceled: 'not_counted',
};

// Every non-terminal state ends when its step or the whole execution runs out of time.
const timeouts = { step_timeout: 'timed_out', execution_timeout: 'timed_out' } as const;
// Before the commit, a cancel leaves nothing installed; after it, the device must roll back.
const cancelBeforeCommit = { cancel: 'canceled', ...timeouts } as const;
const cancelAfterCommit = { cancel: 'rolling_back', watchdog_rollback: 'rolled_back', ...timeouts } as const;

export const executionTable: TransitionTable<ExecutionState, ExecutionEvent> = {
  name: 'ota_execution',
  initial: 'queued',
  states: executionStates,
  events: executionEvents,
  terminal: executionTerminalStates,
  transitions: {
    queued: { notify: 'notified', ...cancelBeforeCommit },
    // A refusal may come before or during the prechecks (the director's document is checked first).
    notified: { accept: 'prechecking', refuse: 'rejected', ...cancelBeforeCommit },
    prechecking: { precheck_pass: 'downloading', refuse: 'rejected', ...cancelBeforeCommit },
    downloading: { download_complete: 'verifying', download_fail: 'failed', ...cancelBeforeCommit },
    verifying: { stage: 'staged', verify_fail: 'failed', stage_fail: 'failed', ...cancelBeforeCommit },
    staged: { commit: 'committed', commit_fail: 'failed', ...cancelBeforeCommit },
    committed: { reboot: 'rebooting', reboot_fail: 'rolling_back', health_check_start: 'health_checking', ...cancelAfterCommit },
    // A device that does not come back healthy is restored by its kernel watchdog (watchdog_rollback) or times out.
    rebooting: { rebooted: 'health_checking', ...cancelAfterCommit },
    health_checking: { health_check_pass: 'succeeded', health_check_fail: 'rolling_back', ...cancelAfterCommit },
    // Already undoing: a cancel has nothing left to stop; the watchdog may finish the job first.
    rolling_back: { rollback_complete: 'rolled_back', rollback_fail: 'rollback_failed', watchdog_rollback: 'rolled_back', ...timeouts },
    succeeded: {},
    rejected: {},
    failed: {},
    rolled_back: {},
    rollback_failed: {},
    timed_out: {},
    canceled: {},
  },
};

/** The non-terminal states, each of which has a per-step timeout. */
export type ExecutionActiveState = Exclude<ExecutionState, 'succeeded' | 'rejected' | 'failed' | 'rolled_back' | 'rollback_failed' | 'timed_out' | 'canceled'>;

export const executionActiveStates = executionStates.filter(
  (s): s is ExecutionActiveState => !executionTerminalStates.includes(s),
);

export interface ExecutionTimeouts {
  /** How long each non-terminal state may last before `step_timeout`. */
  readonly stepMs: Readonly<Record<ExecutionActiveState, number>>;
  /** How long an execution may last from its creation (queued) before `execution_timeout`. */
  readonly executionMs: number;
}

const minuteMs = 60_000;

/**
 * Defaults sized for a large artifact on a slow link: the download gets an hour, each device
 * step minutes; a device offline when queued has an hour to come back. The execution bound
 * (3 h) is below the sum of the steps of a successful update (3 h 45 min), so a device that
 * moves slowly through every step, each just inside its own limit, still ends.
 */
export const defaultExecutionTimeouts: ExecutionTimeouts = {
  stepMs: {
    queued: 60 * minuteMs, notified: 30 * minuteMs, prechecking: 10 * minuteMs, downloading: 60 * minuteMs,
    verifying: 10 * minuteMs, staged: 10 * minuteMs, committed: 10 * minuteMs, rebooting: 20 * minuteMs,
    health_checking: 15 * minuteMs, rolling_back: 20 * minuteMs,
  },
  executionMs: 3 * 60 * minuteMs,
};
