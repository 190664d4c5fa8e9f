import { chunks, type ParentMessage, type WorkerAgentSpec, type WorkerMessage } from './messages.js';
import { WorkerFleet } from './worker-fleet.js';

/**
 * A `--real` worker process (forked by sim/real/run-real.ts through `node --import tsx`): takes
 * its agents in chunks, runs them, reports status every second and answers `collect` and `stop`.
 * It exits when the parent goes away (the IPC channel closes), so no agent outlives its run.
 */

const statusIntervalMs = 1_000;
/** Agents one worker takes; the parent spreads a fleet over several processes to stay far below the open-files cap. */
const workerAgentsMax = 20_000;

function send(message: WorkerMessage): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  if (process.send === undefined) {
    process.stderr.write('sim/real/worker.ts runs only as a child process of `sdc sim --real`\n');
    process.exitCode = 2;
    return;
  }
  const specs: WorkerAgentSpec[] = [];
  const fleet = new WorkerFleet({ onViolation: (message) => send({ type: 'violation', message }) });
  let statusTimer: NodeJS.Timeout | undefined;
  const fail = (error: unknown) => {
    send({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
    process.exitCode = 1;
    process.disconnect?.();
  };
  process.on('disconnect', () => {
    if (statusTimer) clearInterval(statusTimer);
    void fleet.stop().finally(() => process.exit());
  });
  process.on('message', (message: ParentMessage) => {
    switch (message.type) {
      case 'agents':
        if (specs.length + message.agents.length > workerAgentsMax) return fail(new Error(`a worker holds at most ${workerAgentsMax} agents`));
        specs.push(...message.agents);
        return;
      case 'start':
        fleet.start(specs, message.settings).then(() => {
          statusTimer = setInterval(() => send({ type: 'status', status: fleet.status() }), statusIntervalMs);
          send({ type: 'status', status: fleet.status() });
        }, fail);
        return;
      case 'collect':
        for (const items of chunks(fleet.executionCounts())) send({ type: 'executions', items });
        for (const deviceIds of chunks(fleet.connectedDeviceIds())) send({ type: 'connected', deviceIds });
        send({ type: 'collected', status: fleet.status() });
        return;
      case 'kernel_faults':
        fleet.setKernelFaults(message);
        return;
      case 'clock_skew':
        fleet.setClockSkew(message.items);
        return;
      case 'device_facts':
        send({ type: 'device_facts', items: fleet.deviceFacts(message.deviceIds) });
        return;
      case 'ota_unhealthy':
        fleet.setOtaUnhealthy(message.deviceIds);
        return;
      case 'ota_facts':
        fleet.otaFacts(message.deviceIds).then((items) => send({ type: 'ota_facts', items }), fail);
        return;
      case 'stop':
        if (statusTimer) clearInterval(statusTimer);
        fleet.stop().then(() => {
          send({ type: 'stopped', status: fleet.status() });
          process.disconnect?.();
        }, fail);
        return;
    }
  });
}

await main();
