import { pino } from 'pino';
import { runAgent, type RunningAgent } from '../agent/agent-runtime.js';
import { systemClock, systemRandom, systemScheduler } from '../runtime/system.js';

/**
 * A child process of `sdc bench roundtrip` holding some of its agents (agent/agent-runtime.ts,
 * mock kernel, file journal), so that the services' process runs nothing but the services and its
 * event-loop utilisation measures them alone (issue 17). Messages over the IPC channel
 * (roundtrip-agent-processes.ts): `start` with the agents' directories, then a `status` every
 * status interval; `stop` stops them a batch at a time and answers `stopped`.
 */

export type AgentWorkerRequest =
  | { readonly type: 'start'; readonly dirs: readonly string[]; readonly batchSize: number; readonly telemetryIntervalMs: number; readonly verbose: boolean }
  | { readonly type: 'stop' };

export type AgentWorkerReport =
  | { readonly type: 'status'; readonly started: number; readonly ready: number }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'stopped' };

const statusIntervalMs = 250;
const stopBatchSize = 100;

const send = (report: AgentWorkerReport): void => {
  if (process.connected) process.send?.(report);
};

const running: RunningAgent[] = [];
let statusTimer: NodeJS.Timeout | undefined;

async function start(request: Extract<AgentWorkerRequest, { type: 'start' }>): Promise<void> {
  const logger = pino({ level: request.verbose ? 'info' : 'silent' });
  statusTimer = setInterval(() => send({ type: 'status', started: running.length, ready: running.filter((a) => a.core.isReady).length }), statusIntervalMs);
  for (let i = 0; i < request.dirs.length; i += request.batchSize) {
    const started = await Promise.allSettled(request.dirs.slice(i, i + request.batchSize).map((dir) => runAgent({
      dir, kernel: 'mock', telemetryIntervalMs: request.telemetryIntervalMs, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger,
    })));
    for (const result of started) if (result.status === 'fulfilled') running.push(result.value);
    const failed = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed !== undefined) {
      send({ type: 'failed', message: failed.reason instanceof Error ? failed.reason.message : String(failed.reason) });
      return;
    }
  }
}

async function stop(): Promise<void> {
  if (statusTimer) clearInterval(statusTimer);
  for (let i = 0; i < running.length; i += stopBatchSize) await Promise.allSettled(running.slice(i, i + stopBatchSize).map((agent) => agent.stop()));
  send({ type: 'stopped' });
  process.disconnect?.();
}

process.on('message', (request: AgentWorkerRequest) => {
  const work = request.type === 'start' ? start(request) : stop();
  work.catch((error: unknown) => send({ type: 'failed', message: error instanceof Error ? error.message : String(error) }));
});
// The parent went away: nothing holds these agents any more.
process.on('disconnect', () => { void stop().finally(() => process.exit(0)); });
