import { backoffDelayMs } from '../../server/gateway/backoff.js';
import { noGateway } from './command-store.js';
import { Ev, Report } from './events.js';
import { Dir } from './network.js';
import type { ModelWorld } from './world.js';

/**
 * The gateways' command routing (server/gateway/command-router.ts) and their up/down state. A
 * `deliver` entry on a gateway's stream becomes a delivery: COMMAND_DELIVERY to the device's
 * session, an ACK wait of ackTimeoutMs, redelivery with the real backoff after a timeout, a
 * dead letter after deliveryAttemptsMax attempts; the device's ACKs and RESULT are forwarded,
 * and the delivery ends with the result. A session that ends hands its deliveries back
 * (`requeue`). A duplicate entry for an acknowledged delivery asks the device again, at most once
 * per ACK timeout since the last send.
 *
 * Reports go to the control plane through the events stream. deliver/ack/start/result reports
 * that a bus outage refuses are queued per command and retried in order with backoff, at most
 * reportAttemptsMax times (#persist); the others (presence, requeue, dead letter) are lost
 * with the outage, as in the real gateway, and left to the control plane's redelivery sweep.
 *
 * A crashed gateway forgets its deliveries; their stream entries stay pending. The gateway hands
 * them back when it starts again, or a surviving peer does once the crashed one's liveness key
 * expired. Entries appended while it was down wait in its stream for its restart.
 */
interface Backlog {
  readonly gateway: number;
  readonly reports: number[];
  failures: number;
}

export class GatewayRouter {
  readonly #w: ModelWorld;
  readonly #up: Uint8Array;
  readonly #crashEpoch: Int32Array;
  /** Per gateway: commands appended to its stream while it was down. */
  readonly #unread: number[][];
  /** Per gateway: deliveries it held when it crashed (pending entries). */
  readonly #pending: number[][];
  /** Per agent: deliveries held (pendingDeliveriesPerDeviceMax). */
  readonly #perDevice: Uint16Array;
  /** Per command: reports waiting for the bus, as [kind, at ms] pairs. */
  readonly #backlogs = new Map<number, Backlog>();

  constructor(world: ModelWorld) {
    this.#w = world;
    this.#up = new Uint8Array(world.gateways).fill(1);
    this.#crashEpoch = new Int32Array(world.gateways);
    this.#unread = Array.from({ length: world.gateways }, () => []);
    this.#pending = Array.from({ length: world.gateways }, () => []);
    this.#perDevice = new Uint16Array(world.agents);
  }

  isUp(gateway: number): boolean {
    return this.#up[gateway] === 1;
  }

  /** The control plane appended a `deliver` entry to `gateway`'s stream. */
  append(command: number, gateway: number): void {
    const w = this.#w;
    if (this.#up[gateway] !== 1) {
      this.#unread[gateway]!.push(command);
      return;
    }
    if (w.params.dispatchServiceMs > 0) w.after(w.params.dispatchServiceMs, Ev.entryAtGateway, gateway, command);
    else this.onEntry(gateway, command);
  }

  onEntry(gateway: number, command: number): void {
    const w = this.#w;
    const store = w.commands;
    if (this.#up[gateway] !== 1) {
      this.#unread[gateway]!.push(command);
      return;
    }
    // The control plane's expiry sweep owns expired commands.
    if (w.nowMs >= store.expiresAtMs[command]!) return;
    if (store.dlvGateway[command] === gateway) {
      // At most once per ACK timeout since the last send (CommandRouter's duplicate handling).
      if (store.dlvAcked[command] === 1 && w.nowMs - store.dlvSentAtMs[command]! >= w.params.ackTimeoutMs) this.#resend(command);
      return;
    }
    const agent = store.agent[command]!;
    const presence = w.presence;
    const link = presence.link[agent]!;
    if (!presence.gatewayReady(agent, gateway, link) || this.#perDevice[agent]! >= w.params.pendingDeliveriesPerDeviceMax) {
      this.reportDirect(Report.requeue, agent, command, gateway);
      return;
    }
    if (store.dlvGateway[command] !== noGateway) this.#forget(command);
    store.dlvGateway[command] = gateway;
    store.dlvAttempt[command] = 0;
    store.dlvAcked[command] = 0;
    store.dlvLink[command] = link;
    store.dlvEpoch[command]! += 1;
    this.#perDevice[agent]! += 1;
    this.#send(command);
  }

  #send(command: number): void {
    const w = this.#w;
    const store = w.commands;
    store.dlvAttempt[command]! += 1;
    store.dlvSentAtMs[command] = w.nowMs;
    if (!this.#targetReady(command)) {
      this.#requeue(command);
      return;
    }
    w.presence.sendFrame(Dir.toAgent, store.agent[command]!, Ev.deliveryAtAgent, command);
    w.after(w.params.ackTimeoutMs, Ev.ackTimeout, command, store.dlvEpoch[command]!);
    this.reportPersisted(Report.deliver, command, store.dlvGateway[command]!);
  }

  /** COMMAND_DELIVERY again for an acknowledged delivery (a duplicate entry): the device answers from its journal. */
  #resend(command: number): void {
    const store = this.#w.commands;
    store.dlvAttempt[command] = Math.min(100, store.dlvAttempt[command]! + 1);
    store.dlvSentAtMs[command] = this.#w.nowMs;
    if (this.#targetReady(command)) this.#w.presence.sendFrame(Dir.toAgent, store.agent[command]!, Ev.deliveryAtAgent, command);
    else this.#requeue(command);
  }

  #targetReady(command: number): boolean {
    const store = this.#w.commands;
    return this.#w.presence.gatewayReady(store.agent[command]!, store.dlvGateway[command]!, store.dlvLink[command]!);
  }

  onAckTimeout(command: number, epoch: number): void {
    const w = this.#w;
    const store = w.commands;
    if (store.dlvEpoch[command] !== epoch || store.dlvAcked[command] === 1 || store.dlvGateway[command] === noGateway) return;
    const attempt = store.dlvAttempt[command]!;
    if (attempt >= w.params.deliveryAttemptsMax) {
      const gateway = store.dlvGateway[command]!;
      this.#forget(command);
      this.reportDirect(Report.deadLetter, store.agent[command]!, command, gateway);
      return;
    }
    const delayMs = backoffDelayMs({ ...w.params.backoff, failedAttempts: attempt, random: w.rng.gateways });
    w.after(delayMs, Ev.deliveryRetry, command, epoch);
  }

  onDeliveryRetry(command: number, epoch: number): void {
    const store = this.#w.commands;
    if (store.dlvEpoch[command] === epoch && store.dlvGateway[command] !== noGateway) this.#send(command);
  }

  /** A COMMAND_ACK (stage received or executing) from the device's session on `gateway`. */
  onAck(gateway: number, command: number, executing: boolean): void {
    this.#markAcked(gateway, command);
    this.reportPersisted(executing ? Report.start : Report.ack, command, gateway);
  }

  /** A COMMAND_RESULT: forwarded; the delivery ends once the report is out. */
  onResult(gateway: number, command: number, report: number): void {
    this.#markAcked(gateway, command);
    this.reportPersisted(report, command, gateway);
  }

  #markAcked(gateway: number, command: number): void {
    const store = this.#w.commands;
    if (store.dlvGateway[command] === gateway) store.dlvAcked[command] = 1;
  }

  /** A session ended at `gateway`: what it had in flight goes back to the control plane. */
  onSessionClosed(agent: number, gateway: number, link: number): void {
    const store = this.#w.commands;
    for (let c = store.agentHead[agent]!; c !== -1; c = store.nextOfAgent[c]!) {
      if (store.dlvGateway[c] === gateway && store.dlvLink[c] === link) this.#requeue(c);
    }
  }

  #requeue(command: number): void {
    const gateway = this.#w.commands.dlvGateway[command]!;
    this.#forget(command);
    this.reportDirect(Report.requeue, this.#w.commands.agent[command]!, command, gateway);
  }

  #forget(command: number): void {
    const store = this.#w.commands;
    if (store.dlvGateway[command] === noGateway) return;
    store.dlvGateway[command] = noGateway;
    store.dlvEpoch[command]! += 1;
    this.#perDevice[store.agent[command]!]! -= 1;
  }

  // --- reports to the control plane ----------------------------------------------------------

  /** A report the gateway sends once; a bus outage loses it. */
  reportDirect(kind: number, agent: number, command: number, _gateway: number): void {
    if (this.#w.faults.busDown()) return;
    this.#toControlPlane(kind, agent, command, this.#w.nowMs);
  }

  /** deliver/ack/start/result: stamped now, queued behind earlier reports of the command, retried through outages. */
  reportPersisted(kind: number, command: number, gateway: number): void {
    const w = this.#w;
    const queued = this.#backlogs.get(command);
    if (queued !== undefined) {
      queued.reports.push(kind, w.nowMs);
      return;
    }
    if (!w.faults.busDown()) {
      this.#delivered(kind, command, w.nowMs);
      return;
    }
    const backlog: Backlog = { gateway, reports: [kind, w.nowMs], failures: 0 };
    this.#backlogs.set(command, backlog);
    this.#failed(command, backlog);
  }

  /** A failed attempt: retried after the backoff, or given up (left to the redelivery sweep) after reportAttemptsMax. */
  #failed(command: number, backlog: Backlog): void {
    backlog.failures += 1;
    if (backlog.failures >= this.#w.params.reportAttemptsMax) this.#backlogs.delete(command);
    else this.#w.after(this.#backoffMs(backlog.failures), Ev.reportRetry, command);
  }

  onReportRetry(command: number): void {
    const w = this.#w;
    const backlog = this.#backlogs.get(command);
    if (backlog === undefined) return;
    if (w.faults.busDown()) {
      this.#failed(command, backlog);
      return;
    }
    this.#backlogs.delete(command);
    for (let i = 0; i < backlog.reports.length; i += 2) this.#delivered(backlog.reports[i]!, command, backlog.reports[i + 1]!);
  }

  #backoffMs(failures: number): number {
    return backoffDelayMs({ ...this.#w.params.backoff, failedAttempts: failures, random: this.#w.rng.gateways });
  }

  /** A report reached the events stream; a result also ends the delivery (the stream entry is acked). */
  #delivered(kind: number, command: number, atMs: number): void {
    const store = this.#w.commands;
    if (kind === Report.succeeded || kind === Report.failed || kind === Report.rejected) this.#forget(command);
    this.#toControlPlane(kind, store.agent[command]!, command, atMs);
  }

  #toControlPlane(kind: number, agent: number, command: number, atMs: number): void {
    const w = this.#w;
    if (w.params.reportServiceMs > 0) w.after(w.params.reportServiceMs, Ev.reportAtControlPlane, agent, command, kind, atMs);
    else w.controlPlane.onReport(kind, agent, command, atMs);
  }

  // --- gateway crashes and restarts ----------------------------------------------------------

  /** abort(): sessions reset without bookkeeping, deliveries forgotten (their entries stay pending), reports given up. */
  crash(gateway: number): void {
    const w = this.#w;
    if (this.#up[gateway] !== 1) return;
    this.#up[gateway] = 0;
    const epoch = ++this.#crashEpoch[gateway]!;
    const store = w.commands;
    for (let c = 0; c < store.count; c += 1) {
      if (store.dlvGateway[c] !== gateway) continue;
      this.#pending[gateway]!.push(c);
      this.#forget(c);
    }
    for (const [command, backlog] of [...this.#backlogs]) {
      if (backlog.gateway === gateway) this.#backlogs.delete(command);
    }
    w.presence.abortGateway(gateway);
    if (w.gateways > 1) {
      const heartbeatMs = w.scenario.heartbeatIntervalMs;
      w.after(w.params.peerReclaimIntervals * heartbeatMs + w.rng.gateways.intBelow(heartbeatMs + 1), Ev.peerReclaim, gateway, epoch);
    }
  }

  /** A new gateway process with the same id; a store outage makes its start fail, retried later. */
  onStart(gateway: number): void {
    const w = this.#w;
    if (this.#up[gateway] === 1) return;
    if (w.faults.busDown()) {
      w.after(w.params.gatewayStartRetryMs, Ev.gatewayStart, gateway);
      return;
    }
    this.#up[gateway] = 1;
    this.#handBack(gateway);
    const unread = this.#unread[gateway]!.splice(0);
    for (const command of unread) this.onEntry(gateway, command);
  }

  onPeerReclaim(gateway: number, epoch: number): void {
    if (this.#crashEpoch[gateway] !== epoch || this.#up[gateway] === 1) return;
    for (let g = 0; g < this.#w.gateways; g += 1) {
      if (g === gateway || this.#up[g] !== 1) continue;
      this.#handBack(gateway);
      return;
    }
  }

  #handBack(gateway: number): void {
    const store = this.#w.commands;
    for (const command of this.#pending[gateway]!.splice(0)) this.reportDirect(Report.requeue, store.agent[command]!, command, gateway);
  }
}
