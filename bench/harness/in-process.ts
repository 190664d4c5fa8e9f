import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { systemClock } from '../../runtime/system.js';
import { startAgentProcesses } from '../roundtrip-agent-processes.js';
import type { AgentIdentity } from '../../agent/enrollment.js';
import { startBenchDeployment, type BenchDeployment } from '../roundtrip-deployment.js';
import { enrollAgents, waitForOnline } from '../roundtrip-fleet.js';
import type { ApiTarget } from './api-scenario.js';

/**
 * Step: an in-process deployment (embedded stores unless Redis/MySQL are given) with devices
 * enrolled through the real HTTPS path: `running` of them (`<runningPrefix>-<tag>-i`) running as
 * agents in a child process (as `sdc bench roundtrip` runs them), every one online, and
 * `unconnected` more (`<unconnectedPrefix>-<tag>-i`) enrolled but never connected here, for a
 * load generator to play (a device has one session at a time). `stop` ends the agents, the
 * deployment and its directory. The one set-up behind `sdc bench api`, `sdc bench agents` and
 * CI's k6 step.
 */
export async function startEnrolledDeployment(options: {
  running: number; unconnected: number; runningPrefix: string; unconnectedPrefix: string; dirPrefix: string;
  logger: Logger; setupTimeoutMs: number; progress: (line: string) => void; redisUrl?: string; mysqlUrl?: string;
}): Promise<{ bench: BenchDeployment; running: AgentIdentity[]; unconnected: AgentIdentity[]; stop: () => Promise<void> }> {
  const dataDir = await mkdtemp(join(tmpdir(), options.dirPrefix));
  const bench = await startBenchDeployment({
    dataDir, logger: options.logger,
    ...(options.redisUrl === undefined ? {} : { redisUrl: options.redisUrl }), ...(options.mysqlUrl === undefined ? {} : { mysqlUrl: options.mysqlUrl }),
  }).catch(async (error: unknown) => { await rm(dataDir, { recursive: true, force: true }); throw error; });
  const stops: Array<() => Promise<void>> = [() => bench.stop(), () => rm(dataDir, { recursive: true, force: true })];
  const stop = async () => { for (const step of stops.splice(0)) await step().catch(() => undefined); };
  try {
    const deadlineMs = systemClock.nowMs() + options.setupTimeoutMs;
    const runningIds = Array.from({ length: options.running }, (_, i) => `${options.runningPrefix}-${bench.runTag}-${i}`);
    const unconnectedIds = Array.from({ length: options.unconnected }, (_, i) => `${options.unconnectedPrefix}-${bench.runTag}-${i}`);
    const deviceIds = [...runningIds, ...unconnectedIds];
    const { identities } = await enrollAgents({ api: bench.api, apiUrl: bench.apiUrl, caPem: bench.caPem, dataDir, deviceIds, concurrency: 8, deadlineMs, progress: options.progress });
    if (identities.length < deviceIds.length) throw new SdcError('BENCH_FAILED', `only ${identities.length} of ${deviceIds.length} devices enrolled before the set-up deadline`);
    const running = identities.filter((identity) => runningIds.includes(identity.deviceId));
    const unconnected = identities.filter((identity) => unconnectedIds.includes(identity.deviceId));
    if (running.length > 0) {
      const agents = await startAgentProcesses({ identities: running, batchSize: 16, deadlineMs, verbose: false, progress: options.progress });
      stops.unshift(() => agents.stop());
      const online = await waitForOnline(bench.api, new Set(runningIds), deadlineMs);
      if (online < runningIds.length) throw new SdcError('BENCH_FAILED', `only ${online} of ${runningIds.length} agents came online before the set-up deadline`);
    }
    return { bench, running, unconnected, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Step: the API scenario's target when no running deployment is named: `agents` devices running
 * and online (startEnrolledDeployment) and a logged-in operator.
 */
export async function startInProcessTarget(options: {
  agents: number; logger: Logger; setupTimeoutMs: number; progress: (line: string) => void; redisUrl?: string; mysqlUrl?: string;
}): Promise<{ target: ApiTarget; stop: () => Promise<void> }> {
  const { bench, running, stop } = await startEnrolledDeployment({ ...options, running: options.agents, unconnected: 0, runningPrefix: 'api', unconnectedPrefix: 'api-idle', dirPrefix: 'sdc-bench-api-' });
  return { target: { apiUrl: bench.apiUrl, caPem: bench.caPem, token: bench.token, deviceIds: running.map((identity) => identity.deviceId), runTag: bench.runTag }, stop };
}
