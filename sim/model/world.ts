import type { decideRollout } from '../../core/ota/rollout-decisions.js';
import { SeededRandom } from '../../core/random/prng.js';
import { simOpcodes, type Scenario } from '../scenario.js';
import { AgentCommands } from './agent-commands.js';
import { CommandStore, Status } from './command-store.js';
import { ControlPlane } from './control-plane.js';
import { EventQueue } from './event-queue.js';
import { Ev } from './events.js';
import { Faults } from './faults.js';
import { drawFleet, type Fleet } from './fleet.js';
import { GatewayRouter } from './gateway-router.js';
import { ModelNetwork } from './network.js';
import type { ModelParams } from './params.js';
import { Presence, Side } from './presence.js';
import { ModelRollout } from './rollout.js';
import { Telemetry } from './telemetry.js';
import { ModelTrace } from './trace.js';
import { Workload } from './workload.js';

/**
 * One model run's world: virtual time, the event queue, the fleet, the commands, the random
 * streams and the modelled processes, each in its own module. Handlers run synchronously, one
 * event at a time, in (due time, push order) order: no promises, no timers, no serialization.
 */
export interface ModelStreams {
  readonly network: SeededRandom;
  readonly controlPlane: SeededRandom;
  readonly gateways: SeededRandom;
  readonly faults: SeededRandom;
  readonly commands: SeededRandom;
  /** The model's own draws for what the full tier draws from each agent's stream after boot (reconnect jitter, later telemetry phases). */
  readonly dynamics: SeededRandom;
}

/** The root seed split as the full tier splits it (sim/run.ts), plus one stream of the model's own after them. */
export function modelStreams(seed: number): ModelStreams & { readonly agents: SeededRandom } {
  const root = new SeededRandom(seed);
  const network = root.fork();
  const controlPlane = root.fork();
  const gateways = root.fork();
  const agents = root.fork();
  const faults = root.fork();
  const commands = root.fork();
  root.fork(); // keys: the full tier's signing keys
  return { network, controlPlane, gateways, agents, faults, commands, dynamics: root.fork() };
}

export interface ModelWorldOptions {
  readonly scenario: Scenario;
  readonly seed: number;
  readonly agents: number;
  readonly safetyMs: number;
  readonly params: ModelParams;
  /** Replaces core/ota's decideRollout (tests of the validation only: a model with a wrong rule must fail it). */
  readonly decideRollout?: typeof decideRollout;
}

export const modelCountNames = [
  'commands_accepted', 'commands_refused', 'executions', 'rejections', 'interrupted', 'sessions_ready', 'sessions_closed',
  'agent_crashes', 'churn_leaves', 'gateway_restarts', 'kernel_calls', 'telemetry_sampled', 'telemetry_sent',
  'telemetry_frames_sent', 'telemetry_batch_frames_sent', 'telemetry_samples_sent', 'telemetry_buffer_dropped', 'telemetry_chain_broken', 'telemetry_lost_bus', 'telemetry_stored', 'events_dead_lettered',
] as const;

export class ModelWorld {
  nowMs = 0;
  healed = false;
  readonly queue = new EventQueue();
  readonly scenario: Scenario;
  readonly params: ModelParams;
  readonly agents: number;
  readonly gateways: number;
  readonly safetyEndMs: number;
  readonly rng: ModelStreams;
  readonly fleet: Fleet;
  readonly commands: CommandStore;
  readonly counts: Record<string, number>;
  readonly trace = new ModelTrace();
  readonly network: ModelNetwork;
  readonly faults: Faults;
  readonly presence: Presence;
  readonly telemetry: Telemetry;
  readonly router: GatewayRouter;
  readonly controlPlane: ControlPlane;
  readonly agentCommands: AgentCommands;
  readonly workload: Workload;
  /** The scenario's rollout; undefined without `ota`, so a run without one pays nothing for it. */
  readonly rollout: ModelRollout | undefined;

  constructor(options: ModelWorldOptions) {
    const { scenario } = options;
    this.scenario = scenario;
    this.params = options.params;
    this.agents = options.agents;
    this.gateways = scenario.gateways;
    this.safetyEndMs = options.safetyMs;
    const streams = modelStreams(options.seed);
    this.rng = streams;
    this.counts = Object.fromEntries(modelCountNames.map((name) => [name, 0]));
    this.fleet = drawFleet(streams.agents, options.agents, {
      gateways: scenario.gateways, clockSkewMsMax: scenario.faults.clockSkewMsMax ?? 0,
      telemetryIntervalMs: scenario.telemetryIntervalMs, connectDelayMsMax: this.params.connectDelayMsMax,
    });
    this.commands = new CommandStore(options.agents);
    const gatewayIds = Array.from({ length: scenario.gateways }, (_, g) => `gw-${g + 1}`);
    this.network = new ModelNetwork({
      agents: options.agents, gateways: scenario.gateways, random: streams.network, faults: scenario.faults.network,
      gatewayFaults: gatewayIds.map((id) => scenario.faults.gatewayLinks?.[id]),
    });
    this.faults = new Faults(this);
    this.presence = new Presence(this);
    this.telemetry = new Telemetry(this);
    this.router = new GatewayRouter(this);
    this.controlPlane = new ControlPlane(this, simOpcodes);
    this.agentCommands = new AgentCommands(this, simOpcodes);
    this.workload = new Workload(this);
    this.rollout = scenario.ota === undefined ? undefined : new ModelRollout(this, scenario.ota, options.seed, options.decideRollout);
  }

  inSafety(): boolean {
    return !this.healed && this.nowMs < this.safetyEndMs;
  }

  at(dueMs: number, kind: number, a = 0, b = 0, c = 0, d = 0): void {
    this.queue.push(dueMs, kind, a, b, c, d);
  }

  after(delayMs: number, kind: number, a = 0, b = 0, c = 0, d = 0): void {
    this.queue.push(this.nowMs + Math.max(0, Math.ceil(delayMs)), kind, a, b, c, d);
  }

  /** Starts the fleet and every process: faults first (their draws), then the control plane, the agents and the workload. */
  start(): void {
    this.faults.schedule();
    this.controlPlane.start();
    for (let agent = 0; agent < this.agents; agent += 1) this.presence.boot(agent);
    this.workload.start();
    this.rollout?.schedule();
  }

  /** Handles every event due at or before untilMs, then sets the clock to untilMs. Returns how many. */
  runUntil(untilMs: number): number {
    const queue = this.queue;
    let handled = 0;
    while (queue.popUntil(untilMs)) {
      this.nowMs = queue.dueMs;
      this.trace.add(queue.dueMs, queue.kind, queue.a, queue.b);
      this.#dispatch(queue.kind, queue.a, queue.b, queue.c, queue.d);
      handled += 1;
    }
    if (untilMs > this.nowMs) this.nowMs = untilMs;
    return handled;
  }

  #dispatch(kind: number, a: number, b: number, c: number, d: number): void {
    const presence = this.presence;
    switch (kind) {
      case Ev.connect: return presence.onConnect(a, b);
      case Ev.challengeAtAgent: return presence.onChallenge(a, c, d);
      case Ev.authAtGateway: return presence.onAuth(a, c, d);
      case Ev.authAckAtAgent: return presence.onAuthAck(a, c, d);
      case Ev.heartbeatTimer: return presence.onHeartbeatTimer(a, c);
      case Ev.heartbeatAtGateway: return presence.onHeartbeat(a, b, c, d);
      case Ev.echoAtAgent: return presence.onEcho(a, b, c, d);
      case Ev.gatewaySilence: return presence.onGatewaySilence(a, c);
      case Ev.agentAuthTimeout: return presence.onAgentAuthTimeout(a, c);
      case Ev.gatewayAuthTimeout: return presence.onGatewayAuthTimeout(a, c);
      case Ev.closedAtAgent: return presence.onClosedAtAgent(a, c);
      case Ev.closedAtGateway: return presence.onClosedAtGateway(a, c);
      case Ev.errorAtAgent: presence.acceptAtAgent(a, c, d); return;
      case Ev.errorAtGateway: presence.acceptAtGateway(a, c, d); return;
      case Ev.boot: return presence.onBootTimer(a, b);
      case Ev.comeBack: return presence.onComeBack(a, b);
      case Ev.telemetryTimer: return this.telemetry.onTimer(a, b);
      case Ev.telemetryAtGateway: return this.telemetry.onArrival(a, b, c, d);
      case Ev.telemetryBatchTimer: return this.telemetry.onBatchTimer(a, b);
      default: return this.#dispatchCommands(kind, a, b, c, d);
    }
  }

  #dispatchCommands(kind: number, a: number, b: number, c: number, d: number): void {
    switch (kind) {
      case Ev.commandTick: return this.workload.onTick();
      case Ev.deliveryAtAgent: return this.agentCommands.onDelivery(a, b, c, d);
      case Ev.ackAtGateway:
      case Ev.startAtGateway:
      case Ev.resultAtGateway: return this.#frameAtGateway(kind, a, b, c, d);
      case Ev.ackTimeout: return this.router.onAckTimeout(a, b);
      case Ev.deliveryRetry: return this.router.onDeliveryRetry(a, b);
      case Ev.reportRetry: return this.router.onReportRetry(a);
      case Ev.eventRetry: return this.controlPlane.onEventRetry(a);
      case Ev.expirySweep: return this.controlPlane.onExpirySweep();
      case Ev.redeliverySweep: return this.controlPlane.onRedeliverySweep();
      case Ev.executionDone: return this.agentCommands.onExecutionDone(a, b, c);
      case Ev.entryAtGateway: return this.router.onEntry(a, b);
      case Ev.reportAtControlPlane: return this.controlPlane.onReport(c, a, b, d);
      case Ev.crashTick: return this.faults.onCrashTick();
      case Ev.churnTick: return this.faults.onChurnTick();
      case Ev.gatewayCrash: return this.faults.onGatewayCrash(a, b);
      case Ev.gatewayStart: return this.router.onStart(a);
      case Ev.peerReclaim: return this.router.onPeerReclaim(a, b);
      default: return this.#dispatchRollout(kind, a, b, c, d);
    }
  }

  #dispatchRollout(kind: number, a: number, b: number, c: number, d: number): void {
    const rollout = this.rollout;
    if (rollout === undefined) throw new RangeError(`unknown model event kind ${kind}`);
    switch (kind) {
      case Ev.otaStart: return rollout.onStart();
      case Ev.otaSweep: return rollout.onSweep();
      case Ev.otaNoticeAtAgent: return rollout.onNoticeAtAgent(a, b, c, d);
      case Ev.otaReportAtGateway: return rollout.onReportAtGateway(a, b, c, d);
      case Ev.otaPaceDone: return rollout.onPaceDone(a, b);
      case Ev.otaDownloadEnd: return rollout.onDownloadEnd(a, b, c);
      case Ev.otaDownloadRetry: return rollout.onDownloadRetry(a, b);
      case Ev.otaRebootDone: return rollout.onRebootDone(a, b);
      case Ev.otaRecover: return rollout.onRecover(a, b, c, d);
      case Ev.otaResend: return rollout.onResend(a, b);
      default: throw new RangeError(`unknown model event kind ${kind}`);
    }
  }

  /** COMMAND_ACK and COMMAND_RESULT frames at the gateway: refresh presence, then the router. */
  #frameAtGateway(kind: number, agent: number, command: number, link: number, seq: number): void {
    const presence = this.presence;
    if (!presence.acceptAtGateway(agent, link, seq) || presence.gatewaySide[agent] !== Side.ready) return;
    // A refresh that finds a newer session ends this one, and the frame is not handled.
    presence.refreshKey(agent, link, false);
    if (presence.gatewaySide[agent] !== Side.ready) return;
    const gateway = presence.linkGateway[agent]!;
    if (kind === Ev.resultAtGateway) this.router.onResult(gateway, command, AgentCommands.reportOf(this.commands.jStatus[command] ?? Status.none));
    else this.router.onAck(gateway, command, kind === Ev.startAtGateway);
  }
}
