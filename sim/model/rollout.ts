import { SeededRandom } from '../../core/random/prng.js';
import { isTerminal } from '../../core/protocol/state-machine.js';
import { executionStates, executionTable, type ExecutionEvent, type ExecutionState, type ExecutionTimeouts, executionActiveStates } from '../../core/ota/execution-machine.js';
import { decideDeviceStep, decideExecutionEvent, decideExecutionTimeout, decideVersionReport, type ExecutionDecision, type ExecutionRecord } from '../../core/ota/execution-decisions.js';
import { decideRollout, startRollout, type RolloutExecution, type RolloutPlan, type RolloutRecord } from '../../core/ota/rollout-decisions.js';
import type { OtaCheckerName, OtaViolation } from '../checkers.js';
import { checkFirstWaveOnly, checkPausedInFirstWave, checkRolloutCompleted, type RolloutFacts } from '../ota/ota-checkers.js';
import type { DeviceOtaRecord } from '../ota/ota-observer.js';
import type { BrickMode, CrashPlan } from '../ota/device-updates.js';
import { brickSelector, crashPlanner, ratioSelector } from '../ota/selectors.js';
import type { ScenarioOta } from '../scenario.js';
import { Ev } from './events.js';
import { Dir } from './network.js';
import { rolloutSummary, type RolloutSummary } from './rollout-summary.js';
import { Side } from './presence.js';
import type { ModelWorld } from './world.js';

/**
 * The rollout in the model tier (docs/simulation.md, "Model tier"): the coordinator and each
 * device's update runner, on the model's event queue, deciding with core/ota's own functions
 * (startRollout's assignWaves, decideRollout, decideExecutionEvent, decideExecutionTimeout,
 * decideVersionReport, decideDeviceStep), so a change to those tables or rules changes the model.
 *
 * What the full tier does, and what the model keeps of it:
 * - control plane (server/ota/rollouts.ts): the rollout starts at `ota.atMs` with one tick; a
 *   sweep every second times executions out and ticks; a tick's devices get an execution
 *   (queued, then notified at once) and a notice to the gateway holding their session; a device
 *   offline then gets it at its next AUTH, as every device does again at each AUTH. A report
 *   that ends an execution ticks at once; `rebooted` issues a health nonce and pushes the notice.
 * - device (agent/ota/update-runner.ts on sim/ota/device-updates.ts): a seeded pace before each
 *   step, a report per move (signed frames over the device's link: lost while it is offline or
 *   partitioned, re-sent after a third of the step timeout up to 4 times, and again with every
 *   notice), the download at `downloadBytesPerSecond` in `downloadChunkBytes` chunks, cut in a
 *   window once it holds `cutAtPercent` (new requests find no server there), resumed after
 *   `retryDelayMs` (doubling after attempts without new bytes, failing after `attemptsMax` of
 *   them); a targets-route download takes no virtual time (SimFetch's TUF fetch has none); the
 *   reboot a seeded delay, never ending for a silent brick; a crash at a kernel call (before or
 *   after it) recovered from the journal after its down time (before: the step again; after: its
 *   move), the agent process down meanwhile (Presence.crash).
 * Not kept: the notice's and reports' bytes, signatures, TUF metadata and digests; the events
 * stream between gateway and control plane (a report is applied when it reaches the gateway);
 * operator actions (no scenario has any).
 *
 * Nothing here exists in a run without `ota`: the world holds no ModelRollout then.
 */
const reportEvents = [
  'accept', 'precheck_pass', 'download_complete', 'download_fail', 'stage', 'commit', 'reboot', 'rebooted', 'rollback_complete',
] as const satisfies readonly ExecutionEvent[];
type ReportEvent = (typeof reportEvents)[number];
const reportCode: Readonly<Record<ReportEvent, number>> = Object.fromEntries(reportEvents.map((event, i) => [event, i])) as Record<ReportEvent, number>;
const versionHealthy = reportEvents.length;
const versionUnhealthy = reportEvents.length + 1;
/** A report frame's argument: its code in the low bits, the health nonce it carries above them. */
const codeBits = 16;

const stateIndex: Readonly<Record<ExecutionState, number>> = Object.fromEntries(executionStates.map((state, i) => [state, i])) as Record<ExecutionState, number>;
const noState = -1;
const brickCodes: readonly (BrickMode | null)[] = [null, 'health_check_fails', 'silent'];
/** The agent's report re-send (sim/ota/device-updates.ts reportResend): at most this many per execution. */
const resendsMax = 4;
/** The resumable download's longest wait between attempts (agent/ota/resumable-download.ts). */
const retryDelayMsMax = 30_000;
/** The coordinator's sweep (server/ota/control-plane-ota.ts otaSweepDefaults.rolloutSweepIntervalMs). */
export const rolloutSweepIntervalMs = 1_000;
/** The coordinator's re-push of a notice a report shows was missed, at most once per this (server/ota/rollouts.ts noticeRepushIntervalMsDefault). */
export const noticeRepushIntervalMs = 5_000;
/** The full tier's device ids (sim/run.ts registerDevices): the coordinator's waves are cut from this order. */
export const modelDeviceId = (agent: number): string => `dev-${String(agent + 1).padStart(5, '0')}`;

/** What each device's runner does next, kept apart from the control plane's view of the execution. */
class Devices {
  /** The journal's state (executionStates index), noState before the first notice. */
  readonly state: Int8Array;
  /** Bumped by a crash: a pace, download or reboot the dead process had pending is stale. */
  readonly epoch: Int32Array;
  /** A pace, download or reboot is pending (the runner's one sequence of steps). */
  readonly busy: Uint8Array;
  /** A notice came while busy: taken when the sequence stops (the runner queues it behind). */
  readonly noticePending: Uint8Array;
  /** The health nonce the device holds (0: none yet) and the one a pending notice carries. */
  readonly nonce: Int32Array;
  readonly nonceNext: Int32Array;
  /** Down after an OTA crash, until its recovery. */
  readonly down: Uint8Array;
  readonly brick: Uint8Array;
  readonly targetsRoute: Uint8Array;
  readonly committed: Uint8Array;
  // The download: bytes held, the furthest reached, attempts without progress, the next wait, the deadline, the bytes the pending attempt ends with.
  readonly held: Int32Array;
  readonly furthest: Int32Array;
  readonly withoutProgress: Int32Array;
  readonly delayMs: Int32Array;
  readonly deadlineMs: Float64Array;
  readonly heldNext: Int32Array;
  readonly resendEpoch: Int32Array;
  readonly resends: Uint8Array;
  /** Per taken device: its runner's stream (steps and report ids), its crash plan, its reports so far. */
  readonly random: (SeededRandom | undefined)[];
  readonly crash: (CrashPlan | null)[];
  readonly reports: (number[] | undefined)[];

  constructor(n: number) {
    this.state = new Int8Array(n).fill(noState);
    this.epoch = new Int32Array(n);
    this.busy = new Uint8Array(n);
    this.noticePending = new Uint8Array(n);
    this.nonce = new Int32Array(n);
    this.nonceNext = new Int32Array(n);
    this.down = new Uint8Array(n);
    this.brick = new Uint8Array(n);
    this.targetsRoute = new Uint8Array(n);
    this.committed = new Uint8Array(n);
    this.held = new Int32Array(n);
    this.furthest = new Int32Array(n);
    this.withoutProgress = new Int32Array(n);
    this.delayMs = new Int32Array(n);
    this.deadlineMs = new Float64Array(n);
    this.heldNext = new Int32Array(n);
    this.resendEpoch = new Int32Array(n);
    this.resends = new Uint8Array(n);
    this.random = new Array<SeededRandom | undefined>(n);
    this.crash = new Array<CrashPlan | null>(n).fill(null);
    this.reports = new Array<number[] | undefined>(n);
  }
}

/** The control plane's record of each device's execution (one rollout, so at most one each). */
class Executions {
  readonly state: Int8Array;
  readonly createdAtMs: Float64Array;
  readonly enteredAtMs: Float64Array;
  readonly wave: Uint8Array;
  /** The health nonce issued (0: none), a number per issue. */
  readonly nonce: Int32Array;
  /** When the notice was last pushed again for a report that showed it missed (RolloutService #repushIfMissed); -Infinity: never. */
  readonly repushedAtMs: Float64Array;
  /** The coordinator's view (decideRollout reads it), keyed by device id, in creation order. */
  readonly view = new Map<string, RolloutExecution>();
  /** Agents with an execution not yet terminal, in creation order (the sweep's order). */
  readonly active = new Set<number>();

  constructor(n: number) {
    this.state = new Int8Array(n).fill(noState);
    this.createdAtMs = new Float64Array(n);
    this.enteredAtMs = new Float64Array(n);
    this.wave = new Uint8Array(n);
    this.nonce = new Int32Array(n);
    this.repushedAtMs = new Float64Array(n).fill(-Infinity);
  }
}

/** The full tier's OTA stream (sim/run.ts: the eighth fork of the seed) after the artifact's bytes, forked as otaNoticeHandler forks it. */
function otaStreams(seed: number, ota: ScenarioOta) {
  const root = new SeededRandom(seed);
  let stream = root.fork();
  for (let i = 1; i < 8; i += 1) stream = root.fork();
  // prepareOta draws the artifact: one word per 4 bytes.
  for (let i = 0; i < ota.artifactBytes; i += 4) stream.nextUint32();
  const bricks = brickSelector(ota.bricks, stream.fork());
  const runners = stream.fork();
  const targetsRoute = ratioSelector(ota.targetsRoute?.ratio, stream.fork());
  const crashes = crashPlanner(ota.crashes, stream.fork());
  return { bricks, runners, targetsRoute, crashes };
}

export class ModelRollout {
  readonly #w: ModelWorld;
  readonly #ota: ScenarioOta;
  readonly #timeouts: ExecutionTimeouts;
  readonly #draws: ReturnType<typeof otaStreams>;
  readonly #device: Devices;
  readonly #exec: Executions;
  readonly #resendIntervalMs: number;
  readonly #chunkMs: number;
  #record: RolloutRecord | null = null;
  #lastChangeAtMs: number | null = null;
  #nonces = 0;
  readonly #history: Array<{ status: string; wave: number }> = [];

  /** core/ota's decideRollout; a test swaps in a wrong rule to see the validation fail. */
  readonly #decideRollout: typeof decideRollout;

  constructor(world: ModelWorld, ota: ScenarioOta, seed: number, decide: typeof decideRollout = decideRollout) {
    this.#w = world;
    this.#decideRollout = decide;
    this.#ota = ota;
    const stepMs = Object.fromEntries(executionActiveStates.map((state) => [state, ota.stepTimeoutMs])) as ExecutionTimeouts['stepMs'];
    this.#timeouts = { stepMs, executionMs: ota.executionTimeoutMs };
    this.#draws = otaStreams(seed, ota);
    this.#device = new Devices(world.agents);
    this.#exec = new Executions(world.agents);
    this.#resendIntervalMs = Math.max(1_000, Math.floor(ota.stepTimeoutMs / 3));
    this.#chunkMs = Math.max(1, Math.ceil((ota.device.downloadChunkBytes * 1_000) / ota.device.downloadBytesPerSecond));
  }

  schedule(): void {
    this.#w.at(this.#ota.atMs, Ev.otaStart);
  }

  // --- the control plane ---------------------------------------------------------------------

  onStart(): void {
    const w = this.#w;
    const plan: RolloutPlan = {
      devicesPerMinuteMax: this.#ota.devicesPerMinuteMax,
      waves: this.#ota.waves.map((wave) => ({ selector: { percent: wave.percent }, successThreshold: wave.successThreshold, errorThreshold: wave.errorThreshold })),
    };
    this.#record = startRollout('rollout-model', plan, Array.from({ length: w.agents }, (_, agent) => modelDeviceId(agent)));
    this.#lastChangeAtMs = w.nowMs;
    this.#history.push({ status: 'started', wave: 0 });
    this.#tick();
    w.after(rolloutSweepIntervalMs, Ev.otaSweep);
  }

  /** Timeouts of every active execution, then a tick; again in a second while anything can still change. */
  onSweep(): void {
    const w = this.#w;
    for (const agent of [...this.#exec.active]) {
      const decision = decideExecutionTimeout(this.#recordOf(agent), w.nowMs, this.#timeouts);
      if (decision?.applied === true) this.#apply(agent, decision);
    }
    this.#tick();
    if (this.#record?.status === 'running' || this.#exec.active.size > 0) w.after(rolloutSweepIntervalMs, Ev.otaSweep);
  }

  #tick(): void {
    const record = this.#record;
    if (record === null) return;
    const w = this.#w;
    const decision = this.#decideRollout(record, this.#exec.view, w.nowMs);
    if (decision.next !== record) {
      this.#record = decision.next;
      this.#lastChangeAtMs = w.nowMs;
      if (decision.next.status !== record.status) this.#history.push({ status: decision.next.status, wave: decision.next.waveIndex });
    }
    for (const deviceId of decision.notify) this.#createExecution(Number(deviceId.slice(4)) - 1, decision.next.waveIndex);
  }

  #createExecution(agent: number, wave: number): void {
    const exec = this.#exec;
    const nowMs = this.#w.nowMs;
    exec.state[agent] = stateIndex.queued;
    exec.createdAtMs[agent] = nowMs;
    exec.enteredAtMs[agent] = nowMs;
    exec.wave[agent] = wave;
    exec.active.add(agent);
    this.#w.counts.ota_executions = (this.#w.counts.ota_executions ?? 0) + 1;
    const notified = decideExecutionEvent(this.#recordOf(agent), 'notify', nowMs);
    if (notified.applied) this.#apply(agent, notified);
    this.#pushNotice(agent);
  }

  #recordOf(agent: number): ExecutionRecord {
    const exec = this.#exec;
    const nonce = exec.nonce[agent]!;
    return {
      executionId: `ex-${agent}`, deviceId: modelDeviceId(agent), state: executionStates[exec.state[agent]!]!,
      createdAtMs: exec.createdAtMs[agent]!, stateEnteredAtMs: exec.enteredAtMs[agent]!, healthNonce: nonce === 0 ? null : `n${nonce}`,
      targetReleaseCounter: 2, previousReleaseCounter: 1,
    };
  }

  /** Performs a decision as RolloutService #apply does: the move, a nonce when the health check starts, the notice, a tick when it ended. */
  #apply(agent: number, decision: Extract<ExecutionDecision, { applied: true }>): void {
    const exec = this.#exec;
    const terminal = isTerminal(executionTable, decision.to);
    exec.state[agent] = stateIndex[decision.to];
    exec.enteredAtMs[agent] = decision.atMs;
    exec.nonce[agent] = decision.issueHealthNonce ? ++this.#nonces : 0;
    exec.view.set(modelDeviceId(agent), { state: decision.to, createdAtMs: exec.createdAtMs[agent]!, endedAtMs: terminal ? decision.atMs : null });
    if (!terminal) {
      if (decision.issueHealthNonce) this.#pushNotice(agent);
      return;
    }
    exec.active.delete(agent);
    if (decision.to === 'succeeded') this.#w.counts.ota_succeeded = (this.#w.counts.ota_succeeded ?? 0) + 1;
    this.#tick();
  }

  /** The notice to the gateway holding the device's session (a terminal execution has none); without one, the device gets it at its next AUTH. */
  #pushNotice(agent: number): void {
    const state = this.#exec.state[agent]!;
    if (state === noState || isTerminal(executionTable, executionStates[state]!)) return;
    const presence = this.#w.presence;
    if (presence.gatewaySide[agent] !== Side.ready || presence.linkOpen[agent] !== 1) return;
    presence.sendFrame(Dir.toAgent, agent, Ev.otaNoticeAtAgent, this.#exec.nonce[agent]!);
  }

  /** The gateway authenticated the device's session: it sends the device's notice, if any. */
  onGatewayReady(agent: number): void {
    this.#pushNotice(agent);
  }

  /** An OTA_REPORT frame at the gateway, handed on to the control plane. */
  onReportAtGateway(agent: number, arg: number, link: number, seq: number): void {
    const presence = this.#w.presence;
    if (!presence.acceptAtGateway(agent, link, seq) || presence.gatewaySide[agent] !== Side.ready) return;
    presence.refreshKey(agent, link, false);
    if (presence.gatewaySide[agent] !== Side.ready) return;
    this.#onReport(agent, arg & ((1 << codeBits) - 1), arg >>> codeBits);
  }

  #onReport(agent: number, code: number, nonce: number): void {
    const state = this.#exec.state[agent]!;
    if (state === noState) return;
    const record = this.#recordOf(agent);
    // Repeats of settled steps are normal (reports come at least once): ignored, as RolloutService.onReport does.
    if (isTerminal(executionTable, record.state)) return;
    const nowMs = this.#w.nowMs;
    let decision: ExecutionDecision;
    if (code === versionHealthy || code === versionUnhealthy) {
      if (record.state === 'rolling_back') return;
      const verdict = decideVersionReport(record, {
        deviceId: record.deviceId, executionId: record.executionId, nonce: `n${nonce}`, releaseCounter: 2, healthy: code === versionHealthy, signatureValid: true,
      }, nowMs);
      if (!verdict.accepted) return;
      decision = verdict.decision;
    } else {
      decision = decideExecutionEvent(record, reportEvents[code]!, nowMs);
    }
    if (decision.applied) {
      this.#apply(agent, decision);
      return;
    }
    // `rebooted` again while the health check waits with its nonce: the notice with the nonce was
    // lost, so it goes again, at most once per interval (RolloutService #repushIfMissed; the model
    // has no cancel, so neither of the other cases there: a cancel before or after the commit).
    const exec = this.#exec;
    if (reportEvents[code] === 'rebooted' && record.state === 'health_checking' && exec.nonce[agent] !== 0
      && nowMs - exec.enteredAtMs[agent]! >= noticeRepushIntervalMs && nowMs - exec.repushedAtMs[agent]! >= noticeRepushIntervalMs) {
      exec.repushedAtMs[agent] = nowMs;
      this.#pushNotice(agent);
    }
  }

  // --- the devices ---------------------------------------------------------------------------

  /** An OTA_NOTICE at the device: the first one takes the execution (its fates drawn), later ones bring the nonce and make it send its reports again. */
  onNoticeAtAgent(agent: number, nonce: number, link: number, seq: number): void {
    if (!this.#w.presence.acceptAtAgent(agent, link, seq)) return;
    const device = this.#device;
    if (device.down[agent] === 1) return;
    if (device.state[agent] === noState) {
      this.#take(agent);
      this.#run(agent);
      return;
    }
    device.nonceNext[agent] = Math.max(device.nonceNext[agent]!, nonce);
    if (device.busy[agent] === 1) {
      device.noticePending[agent] = 1;
      return;
    }
    this.#takeNotice(agent);
  }

  #takeNotice(agent: number): void {
    const device = this.#device;
    device.noticePending[agent] = 0;
    device.nonce[agent] = device.nonceNext[agent]!;
    this.#resend(agent);
    if (!isTerminal(executionTable, executionStates[device.state[agent]!]!)) this.#run(agent);
  }

  /** The device's fates, drawn as DeviceUpdates #take draws them (brick, targets route, crash), with its runner's stream forked first. */
  #take(agent: number): void {
    const device = this.#device;
    const draws = this.#draws;
    device.random[agent] = draws.runners.fork();
    const brick = draws.bricks();
    device.brick[agent] = brickCodes.indexOf(brick);
    device.targetsRoute[agent] = draws.targetsRoute() ? 1 : 0;
    device.crash[agent] = draws.crashes(brick);
    device.state[agent] = stateIndex.notified;
    device.reports[agent] = [];
    device.delayMs[agent] = this.#ota.device.retryDelayMs;
    const counts = this.#w.counts;
    if (brick !== null) counts.ota_devices_bricked = (counts.ota_devices_bricked ?? 0) + 1;
  }

  /** The runner's sequence: a seeded pace before the next step (decideDeviceStep), unless it waits on the control plane. */
  #run(agent: number): void {
    const device = this.#device;
    if (device.busy[agent] === 1 || device.down[agent] === 1) return;
    const state = executionStates[device.state[agent]!]!;
    const next = decideDeviceStep({ state, cancelRequested: false, rebootRequired: true });
    if (next.type !== 'step' || next.step === 'none') return this.#stopped(agent);
    device.busy[agent] = 1;
    this.#w.after(this.#stepDelayMs(agent), Ev.otaPaceDone, agent, device.epoch[agent]!);
  }

  /** The sequence stopped (waiting, or ended): a notice that came meanwhile is taken now. */
  #stopped(agent: number): void {
    const device = this.#device;
    device.busy[agent] = 0;
    if (device.noticePending[agent] === 1) this.#takeNotice(agent);
  }

  #stepDelayMs(agent: number): number {
    const { stepDelayMsMin, stepDelayMsMax } = this.#ota.device;
    return this.#device.random[agent]!.intBetween(stepDelayMsMin, stepDelayMsMax);
  }

  onPaceDone(agent: number, epoch: number): void {
    const device = this.#device;
    if (device.epoch[agent] !== epoch) return;
    device.busy[agent] = 0;
    const next = decideDeviceStep({ state: executionStates[device.state[agent]!]!, cancelRequested: false, rebootRequired: true });
    if (next.type !== 'step') return this.#stopped(agent);
    switch (next.step) {
      case 'check_director': return this.#moveOn(agent, 'prechecking', 'accept');
      case 'precheck': return this.#moveOn(agent, 'downloading', 'precheck_pass');
      case 'download': return this.#startDownload(agent);
      case 'verify_and_stage': return this.#kernelStep(agent, 'stage', 'staged', 'stage');
      case 'commit': return this.#kernelStep(agent, 'commit', 'committed', 'commit');
      case 'reboot': return this.#reboot(agent);
      case 'report_version': return this.#healthCheck(agent);
      case 'rollback': return this.#kernelStep(agent, 'rollback', 'rolled_back', 'rollback_complete');
      default: return this.#stopped(agent);
    }
  }

  /** Journals the move with its report (a draw of the report id), sends it, and goes on. */
  #moveOn(agent: number, to: ExecutionState, event: ReportEvent): void {
    this.#move(agent, to, reportCode[event]);
    this.#run(agent);
  }

  #move(agent: number, to: ExecutionState, code: number): void {
    const device = this.#device;
    device.state[agent] = stateIndex[to];
    // The report id: 8 bytes of the runner's stream (UpdateRunner #report).
    device.random[agent]!.nextUint32();
    device.random[agent]!.nextUint32();
    const arg = code === versionHealthy || code === versionUnhealthy ? code + (device.nonce[agent]! << codeBits) : code;
    device.reports[agent]!.push(arg);
    if (code === reportCode.commit) {
      device.committed[agent] = 1;
      this.#w.counts.ota_devices_committed = (this.#w.counts.ota_devices_committed ?? 0) + 1;
    }
    this.#send(agent, arg);
    this.#armResend(agent);
  }

  #send(agent: number, arg: number): void {
    // The agent core sends only on a ready session; otherwise the report waits for a re-send.
    if (this.#w.presence.isConnected(agent)) this.#w.presence.sendFrame(Dir.toGateway, agent, Ev.otaReportAtGateway, arg);
  }

  /** Every report of the execution again (only the last once it ended), as the runner does with each notice and on its re-send timer. */
  #resend(agent: number): void {
    const reports = this.#device.reports[agent];
    if (reports === undefined || reports.length === 0) return;
    const ended = isTerminal(executionTable, executionStates[this.#device.state[agent]!]!);
    for (const arg of ended ? reports.slice(-1) : reports) this.#send(agent, arg);
  }

  #armResend(agent: number): void {
    const device = this.#device;
    const epoch = ++device.resendEpoch[agent]!;
    if (device.resends[agent]! < resendsMax) this.#w.after(this.#resendIntervalMs, Ev.otaResend, agent, epoch);
  }

  onResend(agent: number, epoch: number): void {
    const device = this.#device;
    if (device.resendEpoch[agent] !== epoch || device.down[agent] === 1 || device.resends[agent]! >= resendsMax) return;
    device.resends[agent]! += 1;
    this.#resend(agent);
    this.#armResend(agent);
  }

  /** A kernel call (stage, commit, rollback); a planned crash comes just before it or just after it, before its outcome is journaled. */
  #kernelStep(agent: number, intent: CrashPlan['intent'], to: ExecutionState, event: ReportEvent): void {
    const device = this.#device;
    const plan = device.crash[agent];
    if (plan?.intent !== intent) return this.#moveOn(agent, to, event);
    device.crash[agent] = null;
    const w = this.#w;
    w.counts.ota_crashes = (w.counts.ota_crashes ?? 0) + 1;
    w.counts.agent_crashes! += 1;
    device.down[agent] = 1;
    device.busy[agent] = 0;
    device.noticePending[agent] = 0;
    device.epoch[agent]! += 1;
    w.presence.crash(agent, plan.downMs);
    // After the call: the kernel holds its outcome, which recovery reads and journals (code + 1); before it: the step is done again.
    w.after(plan.downMs, Ev.otaRecover, agent, device.epoch[agent]!, plan.beforeCall ? 0 : reportCode[event] + 1, stateIndex[to]);
  }

  /** A new runner recovers from the journal (UpdateRunner.recover) and goes on. */
  onRecover(agent: number, epoch: number, settledCode: number, to: number): void {
    const device = this.#device;
    if (device.epoch[agent] !== epoch) return;
    device.down[agent] = 0;
    // A new runner: its re-send budget is whole again (the old one's timers died with the process).
    device.resends[agent] = 0;
    if (settledCode > 0) this.#move(agent, executionStates[to]!, settledCode - 1);
    this.#run(agent);
  }

  #reboot(agent: number): void {
    this.#move(agent, 'rebooting', reportCode.reboot);
    const device = this.#device;
    // A silent brick never comes back from its reboot: only the control plane's step timeout ends it.
    if (brickCodes[device.brick[agent]!] === 'silent') return this.#stopped(agent);
    device.busy[agent] = 1;
    this.#w.after(this.#stepDelayMs(agent), Ev.otaRebootDone, agent, device.epoch[agent]!);
  }

  onRebootDone(agent: number, epoch: number): void {
    const device = this.#device;
    if (device.epoch[agent] !== epoch) return;
    device.busy[agent] = 0;
    this.#moveOn(agent, 'health_checking', 'rebooted');
  }

  /** Waits for the control plane's nonce; then the version report, healthy unless bricked (then the rollback follows). */
  #healthCheck(agent: number): void {
    const device = this.#device;
    if (device.nonce[agent] === 0) return this.#stopped(agent);
    const healthy = brickCodes[device.brick[agent]!] === null;
    this.#move(agent, healthy ? 'succeeded' : 'rolling_back', healthy ? versionHealthy : versionUnhealthy);
    if (healthy) return this.#stopped(agent);
    this.#run(agent);
  }

  // --- the download --------------------------------------------------------------------------

  #startDownload(agent: number): void {
    const device = this.#device;
    // The TUF targets route (no URL in the notice): fetched in one piece, uncut, in no virtual time (SimFetch.fetch).
    if (device.targetsRoute[agent] === 1) {
      this.#w.counts.ota_targets_route = (this.#w.counts.ota_targets_route ?? 0) + 1;
      return this.#moveOn(agent, 'verifying', 'download_complete');
    }
    device.busy[agent] = 1;
    device.deadlineMs[agent] = this.#w.nowMs + this.#ota.executionTimeoutMs;
    this.#attempt(agent);
  }

  #cutAt(atMs: number): { readonly cutAtPercent: number } | undefined {
    return this.#ota.downloadCuts?.find((cut) => atMs >= cut.atMs && atMs < cut.atMs + cut.durationMs);
  }

  /** One GET from the bytes held: its end (complete or cut) is known at its start, chunk by chunk as SimFetch delivers them. */
  #attempt(agent: number): void {
    const w = this.#w;
    const device = this.#device;
    w.counts.ota_download_attempts = (w.counts.ota_download_attempts ?? 0) + 1;
    const total = this.#ota.artifactBytes;
    // In a cut window new requests find no server: a failed attempt at once.
    if (this.#cutAt(w.nowMs) !== undefined) return this.#attemptFailed(agent);
    let position = device.held[agent]!;
    for (let chunk = 1; ; chunk += 1) {
      const atMs = w.nowMs + chunk * this.#chunkMs;
      const cut = this.#cutAt(atMs);
      if (cut !== undefined && position * 100 >= cut.cutAtPercent * total) {
        device.heldNext[agent] = position;
        return w.at(atMs, Ev.otaDownloadEnd, agent, device.epoch[agent]!, 0);
      }
      position = Math.min(total, position + this.#ota.device.downloadChunkBytes);
      if (position >= total) {
        device.heldNext[agent] = position;
        return w.at(atMs, Ev.otaDownloadEnd, agent, device.epoch[agent]!, 1);
      }
    }
  }

  onDownloadEnd(agent: number, epoch: number, complete: number): void {
    const device = this.#device;
    if (device.epoch[agent] !== epoch) return;
    device.held[agent] = device.heldNext[agent]!;
    if (complete === 1) {
      device.busy[agent] = 0;
      return this.#moveOn(agent, 'verifying', 'download_complete');
    }
    this.#w.counts.ota_download_cuts = (this.#w.counts.ota_download_cuts ?? 0) + 1;
    this.#attemptFailed(agent);
  }

  /** The resumable download's retry rule: progress resets the wait; attemptsMax attempts in a row without new bytes fail it. */
  #attemptFailed(agent: number): void {
    const device = this.#device;
    const w = this.#w;
    if (device.held[agent]! > device.furthest[agent]!) {
      device.furthest[agent] = device.held[agent]!;
      device.withoutProgress[agent] = 0;
      device.delayMs[agent] = this.#ota.device.retryDelayMs;
    } else if (++device.withoutProgress[agent]! >= this.#ota.device.attemptsMax) {
      device.busy[agent] = 0;
      return this.#moveOn(agent, 'failed', 'download_fail');
    }
    w.after(Math.min(device.delayMs[agent]!, Math.max(0, device.deadlineMs[agent]! - w.nowMs)), Ev.otaDownloadRetry, agent, device.epoch[agent]!);
    if (device.withoutProgress[agent]! > 0) device.delayMs[agent] = Math.min(device.delayMs[agent]! * 2, retryDelayMsMax);
  }

  onDownloadRetry(agent: number, epoch: number): void {
    const device = this.#device;
    if (device.epoch[agent] !== epoch) return;
    if (this.#w.nowMs >= device.deadlineMs[agent]!) {
      device.busy[agent] = 0;
      return this.#moveOn(agent, 'failed', 'download_fail');
    }
    this.#attempt(agent);
  }

  // --- the end of the run --------------------------------------------------------------------

  /** The device's journal state and whether a step of its runner is pending (tests, debugging). */
  deviceOf(agent: number): { state: ExecutionState | null; busy: boolean; down: boolean; nonce: number; held: number; reports: readonly number[] } {
    const d = this.#device;
    const state = d.state[agent]!;
    return { state: state === noState ? null : executionStates[state]!, busy: d.busy[agent] === 1, down: d.down[agent] === 1, nonce: d.nonce[agent]!, held: d.held[agent]!, reports: d.reports[agent] ?? [] };
  }

  /** The rollout as the full tier's readRolloutFacts reads it from the stores. */
  facts(): RolloutFacts | undefined {
    const record = this.#record;
    if (record === null) return undefined;
    const exec = this.#exec;
    const executions = [...exec.view.keys()].map((deviceId) => {
      const agent = Number(deviceId.slice(4)) - 1;
      return { deviceId, wave: exec.wave[agent]!, state: executionStates[exec.state[agent]!]! };
    });
    return { status: record.status, pauseReason: record.pauseReason, waveIndex: record.waveIndex, waves: record.waves, executions, history: this.#history };
  }

  summary(): RolloutSummary | undefined {
    return rolloutSummary(this.facts(), this.#lastChangeAtMs);
  }

  /** What the observer of the full tier would hold for each device that took the release, as far as the model knows it. */
  #records(): DeviceOtaRecord[] {
    const device = this.#device;
    const records: DeviceOtaRecord[] = [];
    for (let agent = 0; agent < this.#w.agents; agent += 1) {
      if (device.state[agent] === noState) continue;
      records.push({
        deviceId: modelDeviceId(agent), executionId: `ex-${agent}`, wave: this.#exec.wave[agent]!, brick: brickCodes[device.brick[agent]!] ?? null,
        length: this.#ota.artifactBytes, attempts: [], downloaded: null, committed: device.committed[agent] === 1, healthy: null, ended: null,
        events: [], targetsRoute: device.targetsRoute[agent] === 1, targetFetches: 0, kernelCalls: {}, crash: null,
      });
    }
    return records;
  }

  /**
   * The OTA checkers that the model's facts can answer: the rollout's end state and waves
   * (ota_paused_in_first_wave, ota_first_wave_only, ota_rollout_completed), with the full tier's
   * own functions. Not ota_download_resumed, ota_targets_route, ota_crash_recovered: the model has
   * no bytes, requests, digests, journal or kernel to check (it resumes, routes and recovers by
   * construction).
   */
  check(): { checked: OtaCheckerName[]; violations: OtaViolation[] } {
    const facts = this.facts();
    if (this.#ota.expect === 'paused_in_first_wave') {
      return {
        checked: ['ota_first_wave_only', 'ota_paused_in_first_wave'],
        violations: [...checkPausedInFirstWave(facts), ...(facts === undefined ? [] : checkFirstWaveOnly(facts, this.#records()))],
      };
    }
    return { checked: ['ota_rollout_completed'], violations: checkRolloutCompleted(facts, this.#w.agents) };
  }
}
