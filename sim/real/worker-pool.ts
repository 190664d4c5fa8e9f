import type { ChildProcess } from 'node:child_process';
import { forkSiblingModule } from '../../runtime/fork-module.js';
import { SdcError } from '../../core/errors/index.js';
import { systemScheduler } from '../../runtime/system.js';
import { chunks, type ParentMessage, type WorkerAgentSpec, type WorkerMessage, type WorkerSettings, type WorkerStatus } from './messages.js';

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
      if (message.type === 'status') this.status = message.status;
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

  constructor(options: { processes: number; onViolation: (message: string) => void }) {
    this.#workers = Array.from({ length: options.processes }, (_, i) => new WorkerHandle(i, options.onViolation));
  }

  get size(): number {
    return this.#workers.length;
  }

  start(agents: readonly WorkerAgentSpec[], settings: WorkerSettings): void {
    const dealt = this.#workers.map((): WorkerAgentSpec[] => []);
    agents.forEach((agent, i) => dealt[i % this.#workers.length]!.push(agent));
    this.#workers.forEach((worker, i) => {
      for (const part of chunks(dealt[i]!)) worker.send({ type: 'agents', agents: part });
      worker.send({ type: 'start', settings });
    });
  }

  /** Throws SIM_WORKER_FAILED if a worker has failed or exited. */
  assertHealthy(): void {
    const bad = this.#workers.find((w) => w.failure !== undefined || w.exited);
    if (bad) throw new SdcError('SIM_WORKER_FAILED', `worker ${bad.index}: ${bad.failure ?? 'exited'}`);
  }

  /** Sums of the latest status each worker sent (every second). */
  totals(): WorkerStatus {
    const sum = (key: keyof WorkerStatus) => this.#workers.reduce((n, w) => n + (w.status?.[key] ?? 0), 0);
    return {
      agents: sum('agents'), started: sum('started'), connected: sum('connected'), sessionsReady: sum('sessionsReady'), sessionsClosed: sum('sessionsClosed'),
      executions: sum('executions'), rejections: sum('rejections'), kernelCalls: sum('kernelCalls'), violations: sum('violations'),
    };
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
    const sum = (key: keyof WorkerStatus) => statuses.reduce((n, s) => n + s[key], 0);
    const status: WorkerStatus = {
      agents: sum('agents'), started: sum('started'), connected: sum('connected'), sessionsReady: sum('sessionsReady'), sessionsClosed: sum('sessionsClosed'),
      executions: sum('executions'), rejections: sum('rejections'), kernelCalls: sum('kernelCalls'), violations: sum('violations'),
    };
    return { executions, connected, status };
  }

  /** Asks every worker to close its sessions; one that does not within 15 s is killed. */
  async stop(): Promise<void> {
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
  }
}
