import type { ChildProcess } from 'node:child_process';
import { forkSiblingModule } from '../../runtime/fork-module.js';
import { SdcError } from '../../core/errors/index.js';
import { systemScheduler } from '../../runtime/system.js';
import { chunks, workerStatusKeys, type DeviceFacts, type OtaDeviceFacts, type ParentMessage, type WorkerAgentSpec, type WorkerMessage, type WorkerSettings, type WorkerStatus } from './messages.js';

const stopTimeoutMs = 15_000;
const collectTimeoutMs = 30_000;

export interface WorkerCollection {
  readonly executions: ReadonlyMap<string, number>;
  readonly connected: ReadonlySet<string>;
  readonly status: WorkerStatus;
}

/** One worker process (`node --import tsx sim/real/worker.ts`, or dist/sim/real/worker.js), talking over the IPC channel. */
class WorkerHandle {
  readonly child: ChildProcess;
  status: WorkerStatus | undefined;
  failure: string | undefined;
  exited = false;
  readonly #listeners = new Set<(message: WorkerMessage) => void>();

  constructor(readonly index: number, onViolation: (message: string) => void) {
    this.child = forkSiblingModule(import.meta.url, 'worker');
    this.child.on('message', (message: WorkerMessage) => {
      if (message.type === 'status' || message.type === 'stopped') this.status = message.status;
      else if (message.type === 'violation') onViolation(`worker ${index}: ${message.message}`);
      else if (message.type === 'failed') this.failure = message.message;
      for (const listener of this.#listeners) listener(message);
    });
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      this.failure ??= code === 0 ? undefined : `exited with ${signal ?? `code ${code}`}`;
      for (const listener of this.#listeners) listener({ type: 'failed', message: this.failure ?? 'exited' });
    });
    this.child.on('error', (error) => { this.failure ??= error.message; });
  }

  send(message: ParentMessage): void {
    if (!this.exited && this.child.connected) this.child.send(message);
  }

  /** Sends `message` and folds replies into `onReply` until it returns true; fails on exit, failure or timeout. */
  request(message: ParentMessage, timeoutMs: number, onReply: (reply: WorkerMessage) => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (error?: Error) => {
        systemScheduler.cancel(timer);
        this.#listeners.delete(listener);
        if (error) reject(error);
        else resolve();
      };
      const listener = (reply: WorkerMessage) => {
        if (reply.type === 'failed') return done(new SdcError('SIM_WORKER_FAILED', `worker ${this.index}: ${reply.message}`));
        if (onReply(reply)) done();
      };
      const timer = systemScheduler.schedule(timeoutMs, () => done(new SdcError('SIM_WORKER_FAILED', `worker ${this.index} did not answer '${message.type}' within ${timeoutMs} ms`)));
      this.#listeners.add(listener);
      if (this.exited) return done(new SdcError('SIM_WORKER_FAILED', `worker ${this.index} ${this.failure ?? 'exited'}`));
      this.send(message);
    });
  }
}

/**
 * The worker processes of a `--real` run. Agents are dealt round-robin, so each process holds
 * about N/P sockets; the parent only ever sees bounded messages (messages.ts).
 */
export class WorkerPool {
  readonly #workers: WorkerHandle[];
  readonly #onViolation: (message: string) => void;
  /** What each worker was started with, so a chaos run can start a killed one again. */
  #dealt: WorkerAgentSpec[][] = [];
  #settings: WorkerSettings | undefined;
  /** Counters of killed workers (sessions, executions, rejections; kernel calls come back from the durable log). */
  #retired: WorkerStatus[] = [];
  /** Between killAll and restartKilled: the dead workers are expected, not a failure. */
  #killed = false;

  constructor(options: { processes: number; onViolation: (message: string) => void }) {
    this.#onViolation = options.onViolation;
    this.#workers = Array.from({ length: options.processes }, (_, i) => new WorkerHandle(i, options.onViolation));
  }

  get size(): number {
    return this.#workers.length;
  }

  start(agents: readonly WorkerAgentSpec[], settings: WorkerSettings): void {
    const dealt = this.#workers.map((): WorkerAgentSpec[] => []);
    agents.forEach((agent, i) => dealt[i % this.#workers.length]!.push(agent));
    this.#dealt = dealt;
    this.#settings = settings;
    this.#workers.forEach((worker, i) => {
      for (const part of chunks(dealt[i]!)) worker.send({ type: 'agents', agents: part });
      worker.send({ type: 'start', settings });
    });
  }

  /**
   * Chaos: SIGKILLs every worker process (no close frame, no journal flush beyond what was
   * fsynced) and waits for them to be gone; their last counters are kept for the totals.
   */
  async killAll(): Promise<void> {
    await Promise.all(this.#workers.map(async (worker) => {
      if (worker.exited) return;
      const exited = new Promise<void>((resolve) => worker.child.once('exit', () => resolve()));
      worker.child.kill('SIGKILL');
      await exited;
    }));
    this.#killed = true;
    for (const worker of this.#workers) if (worker.status) this.#retired.push({ ...worker.status, kernelCalls: 0, violations: 0 });
  }

  /** Chaos: a new process for every worker that was killed, with the same agents (their directories, journals and logs). */
  restartKilled(): void {
    if (this.#settings === undefined) throw new SdcError('SIM_WORKER_FAILED', 'the pool was never started');
    this.#workers.forEach((worker, i) => {
      if (!worker.exited) return;
      const fresh = new WorkerHandle(i, this.#onViolation);
      this.#workers[i] = fresh;
      // Agents connect at once: their start spread was for the first connections.
      for (const part of chunks(this.#dealt[i]!.map((spec) => ({ ...spec, startDelayMs: 0 })))) fresh.send({ type: 'agents', agents: part });
      fresh.send({ type: 'start', settings: this.#settings! });
    });
    this.#killed = false;
  }

  /** Chaos: tells every worker (each applies what concerns its own agents). */
  broadcast(message: Extract<ParentMessage, { type: 'kernel_faults' | 'clock_skew' | 'ota_unhealthy' }>): void {
    for (const worker of this.#workers) worker.send(message);
  }

  /** Chaos: what each worker knows of these devices. */
  async deviceFacts(deviceIds: readonly string[]): Promise<DeviceFacts[]> {
    const facts: DeviceFacts[] = [];
    await Promise.all(this.#workers.map((worker) => worker.request({ type: 'device_facts', deviceIds }, collectTimeoutMs, (reply) => {
      if (reply.type !== 'device_facts') return false;
      facts.push(...reply.items);
      return true;
    })));
    return facts;
  }

  /** Chaos (ota-cut): each worker's facts about these devices' update path. */
  async otaFacts(deviceIds: readonly string[]): Promise<OtaDeviceFacts[]> {
    const facts: OtaDeviceFacts[] = [];
    await Promise.all(this.#workers.map((worker) => worker.request({ type: 'ota_facts', deviceIds }, collectTimeoutMs, (reply) => {
      if (reply.type !== 'ota_facts') return false;
      facts.push(...reply.items);
      return true;
    })));
    return facts;
  }

  /** Throws SIM_WORKER_FAILED if a worker has failed or exited. */
  assertHealthy(): void {
    if (this.#killed) return;
    const bad = this.#workers.find((w) => w.failure !== undefined || w.exited);
    if (bad) throw new SdcError('SIM_WORKER_FAILED', `worker ${bad.index}: ${bad.failure ?? 'exited'}`);
  }

  /** Sums of the latest status each worker sent (every second, and at its stop). */
  totals(): WorkerStatus {
    return this.#sum(this.#workers.map((w) => w.status));
  }

  async collect(): Promise<WorkerCollection> {
    const executions = new Map<string, number>();
    const connected = new Set<string>();
    const statuses: WorkerStatus[] = [];
    await Promise.all(this.#workers.map((worker) => worker.request({ type: 'collect' }, collectTimeoutMs, (reply) => {
      if (reply.type === 'executions') for (const [id, count] of reply.items) executions.set(id, (executions.get(id) ?? 0) + count);
      else if (reply.type === 'connected') for (const id of reply.deviceIds) connected.add(id);
      else if (reply.type === 'collected') { statuses.push(reply.status); return true; }
      return false;
    })));
    return { executions, connected, status: this.#sum(statuses) };
  }

  /**
   * Telemetry samples that were in the buffers of killed workers' agents (as of each one's last
   * status, sent every second): gone with the process, as the full tier's
   * telemetry_samples_lost_in_crashes counts a crashed agent's buffer.
   */
  telemetrySamplesLostInCrashes(): number {
    return this.#retired.reduce((n, s) => n + s.telemetrySamplesBuffered, 0);
  }

  /** Every counter summed over these statuses and the killed workers' that still count. */
  #sum(statuses: ReadonlyArray<WorkerStatus | undefined>): WorkerStatus {
    const sum = (key: keyof WorkerStatus) => statuses.reduce((n, s) => n + (s?.[key] ?? 0), 0) + this.#retiredSum(key);
    return Object.fromEntries(workerStatusKeys.map((key) => [key, sum(key)])) as unknown as WorkerStatus;
  }

  /** Counters of killed workers that still count (not connected, agents or buffered samples: those are the live processes'). */
  #retiredSum(key: keyof WorkerStatus): number {
    if (key === 'agents' || key === 'started' || key === 'connected' || key === 'telemetrySamplesBuffered') return 0;
    return this.#retired.reduce((n, s) => n + s[key], 0);
  }

  /**
   * Asks every worker to close its sessions; one that does not within 15 s is killed. Answers the
   * totals once the agents are stopped: final counters (a killed worker's as of its last status).
   */
  async stop(): Promise<WorkerStatus> {
    await Promise.allSettled(this.#workers.map(async (worker) => {
      if (worker.exited) return;
      const exited = new Promise<void>((resolve) => worker.child.once('exit', () => resolve()));
      try {
        await worker.request({ type: 'stop' }, stopTimeoutMs, (reply) => reply.type === 'stopped');
      } catch {
        worker.child.kill('SIGKILL');
      }
      await exited;
    }));
    return this.totals();
  }
}
