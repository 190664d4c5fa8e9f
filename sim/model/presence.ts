import { presenceTtlMs } from '../../server/gateway/presence.js';
import { Ev, Report } from './events.js';
import { Dir } from './network.js';
import type { ModelWorld } from './world.js';

/**
 * Sessions and presence, modelled from the session machine (core/protocol/session-machine.ts:
 * connecting -> authenticating -> ready -> closed) on both ends of each agent's link, and from
 * what drives it: SimAgent's connect, backoff and failover (sim/sim-agent.ts), the agent core's
 * heartbeat, silence and auth timers (agent/agent-core.ts), the gateway's silence and auth
 * bounds (GatewayConnection.pollTimeoutMs) and its presence key in the key/value store
 * (server/gateway/presence.ts: set at AUTH, refreshed by heartbeats, deleted at close if it still
 * names the session, expiring after 1.5 heartbeat intervals).
 *
 * One link per agent at a time. Where the full tier can briefly hold an old gateway-side session
 * of a device next to its new one (until the old one's close notice arrives), the model ends the
 * old one when the new connection opens: the same bookkeeping, a base delay earlier.
 */
export const Side = { none: 0, connecting: 1, ready: 2 } as const;

export class Presence {
  readonly #w: ModelWorld;
  /** Current link id per agent (0: never connected); link ids are unique in a run. */
  readonly link: Int32Array;
  /** Frames may still be sent on the link (not closed or aborted). */
  readonly linkOpen: Uint8Array;
  /** Aborted (a crash): frames in flight on it are lost in both directions. */
  readonly linkAborted: Uint8Array;
  readonly linkGateway: Uint8Array;
  /** The agent's session on the current link: none, waiting for AUTH_ACK, ready. */
  readonly agentSide: Uint8Array;
  /** The gateway's session on the current link: none, challenged, authenticated. */
  readonly gatewaySide: Uint8Array;
  readonly agentLastHeardMs: Float64Array;
  readonly gatewayLastHeardMs: Float64Array;
  readonly gatewayLastRefreshMs: Float64Array;
  readonly failures: Uint16Array;
  readonly nextGateway: Uint8Array;
  /** A scheduled connect carries this; bumping it cancels the connect. */
  readonly connectEpoch: Int32Array;
  readonly churnEpoch: Int32Array;
  readonly refusalsAtAgent: Uint8Array;
  readonly refusalsAtGateway: Uint8Array;
  /** The presence key: the link (session) it names, 0 when absent, and when it expires. */
  readonly keyLink: Int32Array;
  readonly keyGateway: Uint8Array;
  readonly keyExpiresMs: Float64Array;
  /**
   * How far ahead of true time the agent's estimate of the gateway's clock is, for deadlines:
   * its own skew until its first AUTH_ACK after a boot, then the error of the offset the gateway
   * measured at AUTH (core/protocol/clock-offset.ts: AUTH's ts against the challenge/AUTH
   * midpoint, so half the difference of the two link delays).
   */
  readonly deadlineAheadMs: Float64Array;
  readonly #challengeSentMs: Float64Array;
  readonly #authSentMs: Float64Array;
  readonly #offsetErrorMs: Float64Array;
  /** Agents running with a ready session (what the full tier counts as online). */
  connected = 0;
  #nextLink = 1;
  readonly #heartbeatMs: number;
  readonly #gatewaySilenceMs: number;
  readonly #keyTtlMs: number;

  constructor(world: ModelWorld) {
    this.#w = world;
    const n = world.agents;
    this.link = new Int32Array(n);
    this.linkOpen = new Uint8Array(n);
    this.linkAborted = new Uint8Array(n);
    this.linkGateway = new Uint8Array(n);
    this.agentSide = new Uint8Array(n);
    this.gatewaySide = new Uint8Array(n);
    this.agentLastHeardMs = new Float64Array(n);
    this.gatewayLastHeardMs = new Float64Array(n);
    this.gatewayLastRefreshMs = new Float64Array(n);
    this.failures = new Uint16Array(n);
    this.nextGateway = Uint8Array.from(world.fleet.preferredGateway);
    this.connectEpoch = new Int32Array(n);
    this.churnEpoch = new Int32Array(n);
    this.refusalsAtAgent = new Uint8Array(n);
    this.refusalsAtGateway = new Uint8Array(n);
    this.keyLink = new Int32Array(n);
    this.keyGateway = new Uint8Array(n);
    this.keyExpiresMs = new Float64Array(n);
    this.deadlineAheadMs = new Float64Array(n);
    this.#challengeSentMs = new Float64Array(n);
    this.#authSentMs = new Float64Array(n);
    this.#offsetErrorMs = new Float64Array(n);
    this.#heartbeatMs = world.scenario.heartbeatIntervalMs;
    this.#gatewaySilenceMs = Math.ceil(this.#heartbeatMs * world.params.gatewaySilenceIntervals);
    this.#keyTtlMs = presenceTtlMs(this.#heartbeatMs);
  }

  /** Running with a ready session. */
  isConnected(agent: number): boolean {
    return this.#w.fleet.up[agent] === 1 && this.agentSide[agent] === Side.ready;
  }

  /** The gateway the presence key names, -1 when it is absent or expired (CommandService.presenceGateway). */
  keyGatewayOf(agent: number): number {
    return this.keyLink[agent] !== 0 && this.keyExpiresMs[agent]! > this.#w.nowMs ? this.keyGateway[agent]! : -1;
  }

  /** A session the gateway can write a command to. */
  gatewayReady(agent: number, gateway: number, link: number): boolean {
    return this.link[agent] === link && this.gatewaySide[agent] === Side.ready && this.linkGateway[agent] === gateway && this.linkOpen[agent] === 1;
  }

  // --- connecting ----------------------------------------------------------------------------

  scheduleConnect(agent: number, delayMs: number): void {
    const epoch = ++this.connectEpoch[agent]!;
    this.#w.after(delayMs, Ev.connect, agent, epoch);
  }

  onConnect(agent: number, epoch: number): void {
    const w = this.#w;
    if (epoch !== this.connectEpoch[agent] || w.fleet.up[agent] !== 1 || w.fleet.wantOnline[agent] !== 1 || this.agentSide[agent] !== Side.none) return;
    if (this.gatewaySide[agent] !== Side.none) this.#gatewayFinish(agent);
    const gateway = this.nextGateway[agent]!;
    const link = this.#nextLink++;
    this.link[agent] = link;
    this.linkOpen[agent] = 1;
    this.linkAborted[agent] = 0;
    this.linkGateway[agent] = gateway;
    this.agentSide[agent] = Side.connecting;
    this.agentLastHeardMs[agent] = w.nowMs;
    this.refusalsAtAgent[agent] = 0;
    this.refusalsAtGateway[agent] = 0;
    w.network.openLink(agent);
    w.telemetry.onLink(agent);
    w.after(w.params.agentAuthTimeoutMs, Ev.agentAuthTimeout, agent, 0, link);
    if (!w.router.isUp(gateway)) {
      // Connection refused: the gateway process is down (SimAgent: link.abort('gateway')).
      this.#abort(agent, 'gateway');
      return;
    }
    this.gatewaySide[agent] = Side.connecting;
    this.gatewayLastHeardMs[agent] = w.nowMs;
    this.#challengeSentMs[agent] = w.nowMs;
    this.#send(Dir.toAgent, agent, Ev.challengeAtAgent, 0);
    w.after(w.params.gatewayAuthTimeoutMs, Ev.gatewayAuthTimeout, agent, 0, link);
  }

  onChallenge(agent: number, link: number, seq: number): void {
    if (!this.#acceptAtAgent(agent, link, seq)) return;
    this.#authSentMs[agent] = this.#w.nowMs;
    this.#send(Dir.toGateway, agent, Ev.authAtGateway, 0);
  }

  onAuth(agent: number, link: number, seq: number): void {
    if (!this.#acceptAtGateway(agent, link, seq) || this.gatewaySide[agent] !== Side.connecting) return;
    const w = this.#w;
    this.gatewaySide[agent] = Side.ready;
    this.#offsetErrorMs[agent] = this.#authSentMs[agent]! - Math.floor((this.#challengeSentMs[agent]! + w.nowMs) / 2);
    this.#send(Dir.toAgent, agent, Ev.authAckAtAgent, 0);
    w.after(this.#gatewaySilenceMs, Ev.gatewaySilence, agent, 0, link);
    // onAuthenticated: the key names the new session, then the control plane hears of it.
    this.#setKey(agent, link);
    this.gatewayLastRefreshMs[agent] = w.nowMs;
    w.router.reportDirect(Report.presenceOnline, agent, -1, this.linkGateway[agent]!);
    // The gateway pushes the device's OTA notice at AUTH (OtaNoticePush), so a device offline when notified gets it now.
    w.rollout?.onGatewayReady(agent);
  }

  onAuthAck(agent: number, link: number, seq: number): void {
    if (!this.#acceptAtAgent(agent, link, seq) || this.agentSide[agent] !== Side.connecting) return;
    const w = this.#w;
    this.agentSide[agent] = Side.ready;
    this.deadlineAheadMs[agent] = -this.#offsetErrorMs[agent]!;
    if (w.fleet.up[agent] === 1) this.connected += 1;
    this.failures[agent] = 0;
    w.counts.sessions_ready! += 1;
    w.after(this.#heartbeatMs, Ev.heartbeatTimer, agent, 0, link);
    w.telemetry.flush(agent);
    w.agentCommands.onReady(agent);
  }

  // --- heartbeats and silence ------------------------------------------------------------------

  onHeartbeatTimer(agent: number, link: number): void {
    const w = this.#w;
    if (this.link[agent] !== link || this.agentSide[agent] !== Side.ready) return;
    if (w.nowMs - this.agentLastHeardMs[agent]! > w.params.agentSilenceIntervalsMax * this.#heartbeatMs) {
      this.agentClose(agent);
      return;
    }
    this.#send(Dir.toGateway, agent, Ev.heartbeatAtGateway, w.nowMs);
    w.after(this.#heartbeatMs, Ev.heartbeatTimer, agent, 0, link);
  }

  onHeartbeat(agent: number, sentAtMs: number, link: number, seq: number): void {
    if (!this.#acceptAtGateway(agent, link, seq) || this.gatewaySide[agent] !== Side.ready) return;
    this.#send(Dir.toAgent, agent, Ev.echoAtAgent, sentAtMs);
    this.refreshKey(agent, link, true);
  }

  onEcho(agent: number, sentAtMs: number, link: number, seq: number): void {
    if (this.#acceptAtAgent(agent, link, seq)) this.#w.agentCommands.confirm(agent, sentAtMs);
  }

  onGatewaySilence(agent: number, link: number): void {
    if (this.link[agent] !== link || this.gatewaySide[agent] !== Side.ready) return;
    const deadlineMs = this.gatewayLastHeardMs[agent]! + this.#gatewaySilenceMs;
    if (this.#w.nowMs < deadlineMs) {
      this.#w.at(deadlineMs, Ev.gatewaySilence, agent, 0, link);
      return;
    }
    this.gatewayClose(agent);
  }

  onAgentAuthTimeout(agent: number, link: number): void {
    if (this.link[agent] === link && this.agentSide[agent] === Side.connecting) this.agentClose(agent);
  }

  onGatewayAuthTimeout(agent: number, link: number): void {
    if (this.link[agent] === link && this.gatewaySide[agent] === Side.connecting) this.gatewayClose(agent);
  }

  /**
   * The gateway extends the key on a heartbeat, or on another message a quarter interval after
   * the last refresh. A key naming another session means a newer session exists: this one ends.
   */
  refreshKey(agent: number, link: number, heartbeat: boolean): void {
    const w = this.#w;
    if (!heartbeat && w.nowMs - this.gatewayLastRefreshMs[agent]! < Math.floor(this.#heartbeatMs / w.params.presenceRefreshDivisor)) return;
    this.gatewayLastRefreshMs[agent] = w.nowMs;
    if (this.keyGatewayOf(agent) !== -1 && this.keyLink[agent] !== link) {
      this.gatewayClose(agent);
      return;
    }
    this.#setKey(agent, link);
  }

  #setKey(agent: number, link: number): void {
    this.keyLink[agent] = link;
    this.keyGateway[agent] = this.linkGateway[agent]!;
    this.keyExpiresMs[agent] = this.#w.nowMs + this.#keyTtlMs;
  }

  // --- frames --------------------------------------------------------------------------------

  /** Writes a frame of this agent's current link; `b` is the frame's argument. */
  sendFrame(dir: 0 | 1, agent: number, kind: number, b: number): void {
    this.#send(dir, agent, kind, b);
  }

  #send(dir: 0 | 1, agent: number, kind: number, b: number): void {
    const w = this.#w;
    if (this.linkOpen[agent] !== 1) return;
    const network = w.network;
    const copies = network.send(dir, agent, this.linkGateway[agent]!, w.nowMs);
    const link = this.link[agent]!;
    for (let copy = 0; copy < copies; copy += 1) w.at(network.arrivals[copy]!, kind, agent, b, link, network.seq);
  }

  /** A frame for the agent on `link`: false when its session is gone or the replay guard refuses it. */
  acceptAtAgent(agent: number, link: number, seq: number): boolean {
    return this.#acceptAtAgent(agent, link, seq);
  }

  acceptAtGateway(agent: number, link: number, seq: number): boolean {
    return this.#acceptAtGateway(agent, link, seq);
  }

  #acceptAtAgent(agent: number, link: number, seq: number): boolean {
    const w = this.#w;
    if (this.link[agent] !== link || this.linkAborted[agent] === 1 || this.agentSide[agent] === Side.none) return false;
    // The agent core counts any bytes as a sign of life, even a frame its session then refuses.
    this.agentLastHeardMs[agent] = w.nowMs;
    if (w.network.acceptSeq(Dir.toAgent, agent, seq)) return true;
    if (this.agentSide[agent] !== Side.ready || ++this.refusalsAtAgent[agent]! > w.params.refusalsMax) this.agentClose(agent);
    else this.#send(Dir.toGateway, agent, Ev.errorAtGateway, 0);
    return false;
  }

  #acceptAtGateway(agent: number, link: number, seq: number): boolean {
    const w = this.#w;
    if (this.link[agent] !== link || this.linkAborted[agent] === 1 || this.gatewaySide[agent] === Side.none) return false;
    if (w.network.acceptSeq(Dir.toGateway, agent, seq)) {
      this.gatewayLastHeardMs[agent] = w.nowMs;
      return true;
    }
    if (this.gatewaySide[agent] !== Side.ready || ++this.refusalsAtGateway[agent]! > w.params.refusalsMax) this.gatewayClose(agent);
    else this.#send(Dir.toAgent, agent, Ev.errorAtAgent, 0);
    return false;
  }

  /** The gateway refuses a frame it accepted on the wire (a broken telemetry chain): an ERROR back, and the session's refusal budget. */
  refuseAtGateway(agent: number): void {
    if (++this.refusalsAtGateway[agent]! > this.#w.params.refusalsMax) this.gatewayClose(agent);
    else this.#send(Dir.toAgent, agent, Ev.errorAtAgent, 0);
  }

  // --- closing -------------------------------------------------------------------------------

  /** The agent ends its connection (timeouts, refusals, churn): the gateway hears after the frames in flight. */
  agentClose(agent: number): void {
    const w = this.#w;
    if (this.agentSide[agent] === Side.none) return;
    if (this.linkOpen[agent] === 1) {
      this.linkOpen[agent] = 0;
      const dueMs = w.network.closeNoticeDueMs(Dir.toGateway, agent, this.linkGateway[agent]!, w.nowMs);
      w.at(dueMs, Ev.closedAtGateway, agent, 0, this.link[agent]!);
    }
    this.#agentClosed(agent);
  }

  /** The gateway ends the session (silence, auth timeout, refusals, replaced): the agent hears after the frames in flight. */
  gatewayClose(agent: number): void {
    const w = this.#w;
    if (this.gatewaySide[agent] === Side.none) return;
    if (this.linkOpen[agent] === 1) {
      this.linkOpen[agent] = 0;
      const dueMs = w.network.closeNoticeDueMs(Dir.toAgent, agent, this.linkGateway[agent]!, w.nowMs);
      w.at(dueMs, Ev.closedAtAgent, agent, 0, this.link[agent]!);
    }
    this.#gatewayFinish(agent);
  }

  onClosedAtAgent(agent: number, link: number): void {
    if (this.link[agent] === link && this.agentSide[agent] !== Side.none) this.#agentClosed(agent);
  }

  onClosedAtGateway(agent: number, link: number): void {
    if (this.link[agent] === link && this.gatewaySide[agent] !== Side.none) this.#gatewayFinish(agent);
  }

  /** A crash of one side: in-flight frames are lost both ways; the peer hears after the base delay. */
  #abort(agent: number, from: 'agent' | 'gateway'): void {
    const w = this.#w;
    this.linkAborted[agent] = 1;
    if (this.linkOpen[agent] !== 1) return;
    this.linkOpen[agent] = 0;
    const dueMs = w.nowMs + w.network.baseDelayMs(this.linkGateway[agent]!);
    w.at(dueMs, from === 'agent' ? Ev.closedAtGateway : Ev.closedAtAgent, agent, 0, this.link[agent]!);
  }

  /** The agent's session ended: reconnect with jittered backoff, failing over every few failures. */
  #agentClosed(agent: number): void {
    const w = this.#w;
    if (this.agentSide[agent] === Side.ready && w.fleet.up[agent] === 1) this.connected -= 1;
    this.agentSide[agent] = Side.none;
    w.counts.sessions_closed! += 1;
    if (w.fleet.up[agent] !== 1 || w.fleet.wantOnline[agent] !== 1) return;
    const failures = ++this.failures[agent]!;
    const p = w.params;
    if (failures % p.failoverEveryFailures === 0) this.nextGateway[agent] = (this.nextGateway[agent]! + 1) % w.gateways;
    const ceilingMs = Math.min(p.reconnectMaxMs, p.reconnectBaseMs * 2 ** Math.min(failures, 10));
    this.scheduleConnect(agent, w.rng.dynamics.intBetween(p.reconnectBaseMs, ceilingMs));
  }

  /** The gateway's session ended: its deliveries go back to the control plane, presence goes offline if the key is still ours. */
  #gatewayFinish(agent: number): void {
    const w = this.#w;
    const wasReady = this.gatewaySide[agent] === Side.ready;
    this.gatewaySide[agent] = Side.none;
    if (!wasReady) return;
    const link = this.link[agent]!;
    const gateway = this.linkGateway[agent]!;
    w.router.onSessionClosed(agent, gateway, link);
    // Presence.offline: a live key naming another session means a newer session: no offline then.
    if (this.keyGatewayOf(agent) !== -1 && this.keyLink[agent] !== link) return;
    if (this.keyLink[agent] === link) this.keyLink[agent] = 0;
    w.router.reportDirect(Report.presenceOffline, agent, -1, gateway);
  }

  // --- crashes, churn, gateway crashes, healing ----------------------------------------------

  /** The agent process dies (SimAgent.crash): no goodbye on the wire; back after downMs. */
  crash(agent: number, downMs: number): void {
    const w = this.#w;
    const fleet = w.fleet;
    if (fleet.up[agent] !== 1) return;
    if (this.agentSide[agent] === Side.ready) this.connected -= 1;
    fleet.up[agent] = 0;
    this.connectEpoch[agent]! += 1;
    this.agentSide[agent] = Side.none;
    this.#abort(agent, 'agent');
    const epoch = ++fleet.bootEpoch[agent]!;
    w.telemetry.onCrash(agent);
    w.agentCommands.onCrash(agent);
    w.after(downMs, Ev.boot, agent, epoch);
  }

  onBootTimer(agent: number, epoch: number): void {
    if (this.#w.fleet.bootEpoch[agent] === epoch) this.boot(agent);
  }

  /** The process starts: telemetry, journal recovery, then a connect within the first second. */
  boot(agent: number): void {
    const w = this.#w;
    const fleet = w.fleet;
    if (fleet.up[agent] === 1) return;
    fleet.up[agent] = 1;
    const first = fleet.bootEpoch[agent] === 0;
    fleet.bootEpoch[agent]! += 1;
    // A new agent core judges deadlines on its own clock until its first AUTH_ACK.
    this.deadlineAheadMs[agent] = fleet.skewMs[agent]!;
    w.telemetry.start(agent, first);
    w.agentCommands.recover(agent);
    this.scheduleConnect(agent, first ? fleet.connectDelayMs[agent]! : w.rng.dynamics.intBelow(w.params.connectDelayMsMax));
  }

  /** An orderly disconnect (churn): the agent closes its connection and stays away offlineMs. */
  leave(agent: number, offlineMs: number): void {
    const w = this.#w;
    if (w.fleet.up[agent] !== 1 || w.fleet.wantOnline[agent] !== 1) return;
    w.fleet.wantOnline[agent] = 0;
    this.connectEpoch[agent]! += 1;
    if (this.agentSide[agent] !== Side.none) this.agentClose(agent);
    w.after(offlineMs, Ev.comeBack, agent, ++this.churnEpoch[agent]!);
  }

  onComeBack(agent: number, epoch: number): void {
    if (this.churnEpoch[agent] === epoch) this.comeBack(agent);
  }

  comeBack(agent: number): void {
    const w = this.#w;
    if (w.fleet.wantOnline[agent] === 1) return;
    w.fleet.wantOnline[agent] = 1;
    this.scheduleConnect(agent, 0);
  }

  /** A gateway crashes: every link to it is reset; its sessions end without bookkeeping (their keys expire). */
  abortGateway(gateway: number): void {
    for (let agent = 0; agent < this.#w.agents; agent += 1) {
      if (this.linkGateway[agent] !== gateway || this.link[agent] === 0) continue;
      if (this.gatewaySide[agent] === Side.none && this.linkOpen[agent] !== 1) continue;
      this.gatewaySide[agent] = Side.none;
      this.#abort(agent, 'gateway');
    }
  }

  /** The liveness phase: crashed agents boot, churned ones come back. */
  heal(): void {
    const fleet = this.#w.fleet;
    for (let agent = 0; agent < this.#w.agents; agent += 1) {
      if (fleet.up[agent] !== 1) this.boot(agent);
      if (fleet.wantOnline[agent] !== 1) this.comeBack(agent);
    }
  }
}
