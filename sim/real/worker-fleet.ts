import { createAgentCore, type AgentCore, type AgentCoreEvent } from '../../agent/agent-core.js';
import { kernelCommandKeys, loadIdentity } from '../../agent/enrollment.js';
import { IoctlKernelBridge, type KernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import { agentPaths, pinnedKeyResolver } from '../../agent/state/agent-state.js';
import { createSyntheticMetricsSource } from '../../agent/telemetry/synthetic-metrics.js';
import { startWsAgentDriver, type WsAgentDriver } from '../../agent/ws-transport.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import type { Clock, TimerHandle } from '../../core/ports/ports.js';
import { deviceKid } from '../../core/protocol/session/gateway-connection.js';
import { systemScheduler } from '../../runtime/system.js';
import type { KernelFault } from '../../kernel/mock/faults.js';
import { MockIoctlDevice } from '../../kernel/mock/mock-kernel.js';
import { ExecutionChecker } from '../checkers.js';
import { ObservedJournal, observedKernel } from '../observed-agent-parts.js';
import { SeededRandom } from '../../core/random/prng.js';
import { workerViolationsMax, type WorkerAgentSpec, type WorkerSettings, type WorkerStatus } from './messages.js';

const provider = createNodeEd25519Provider();


interface RunningAgent {
  readonly deviceId: string;
  readonly core: AgentCore;
  driver: WsAgentDriver | undefined;
  startTimer: TimerHandle | undefined;
}

/**
 * The agents of one worker process: the real agent core (in-memory journal, synthetic telemetry
 * and the mock kernel, all drawn from the agent's seeded PRNG) over the real WebSocket/TLS driver
 * with the device certificate from enrollment. Kernel calls are attributed to the command the
 * journal last marked executing (sim/checkers.ts ExecutionChecker), as in the virtual runs.
 */
export class WorkerFleet {
  readonly #agents: RunningAgent[] = [];
  readonly #checker = new ExecutionChecker();
  /** Commands each device's journal marked executing (for the per-command execution counts). */
  readonly #marked = new Map<string, Set<string>>();
  readonly #onViolation: (message: string) => void;
  #violations = 0;
  #started = 0;
  #sessionsReady = 0;
  #sessionsClosed = 0;
  #executions = 0;
  #rejections = 0;
  #stopping = false;

  constructor(options: { onViolation: (message: string) => void }) {
    this.#onViolation = options.onViolation;
  }

  /** Loads each agent's enrollment and schedules its first connection after its start delay. */
  async start(specs: readonly WorkerAgentSpec[], settings: WorkerSettings): Promise<void> {
    const kernelFaults: KernelFault[] = settings.kernelErrors
      ? [{ kind: 'status', status: settings.kernelErrors.status, ratio: settings.kernelErrors.ratio }]
      : [];
    for (const spec of specs) {
      const identity = await loadIdentity(agentPaths(spec.dir));
      const random = new SeededRandom(spec.seed);
      const clock: Clock = { nowMs: () => Date.now() + spec.clockSkewMs };
      const agentSeed = random.bytes(32);
      const serviceSeed = random.bytes(32);
      const device = new MockIoctlDevice({
        ed25519: provider, serviceSeed, agentPublicKey: provider.publicKeyFromSeed(agentSeed), clock, scheduler: systemScheduler,
        faults: kernelFaults, random: random.fork(),
        commandKeys: kernelCommandKeys(identity),
      });
      const bridge = new IoctlKernelBridge({
        device, ed25519: provider, agentSeed, servicePublicKey: provider.publicKeyFromSeed(serviceSeed), counterStart: BigInt(clock.nowMs()) * 1000n,
      });
      const deviceId = identity.deviceId;
      const marked = new Set<string>();
      this.#marked.set(deviceId, marked);
      const journal = new ObservedJournal((commandId) => {
        marked.add(commandId);
        this.#checker.executing(deviceId, commandId);
      });
      const core = createAgentCore({
        deviceId, signer: { kid: deviceKid(deviceId), seed: identity.seed, provider },
        resolveGatewayKey: pinnedKeyResolver(identity.trust.gateway_keys), resolveCommandKey: pinnedKeyResolver(identity.trust.command_keys),
        kernel: observedKernel(bridge, () => {
          const violation = this.#checker.kernelCall(deviceId);
          if (violation) this.#violate(violation.message);
        }), journal, clock, random, scheduler: systemScheduler,
        telemetrySource: createSyntheticMetricsSource({ random: random.fork() }), telemetryIntervalMs: settings.telemetryIntervalMs,
        agentVersion: 'sim-real/1', onEvent: (event) => this.#onEvent(event),
      });
      const agent: RunningAgent = { deviceId, core, driver: undefined, startTimer: undefined };
      agent.startTimer = systemScheduler.schedule(spec.startDelayMs, () => {
        agent.startTimer = undefined;
        if (this.#stopping) return;
        core.start();
        agent.driver = startWsAgentDriver({
          core, urls: identity.trust.gateway_urls, certPem: identity.certPem + identity.chainPem, keyPem: identity.keyPem, caPem: identity.trust.ca_pem,
          random, scheduler: systemScheduler, backoffMaxMs: 8_000,
        });
        this.#started += 1;
      });
      this.#agents.push(agent);
    }
  }

  status(): WorkerStatus {
    return {
      agents: this.#agents.length, started: this.#started, connected: this.#agents.reduce((n, a) => n + (a.core.isReady ? 1 : 0), 0),
      sessionsReady: this.#sessionsReady, sessionsClosed: this.#sessionsClosed, executions: this.#executions, rejections: this.#rejections,
      kernelCalls: this.#checker.kernelCalls, violations: this.#violations,
    };
  }

  /** [command id, kernel executions] for every command marked executing on one of our devices. */
  executionCounts(): Array<[string, number]> {
    const out: Array<[string, number]> = [];
    for (const [deviceId, commandIds] of this.#marked) {
      for (const commandId of commandIds) out.push([commandId, this.#checker.executions(deviceId, commandId)]);
    }
    return out;
  }

  connectedDeviceIds(): string[] {
    return this.#agents.filter((a) => a.core.isReady).map((a) => a.deviceId);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.allSettled(this.#agents.map(async (agent) => {
      if (agent.startTimer) systemScheduler.cancel(agent.startTimer);
      if (agent.driver) await agent.driver.stop();
    }));
  }

  #violate(message: string): void {
    this.#violations += 1;
    if (this.#violations <= workerViolationsMax) this.#onViolation(message);
  }

  #onEvent(event: AgentCoreEvent): void {
    if (event.kind === 'ready') this.#sessionsReady += 1;
    else if (event.kind === 'closed') this.#sessionsClosed += 1;
    else if (event.kind === 'executed') this.#executions += 1;
    else if (event.kind === 'rejected') this.#rejections += 1;
  }}
