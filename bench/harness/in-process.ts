import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { systemClock } from '../../runtime/system.js';
import { startAgentProcesses } from '../roundtrip-agent-processes.js';
import { startBenchDeployment } from '../roundtrip-deployment.js';
import { enrollAgents, waitForOnline } from '../roundtrip-fleet.js';
import type { ApiTarget } from './api-scenario.js';

/**
 * Step: an in-process deployment (embedded stores unless Redis/MySQL are given) with `agents`
 * enrolled through the real HTTPS path and running in a child process (as `sdc bench roundtrip`
 * runs them), every one online, and a logged-in operator: the target of the API scenario when
 * no running deployment is named. `stop` ends the agents, the deployment and its directory.
 */
export async function startInProcessTarget(options: {
  agents: number; logger: Logger; setupTimeoutMs: number; progress: (line: string) => void; redisUrl?: string; mysqlUrl?: string;
}): Promise<{ target: ApiTarget; stop: () => Promise<void> }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-bench-api-'));
  const bench = await startBenchDeployment({
    dataDir, logger: options.logger,
    ...(options.redisUrl === undefined ? {} : { redisUrl: options.redisUrl }), ...(options.mysqlUrl === undefined ? {} : { mysqlUrl: options.mysqlUrl }),
  }).catch(async (error: unknown) => { await rm(dataDir, { recursive: true, force: true }); throw error; });
  const stops: Array<() => Promise<void>> = [() => bench.stop(), () => rm(dataDir, { recursive: true, force: true })];
  const stop = async () => { for (const step of stops.splice(0)) await step().catch(() => undefined); };
  try {
    const deadlineMs = systemClock.nowMs() + options.setupTimeoutMs;
    const deviceIds = Array.from({ length: options.agents }, (_, i) => `api-${bench.runTag}-${i}`);
    const { identities } = await enrollAgents({ api: bench.api, apiUrl: bench.apiUrl, caPem: bench.caPem, dataDir, deviceIds, concurrency: 8, deadlineMs, progress: options.progress });
    const agents = await startAgentProcesses({ identities, batchSize: 16, deadlineMs, verbose: false, progress: options.progress });
    stops.unshift(() => agents.stop());
    const online = await waitForOnline(bench.api, new Set(deviceIds), deadlineMs);
    if (online < deviceIds.length) throw new SdcError('BENCH_FAILED', `only ${online} of ${deviceIds.length} agents came online before the set-up deadline`);
    return { target: { apiUrl: bench.apiUrl, caPem: bench.caPem, token: bench.token, deviceIds, runTag: bench.runTag }, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
