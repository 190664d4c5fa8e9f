import { chunks, type WorkerAgentSpec } from '../sim/real/messages.js';
import { WorkerFleet } from '../sim/real/worker-fleet.js';
import type { AgentWorkerReport, AgentWorkerRequest } from './connections-messages.js';

/**
 * An agent child of `sdc bench connections|reconnect`: the simulator's real agents (the agent
 * core with an in-memory journal, synthetic telemetry and the mock kernel, over the real
 * WebSocket/TLS driver with the device certificate and jittered backoff; sim/real/worker-fleet.ts).
 * Besides counts it keeps, per agent, when its session last closed and when it was last ready, so
 * the reconnect storm can say how long each agent took to come back.
 */

const statusIntervalMs = 500;
const windowPollMs = 50;

const send = (report: AgentWorkerReport): void => {
  if (process.connected) process.send?.(report);
};

const specs: WorkerAgentSpec[] = [];
const lastClosedMs = new Map<string, number>();
const lastReadyMs = new Map<string, number>();
const fleet = new WorkerFleet({
  onViolation: (message) => send({ type: 'violation', message }),
  onAgentEvent: (deviceId, event) => {
    if (event.kind === 'ready') lastReadyMs.set(deviceId, Date.now());
    else if (event.kind === 'closed') lastClosedMs.set(deviceId, Date.now());
  },
});
let statusTimer: NodeJS.Timeout | undefined;

function status(): void {
  const s = fleet.status();
  send({ type: 'status', status: { agents: s.agents, connected: s.connected, executions: s.executions, violations: s.violations } });
}

function returns(sinceMs: number): void {
  const items: Array<readonly [string, number]> = [];
  let closed = 0;
  let notBack = 0;
  for (const [deviceId, closedMs] of lastClosedMs) {
    if (closedMs < sinceMs) continue;
    closed += 1;
    const readyMs = lastReadyMs.get(deviceId);
    if (readyMs === undefined || readyMs < closedMs) notBack += 1;
    else items.push([deviceId, readyMs - sinceMs]);
  }
  for (const part of chunks(items)) send({ type: 'returns', items: part });
  send({ type: 'returnsDone', closed, notBack });
}

/**
 * A closed-loop ramp: agents are started `window` at a time, and the next ones only once all but
 * half a window of those started have a session. An open-loop ramp faster than the machine can
 * handshake (a busy 2-core machine does a few per second) piles up handshakes that time out and
 * retry, and the fleet never converges; this one goes as fast as the gateways answer. The
 * scheduled ramp (startDelayMs) still bounds the rate from above.
 */
async function startWindowed(request: Extract<AgentWorkerRequest, { type: 'start' }>): Promise<void> {
  const settings = { telemetryIntervalMs: request.telemetryIntervalMs, backoffMaxMs: request.backoffMaxMs };
  const startedMs = Date.now();
  for (let i = 0; i < specs.length; i += request.window) {
    const batch = specs.slice(i, i + request.window).map((spec) => ({ ...spec, startDelayMs: Math.max(0, startedMs + spec.startDelayMs - Date.now()) }));
    await fleet.start(batch, settings);
    const started = i + batch.length;
    while (fleet.status().connected < started - Math.floor(request.window / 2)) await new Promise((resolve) => setTimeout(resolve, windowPollMs));
  }
}

process.on('message', (request: AgentWorkerRequest) => {
  switch (request.type) {
    case 'agents':
      specs.push(...request.agents);
      return;
    case 'start':
      statusTimer = setInterval(status, statusIntervalMs);
      startWindowed(request).catch((error: unknown) => send({ type: 'failed', message: error instanceof Error ? error.message : String(error) }));
      return;
    case 'returns':
      returns(request.sinceMs);
      return;
    case 'executions':
      for (const items of chunks(fleet.executionCounts())) send({ type: 'executions', items });
      send({ type: 'executionsDone' });
      return;
    case 'cpu': {
      const { user, system } = process.cpuUsage();
      send({ type: 'cpu', userUs: user, systemUs: system, framesReceived: 0 });
      return;
    }
    case 'stop':
      if (statusTimer) clearInterval(statusTimer);
      void fleet.stop().finally(() => {
        send({ type: 'stopped' });
        process.disconnect?.();
      });
      return;
  }
});
process.on('disconnect', () => { void fleet.stop().finally(() => process.exit(0)); });
