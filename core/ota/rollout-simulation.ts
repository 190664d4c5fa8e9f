import { isTerminal } from '../protocol/state-machine.js';
import { executionTable, type ExecutionEvent, type ExecutionState, type ExecutionTimeouts } from './execution-machine.js';
import { decideExecutionEvent, decideExecutionTimeout, decideVersionReport, executionDeadline, type ExecutionDecision, type ExecutionRecord } from './execution-decisions.js';
import { decideOperatorAction, decideRollout, type OperatorAction, type RolloutDecision, type RolloutExecution, type RolloutRecord } from './rollout-decisions.js';

/**
 * A small deterministic driver for the coordinator's decisions on virtual time, for property
 * tests (and later the simulator): devices follow a scripted fate, the control plane applies
 * every decision as the real one would, and an observer sees each tick. No I/O, no clock.
 */
export type DeviceFate =
  /** Walks the successful path, one step every `stepDelayMs`. */
  | { readonly kind: 'succeed'; readonly stepDelayMs: number }
  /** Fails in the given step (the failure event that state allows), after walking there. */
  | { readonly kind: 'fail'; readonly inState: FailingState; readonly stepDelayMs: number }
  /** Stops answering in the given state: only timeouts end it (hawkBit #693). */
  | { readonly kind: 'stall'; readonly inState: ExecutionState; readonly stepDelayMs: number };

export type FailingState = 'notified' | 'prechecking' | 'downloading' | 'verifying' | 'staged' | 'health_checking';

export interface SimulationInput {
  readonly rollout: RolloutRecord;
  readonly fates: ReadonlyMap<string, DeviceFate>;
  readonly timeouts: ExecutionTimeouts;
  /** Operator actions at given times, in time order. */
  readonly operator: readonly { readonly atMs: number; readonly action: OperatorAction }[];
  /** Called with every coordinator decision, before it is applied. */
  readonly observe?: (tick: { readonly nowMs: number; readonly before: RolloutRecord; readonly decision: RolloutDecision; readonly executions: ReadonlyMap<string, SimExecution> }) => void;
  /** A bound on the loop: a run that needs more is reported as not settled. */
  readonly stepsMax?: number;
}

export interface SimExecution extends RolloutExecution, ExecutionRecord {
  /** When the device acts next; null when it waits on the control plane or stalls. */
  readonly deviceActsAtMs: number | null;
}

export interface SimulationResult {
  readonly rollout: RolloutRecord;
  readonly executions: ReadonlyMap<string, SimExecution>;
  readonly endMs: number;
  /** False when the loop hit its bound with something still scheduled. */
  readonly settled: boolean;
}

const successPath: Readonly<Partial<Record<ExecutionState, ExecutionEvent>>> = {
  queued: 'notify', notified: 'accept', prechecking: 'precheck_pass', downloading: 'download_complete', verifying: 'stage',
  staged: 'commit', committed: 'reboot', rebooting: 'rebooted', rolling_back: 'rollback_complete',
};
const failureEvent: Readonly<Record<Exclude<FailingState, 'health_checking'>, ExecutionEvent>> = {
  notified: 'refuse', prechecking: 'refuse', downloading: 'download_fail', verifying: 'verify_fail', staged: 'commit_fail',
};

/** The run's mutable state: the rollout record, the executions, time and the operator script's position. */
interface Run {
  readonly input: SimulationInput;
  readonly executions: Map<string, SimExecution>;
  rollout: RolloutRecord;
  nowMs: number;
  operatorIndex: number;
  wakeAtMs: number | null;
}

export function simulateRollout(input: SimulationInput): SimulationResult {
  const run: Run = { input, executions: new Map(), rollout: input.rollout, nowMs: 0, operatorIndex: 0, wakeAtMs: 0 };
  const stepsMax = input.stepsMax ?? 100_000;
  for (let step = 0; step < stepsMax; step++) {
    applyOperatorActions(run);
    advanceExecutions(run);
    coordinate(run);
    const next = nextEventAtMs(run.executions, input, run.operatorIndex, run.wakeAtMs, run.nowMs);
    if (next === null) return { rollout: run.rollout, executions: run.executions, endMs: run.nowMs, settled: true };
    run.nowMs = next;
  }
  return { rollout: run.rollout, executions: run.executions, endMs: run.nowMs, settled: false };
}

function applyOperatorActions(run: Run): void {
  const script = run.input.operator;
  while (run.operatorIndex < script.length && script[run.operatorIndex]!.atMs <= run.nowMs) {
    const decision = decideOperatorAction(run.rollout, script[run.operatorIndex++]!.action, run.executions);
    if (!decision.ok) continue;
    run.rollout = decision.next;
    for (const id of decision.cancel) apply(run.executions, id, decideExecutionEvent(run.executions.get(id)!, 'cancel', run.nowMs), run.input.fates);
  }
}

/** Timeouts first: a device acting at the very moment its step ran out is too late. */
function advanceExecutions(run: Run): void {
  for (const [id, execution] of run.executions) {
    const timeout = decideExecutionTimeout(execution, run.nowMs, run.input.timeouts);
    if (timeout !== undefined) apply(run.executions, id, timeout, run.input.fates);
    else if (execution.deviceActsAtMs !== null && execution.deviceActsAtMs <= run.nowMs) deviceActs(run.executions, id, run.input.fates.get(id)!, run.nowMs);
  }
}

function coordinate(run: Run): void {
  const decision = decideRollout(run.rollout, run.executions, run.nowMs);
  run.input.observe?.({ nowMs: run.nowMs, before: run.rollout, decision, executions: run.executions });
  run.rollout = decision.next;
  for (const id of decision.notify) create(run.executions, id, run.nowMs, run.input.fates.get(id)!);
  run.wakeAtMs = decision.wakeAtMs;
}

function nextEventAtMs(executions: ReadonlyMap<string, SimExecution>, input: SimulationInput, operatorIndex: number, wakeAtMs: number | null, nowMs: number): number | null {
  const times: number[] = [];
  if (wakeAtMs !== null) times.push(wakeAtMs);
  if (operatorIndex < input.operator.length) times.push(input.operator[operatorIndex]!.atMs);
  for (const execution of executions.values()) {
    if (execution.deviceActsAtMs !== null) times.push(execution.deviceActsAtMs);
    const deadline = executionDeadline(execution, input.timeouts);
    if (deadline !== undefined) times.push(deadline.atMs);
  }
  if (times.length === 0) return null;
  // Something due now was handled this tick; never go back in time.
  return Math.max(nowMs + 1, Math.min(...times));
}

function create(executions: Map<string, SimExecution>, id: string, nowMs: number, fate: DeviceFate): void {
  const execution: SimExecution = {
    executionId: `ex-${id}`, deviceId: id, state: 'queued', createdAtMs: nowMs, stateEnteredAtMs: nowMs, endedAtMs: null,
    healthNonce: null, targetReleaseCounter: 2, previousReleaseCounter: 1, deviceActsAtMs: null,
  };
  executions.set(id, { ...execution, deviceActsAtMs: actsAtMs(execution, fate, nowMs) });
}

function deviceActs(executions: Map<string, SimExecution>, id: string, fate: DeviceFate, nowMs: number): void {
  const execution = executions.get(id)!;
  if (execution.state === 'health_checking') {
    const healthy = !(fate.kind === 'fail' && fate.inState === 'health_checking');
    const verdict = decideVersionReport(execution, {
      deviceId: id, executionId: execution.executionId, nonce: execution.healthNonce ?? '', releaseCounter: 2, healthy, signatureValid: true,
    }, nowMs);
    settle(executions, id, verdict.accepted ? verdict.decision : undefined, fate);
    return;
  }
  const fails = fate.kind === 'fail' && fate.inState === execution.state;
  const event = fails ? failureEvent[fate.inState as keyof typeof failureEvent] : successPath[execution.state];
  settle(executions, id, event === undefined ? undefined : decideExecutionEvent(execution, event, nowMs), fate);
}

/** Applies what the device's action caused; an action that caused nothing leaves the device waiting (only timeouts move it). */
function settle(executions: Map<string, SimExecution>, id: string, decision: ExecutionDecision | undefined, fate: DeviceFate): void {
  if (decision?.applied === true) apply(executions, id, decision, new Map([[id, fate]]));
  else executions.set(id, { ...executions.get(id)!, deviceActsAtMs: null });
}

function apply(executions: Map<string, SimExecution>, id: string, decision: ExecutionDecision, fates: ReadonlyMap<string, DeviceFate>): void {
  if (!decision.applied) return;
  const before = executions.get(id)!;
  const ended = isTerminal(executionTable, decision.to);
  const moved: SimExecution = {
    ...before, state: decision.to, stateEnteredAtMs: decision.atMs, endedAtMs: ended ? decision.atMs : null,
    // A nonce per health check; the real control plane draws it from its RandomSource.
    healthNonce: decision.issueHealthNonce ? `nonce-${id}-${decision.atMs}` : null, deviceActsAtMs: null,
  };
  executions.set(id, { ...moved, deviceActsAtMs: ended ? null : actsAtMs(moved, fates.get(id)!, decision.atMs) });
}

function actsAtMs(execution: ExecutionRecord, fate: DeviceFate, nowMs: number): number | null {
  if (fate.kind === 'stall' && fate.inState === execution.state) return null;
  return nowMs + fate.stepDelayMs;
}
