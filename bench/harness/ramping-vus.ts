import type { Clock, Scheduler, TimerHandle } from '../../core/ports/ports.js';
import type { RampingStage } from './scenario.js';

/**
 * k6's ramping-vus executor for one instance, on injected time (a run uses the system's, a test
 * virtual time). What is implemented, from k6's documentation and lib/executor/ramping_vus.go:
 *
 * - Planned VUs: from `startVUs` (0, as bench/k6/lib.js sets it) each stage ramps linearly to its
 *   target: a stage from a to b over d changes the count by one at start + k*d/|b-a|, k = 1..|b-a|
 *   (a 0 s stage jumps at once); after the last stage the count drops to 0.
 * - A VU loops its iteration while planned; VU i (0-based) is planned while the count exceeds i,
 *   so the highest-numbered VUs are ramped down first, as k6 stops its last handles first.
 * - gracefulRampDown: a VU ramped down starts no new iteration; its running one may finish
 *   within gracefulRampDown and is interrupted after it (unless the VU is planned again first,
 *   when it just keeps looping).
 * - gracefulStop: at the end of the stages no VU starts an iteration; running ones may finish
 *   within gracefulStop and are interrupted after it. The run ends when every iteration has ended.
 *
 * k6 counts an iteration in `iterations` only when it ran to its end; interrupted ones are
 * counted apart (its summary's "interrupted iterations"), and so are they here.
 */

/** k6's defaults, as bench/k6/lib.js leaves them (gracefulRampDown set to 30s, gracefulStop not set). */
export const rampingVusDefaults = Object.freeze({ gracefulRampDownMs: 30_000, gracefulStopMs: 30_000 });

export interface VuStep {
  /** From the run's start. */
  readonly offsetMs: number;
  readonly vus: number;
}

/**
 * The planned VU count over time: one step per change, ending with 0 at the end of the stages
 * (`zeroEnd`; that last drop is k6's gracefulStop, not a ramp-down).
 */
export function rampingVuSteps(stages: readonly RampingStage[], startVus = 0, zeroEnd = true): VuStep[] {
  const steps: VuStep[] = [{ offsetMs: 0, vus: startVus }];
  const add = (offsetMs: number, vus: number) => {
    if (steps[steps.length - 1]!.vus !== vus) steps.push({ offsetMs, vus });
  };
  let from = startVus;
  let endMs = 0;
  for (const stage of stages) {
    const startMs = endMs;
    const durationMs = stage.duration_s * 1000;
    endMs += durationMs;
    const change = stage.target_vus - from;
    if (change === 0) continue;
    if (durationMs === 0) {
      add(endMs, stage.target_vus);
    } else {
      const n = Math.abs(change);
      for (let k = 1; k <= n; k++) add(startMs + (durationMs * k) / n, from + Math.sign(change) * k);
    }
    from = stage.target_vus;
  }
  if (zeroEnd) add(endMs, 0);
  return steps;
}

export interface RampingVusOptions {
  readonly stages: readonly RampingStage[];
  readonly gracefulRampDownMs: number;
  readonly gracefulStopMs: number;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  /**
   * One iteration of VU `vu` (0-based). It must end soon after `signal` aborts (an interruption);
   * a rejection counts as an ended iteration (k6 counts an exception as one too).
   */
  readonly iteration: (vu: number, signal: AbortSignal) => Promise<void>;
  /** Told at every iteration's end, before the VU starts its next. */
  readonly onIterationEnd?: (vu: number, interrupted: boolean) => void;
}

export interface RampingVusResult {
  /** Iterations that ran to their end. */
  readonly iterations: number;
  readonly interrupted: number;
  /** Iterations that rejected (an error in the session code, not a refusal by the server). */
  readonly failed: number;
  readonly maxVus: number;
  /** Stages' end (ms from the start) and when the last iteration ended. */
  readonly stagesEndMs: number;
  readonly endedMs: number;
}

type VuState = 'stopped' | 'active' | 'ramping-down';

interface Vu {
  readonly index: number;
  state: VuState;
  /** The iteration running now, with what interrupts it. */
  running: AbortController | undefined;
  hardStopTimer: TimerHandle | undefined;
  hardStopAtMs: number;
}

export class RampingVusRun {
  readonly #o: RampingVusOptions;
  /** The stages' own steps (no drop to 0 at their end), then the end of the stages. */
  readonly #steps: VuStep[];
  readonly #stagesEndMs: number;
  readonly #vus: Vu[];
  #planned = 0;
  #startMs = 0;
  #stagesOver = false;
  #stepTimer: TimerHandle | undefined;
  #iterations = 0;
  #interrupted = 0;
  #failed = 0;
  #finish: (() => void) | undefined;

  constructor(options: RampingVusOptions) {
    this.#o = options;
    this.#steps = rampingVuSteps(options.stages, 0, false);
    this.#stagesEndMs = options.stages.reduce((ms, stage) => ms + stage.duration_s * 1000, 0);
    const maxVus = Math.max(...this.#steps.map((s) => s.vus));
    this.#vus = Array.from({ length: maxVus }, (_, index) => ({ index, state: 'stopped' as VuState, running: undefined, hardStopTimer: undefined, hardStopAtMs: 0 }));
  }

  get maxVus(): number {
    return this.#vus.length;
  }

  /** VUs planned or finishing an iteration: k6's `vus` metric. */
  get activeVus(): number {
    return this.#vus.reduce((n, vu) => n + (vu.state !== 'stopped' || vu.running !== undefined ? 1 : 0), 0);
  }

  run(): Promise<RampingVusResult> {
    this.#startMs = this.#o.clock.nowMs();
    const stagesEndMs = this.#stagesEndMs;
    return new Promise<void>((resolve) => {
      this.#finish = resolve;
      this.#stepAt(0);
    }).then(() => ({
      iterations: this.#iterations, interrupted: this.#interrupted, failed: this.#failed, maxVus: this.#vus.length,
      stagesEndMs, endedMs: this.#o.clock.nowMs() - this.#startMs,
    }));
  }

  /** Steps are applied one after another, each when due (a late timer applies it late, never out of order). */
  #stepAt(index: number): void {
    const step = this.#steps[index];
    const offsetMs = step?.offsetMs ?? this.#stagesEndMs;
    const delayMs = Math.max(0, this.#startMs + offsetMs - this.#o.clock.nowMs());
    this.#stepTimer = this.#o.scheduler.schedule(delayMs, () => {
      this.#stepTimer = undefined;
      if (step === undefined) {
        this.#endStages();
        return;
      }
      this.#apply(step.vus);
      this.#stepAt(index + 1);
    });
  }

  #apply(vus: number): void {
    for (; this.#planned < vus; this.#planned++) this.#start(this.#vus[this.#planned]!);
    for (; this.#planned > vus; this.#planned--) this.#rampDown(this.#vus[this.#planned - 1]!, this.#o.gracefulRampDownMs);
  }

  /** The stages are over: every VU is ramped down with gracefulStop; the run ends when none is running. */
  #endStages(): void {
    this.#stagesOver = true;
    for (const vu of this.#vus) this.#rampDown(vu, this.#o.gracefulStopMs);
    this.#maybeFinish();
  }

  #start(vu: Vu): void {
    if (vu.hardStopTimer !== undefined) this.#o.scheduler.cancel(vu.hardStopTimer);
    vu.hardStopTimer = undefined;
    vu.state = 'active';
    if (vu.running === undefined) this.#next(vu);
  }

  #rampDown(vu: Vu, graceMs: number): void {
    if (vu.running === undefined) {
      vu.state = 'stopped';
      return;
    }
    vu.state = 'ramping-down';
    const hardStopAtMs = this.#o.clock.nowMs() + graceMs;
    // An earlier deadline (a ramp-down before the stages ended) stands: k6 interrupts at the first of the two.
    if (vu.hardStopTimer !== undefined) {
      if (vu.hardStopAtMs <= hardStopAtMs) return;
      this.#o.scheduler.cancel(vu.hardStopTimer);
    }
    vu.hardStopAtMs = hardStopAtMs;
    vu.hardStopTimer = this.#o.scheduler.schedule(graceMs, () => {
      vu.hardStopTimer = undefined;
      vu.state = 'stopped';
      vu.running?.abort();
    });
  }

  #next(vu: Vu): void {
    const controller = new AbortController();
    vu.running = controller;
    let failed = false;
    const ended = () => {
      vu.running = undefined;
      const interrupted = controller.signal.aborted;
      if (failed) this.#failed += 1;
      else if (interrupted) this.#interrupted += 1;
      else this.#iterations += 1;
      this.#o.onIterationEnd?.(vu.index, interrupted);
      if (vu.state === 'active' && !this.#stagesOver) {
        // The next iteration from a timer, not from this continuation: an iteration that ends at
        // once (a refused connection) must not loop without letting the event loop run.
        this.#o.scheduler.schedule(0, () => {
          if (vu.state === 'active' && vu.running === undefined && !this.#stagesOver) this.#next(vu);
          else this.#maybeFinish();
        });
        vu.running = undefined;
        return;
      }
      if (vu.hardStopTimer !== undefined) this.#o.scheduler.cancel(vu.hardStopTimer);
      vu.hardStopTimer = undefined;
      vu.state = 'stopped';
      this.#maybeFinish();
    };
    Promise.resolve().then(() => this.#o.iteration(vu.index, controller.signal)).then(() => undefined, () => { failed = true; }).then(ended);
  }

  #maybeFinish(): void {
    if (!this.#stagesOver || this.#vus.some((vu) => vu.running !== undefined)) return;
    if (this.#stepTimer !== undefined) this.#o.scheduler.cancel(this.#stepTimer);
    const finish = this.#finish;
    this.#finish = undefined;
    finish?.();
  }
}
