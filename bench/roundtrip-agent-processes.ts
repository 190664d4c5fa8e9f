import type { ChildProcess } from 'node:child_process';
import { forkSiblingModule } from '../runtime/fork-module.js';
import type { AgentIdentity } from '../agent/enrollment.js';
import { SdcError } from '../core/errors/index.js';
import { systemClock } from '../runtime/system.js';
import type { AgentWorkerReport, AgentWorkerRequest } from './roundtrip-agent-worker.js';
import { sleep } from './wall-time.js';

/** Agents per worker process: well inside one process's 20,000 open files with a socket and a journal each. */
export const agentsPerProcessMax = 2_000;
/** Long enough that no telemetry sample competes with the commands during a run. */
const benchTelemetryIntervalMs = 3_600_000;
const readyPollMs = 100;
const stopTimeoutMs = 60_000;

interface WorkerState {
  readonly child: ChildProcess;
  started: number;
  ready: number;
  failure: string | undefined;
  stopped: boolean;
  exited: boolean;
}

/** The running agents, in worker processes; `stop` stops them and waits for the processes to end. */
export interface BenchAgents {
  readonly processes: number;
  ready(): number;
  stop(): Promise<void>;
}

/**
 * Step: the enrolled agents in ceil(N / agentsPerProcessMax) child processes, each starting its
 * share `batchSize` at a time; resolves once every agent has a ready session or the deadline
 * passed. A worker that fails stops the step (every worker is stopped first).
 */
export async function startAgentProcesses(options: {
  identities: readonly AgentIdentity[]; batchSize: number; deadlineMs: number; verbose: boolean; progress: (line: string) => void;
}): Promise<BenchAgents> {
  const processes = Math.max(1, Math.ceil(options.identities.length / agentsPerProcessMax));
  const workers: WorkerState[] = Array.from({ length: processes }, () => {
    const child = forkSiblingModule(import.meta.url, 'roundtrip-agent-worker');
    const state: WorkerState = { child, started: 0, ready: 0, failure: undefined, stopped: false, exited: false };
    child.on('message', (report: AgentWorkerReport) => {
      if (report.type === 'status') { state.started = report.started; state.ready = report.ready; }
      else if (report.type === 'failed') state.failure = report.message;
      else if (report.type === 'stopped') state.stopped = true;
    });
    child.on('exit', (code, signal) => {
      state.exited = true;
      if (!state.stopped) state.failure ??= `exited with ${signal ?? `code ${code}`}`;
    });
    return state;
  });
  const request = (worker: WorkerState, message: AgentWorkerRequest) => { if (worker.child.connected) worker.child.send(message); };
  const ready = () => workers.reduce((n, w) => n + w.ready, 0);
  const stop = async () => {
    for (const worker of workers) request(worker, { type: 'stop' });
    const deadlineMs = systemClock.nowMs() + stopTimeoutMs;
    while (workers.some((w) => !w.exited) && systemClock.nowMs() < deadlineMs) await sleep(readyPollMs);
    for (const worker of workers) if (!worker.exited) worker.child.kill('SIGKILL');
  };
  try {
    workers.forEach((worker, index) => {
      const dirs = options.identities.filter((_, i) => i % processes === index).map((identity) => identity.paths.dir);
      request(worker, { type: 'start', dirs, batchSize: options.batchSize, telemetryIntervalMs: benchTelemetryIntervalMs, verbose: options.verbose });
    });
    let reported = -1;
    while (ready() < options.identities.length && systemClock.nowMs() < options.deadlineMs) {
      const failed = workers.find((w) => w.failure !== undefined);
      if (failed !== undefined) throw new SdcError('BENCH_FAILED', `an agent worker process failed: ${failed.failure}`);
      if (ready() !== reported) {
        reported = ready();
        options.progress(`agents ready ${reported}/${options.identities.length} in ${processes} process${processes === 1 ? '' : 'es'}`);
      }
      await sleep(readyPollMs);
    }
    return { processes, ready, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
