import { decodeBusEntry, encodeBusEntry, type BusEntryData } from '../bus-contract/entries.js';
import { gatewayCommandStream, groups } from '../bus-contract/streams.js';
import { SdcError } from '../../core/errors/index.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import type { TimerHandle } from '../../core/ports/ports.js';
import { verifyCommand } from '../../core/protocol/signed-command.js';
import { traceLogFields } from '../../core/trace/trace-context.js';
import type { BusEntry } from '../stores/bus/bus-port.js';
import { backoffDelayMs } from './backoff.js';
import type { GatewayContext } from './gateway-context.js';
import { GivenUpCommands } from './given-up-commands.js';

/** The live session a command can be written to. */
export interface DeliveryTarget {
  readonly sessionId: string;
  /** Writes COMMAND_DELIVERY (with the traceparent when the agent takes one); false if the session can no longer send. */
  deliver(command: SignedCommand, attempt: number, traceparent?: string): boolean;
}

interface Delivery {
  readonly stream: string;
  readonly entryId: string;
  readonly command: SignedCommand;
  /** The operation's W3C trace from the `deliver` entry: logged with, sent to the agent, reported back with the progress. */
  readonly traceparent: string | undefined;
  /** The operator's retry number from the `deliver` entry (0: not a retry), remembered if this delivery is given up. */
  readonly retry: number;
  readonly target: DeliveryTarget;
  attempt: number;
  acked: boolean;
  timer: TimerHandle | undefined;
  /** When COMMAND_DELIVERY was last written to the device (first send, retry or re-ask): duplicates re-ask at most once per ackTimeoutMs after it. */
  lastSentAtMs: number;
}

/** The router's fixed bounds and pauses (the per-gateway ones are GatewayOptions). */
export const commandRouterLimits = Object.freeze({
  /** Entries read or claimed per bus call: one call's work stays small beside the session traffic. */
  readCountMax: 32,
  /** Claim calls at start for a previous run's pending entries: at most 32,000 entries, then the loop starts anyway. */
  restartClaimRoundsMax: 1_000,
  /** Pause before looking again while pendingDeliveriesMax deliveries are held: back-pressure without a busy loop. */
  idleWhenFullMs: 50,
  /** Pause after a failed read, so a broken bus is not hammered. */
  errorPauseMs: 500,
  /**
   * After a restart, the second look for entries a previous run's blocked read took comes this
   * long after that read's longest block (commandReadBlockMs); a leftover is then idle at least this.
   */
  leftoverClaimMarginMs: 100,
  /** COMMAND_DELIVERY's `attempt` is at most 100 on the wire. */
  commandAttemptMax: 100,
  /**
   * Commands with reports queued at once (in flight or waiting for a retry); a failure beyond it is
   * left to the control plane's redelivery sweep (the delivery stays held, so the sweep's duplicate
   * re-asks the device).
   */
  reportBacklogsMax: 1_024,
  /** Reports of one command waiting behind a failed one (deliver, ack, start, result, and repeats). */
  reportsPerCommandMax: 16,
  /** A progress report's detail is cut to this: the bus contract's command_progress allows 512 characters. */
  progressDetailCharsMax: 512,
});
const { readCountMax, idleWhenFullMs, errorPauseMs, commandAttemptMax, reportBacklogsMax, reportsPerCommandMax, leftoverClaimMarginMs } = commandRouterLimits;

/**
 * One report to the events stream: its entry (encoded when the event happened), then what must
 * wait until the entry is on the stream (`then`: the result's stream ack). `appended` is set once
 * the entry is there, so a retry after a failed `then` does not append it again.
 */
interface PendingReport {
  readonly what: string;
  readonly entry: Record<string, string>;
  readonly then: (() => Promise<void>) | undefined;
  appended: boolean;
}

/** A command's reports not yet on the events stream, in the order the gateway got them; retried after a failure. */
interface ReportBacklog {
  readonly reports: PendingReport[];
  failures: number;
  timer: TimerHandle | undefined;
}

/**
 * Reads this gateway's command stream and carries each command to its device: verify, deliver,
 * wait for the ACK (retrying with backoff), forward ACK/RESULT frames, and ack the stream entry
 * only once the command is finished here or handed back (`requeue`) to the control plane.
 */
export class CommandRouter {
  readonly #deliveries = new Map<string, Delivery>();
  readonly #perDevice = new Map<string, number>();
  readonly #stream: string;
  /** By command id: reports in flight or waiting for a retry (at most reportBacklogsMax commands). */
  readonly #backlogs = new Map<string, ReportBacklog>();
  readonly #reportBacklogsMax: number;
  /** Deliveries waiting for room in #backlogs before they go out (#send). */
  #roomWaiters: Array<() => void> = [];
  /** Commands dead-lettered here lately: a late re-append of one is not a new delivery (given-up-commands.ts). */
  readonly #givenUp = new GivenUpCommands();
  #running = false;
  #stopped = false;
  /** The second look at our own pending entries after a restart (start()). */
  #leftoverTimer: TimerHandle | undefined;

  /** `limits` lowers reportBacklogsMax (tests). */
  constructor(private readonly context: GatewayContext, private readonly targetFor: (deviceId: string) => DeliveryTarget | undefined, limits: { reportBacklogsMax?: number } = {}) {
    this.#stream = gatewayCommandStream(context.options.gatewayId);
    this.#reportBacklogsMax = limits.reportBacklogsMax ?? reportBacklogsMax;
  }

  get pendingDeliveries(): number {
    return this.#deliveries.size;
  }

  async start(): Promise<void> {
    const { bus } = this.context.options.stores;
    await bus.ensureGroup(this.#stream, groups.gateway, '0');
    // Entries still pending for our id belong to sessions of a previous run of this gateway: hand them back.
    for (let round = 0; round < commandRouterLimits.restartClaimRoundsMax; round++) {
      const stale = await bus.claim(this.#stream, groups.gateway, this.context.options.gatewayId, { minIdleMs: 0, count: readCountMax });
      for (const entry of stale) await this.handBack(this.#stream, entry, 'gateway restarted');
      if (stale.length < readCountMax) break;
    }
    this.#running = true;
    void this.#run();
    // A previous run of this gateway that crashed in this process (abort) may still have a read
    // blocked on our stream, under our consumer name: an entry appended after the claim above goes
    // to it, and it is dropped there, pending for our name, until the control plane's redispatch
    // sweep (30 s by default). Such a read ends within commandReadBlockMs, so one more look then
    // finds what it took (gateway_crash seed 23 of the fault matrix, docs/chaos.md).
    this.#leftoverTimer = this.context.schedule(this.context.options.commandReadBlockMs + leftoverClaimMarginMs, () => {
      this.#leftoverTimer = undefined;
      void this.#takeLeftovers();
    });
  }

  /** Delivers (or hands back) the entries pending for our name that no delivery of ours holds. */
  async #takeLeftovers(): Promise<void> {
    const { bus } = this.context.options.stores;
    const ours = new Set([...this.#deliveries.values()].map((delivery) => delivery.entryId));
    try {
      for (let round = 0; round < commandRouterLimits.restartClaimRoundsMax && this.#running; round++) {
        // Our own deliveries' entries idle that long are claimed too (to us again); they are skipped.
        const taken = await bus.claim(this.#stream, groups.gateway, this.context.options.gatewayId, { minIdleMs: leftoverClaimMarginMs, count: readCountMax });
        for (const entry of taken) {
          if (!this.#running) return;
          if (ours.has(entry.id)) continue;
          ours.add(entry.id);
          await this.#handleEntry(entry);
        }
        if (taken.length < readCountMax) break;
      }
    } catch (error) {
      // A store failure: what is left is handed back by the control plane's redispatch sweep.
      this.context.options.logger.error({ err: error, trace_id: this.context.traceId() }, 'claiming entries left by a previous run failed');
    }
  }

  /** Stops reading; in-flight deliveries stay pending in the stream (stop() hands them back via session close). */
  stop(): void {
    this.#running = false;
    this.#stopped = true;
    if (this.#leftoverTimer !== undefined) this.context.options.scheduler.cancel(this.#leftoverTimer);
    for (const delivery of this.#deliveries.values()) this.#cancelTimer(delivery);
    // A report still failing is given up: the control plane's redelivery sweep re-asks the device for it.
    for (const backlog of this.#backlogs.values()) {
      if (backlog.timer !== undefined) this.context.options.scheduler.cancel(backlog.timer);
    }
    this.#backlogs.clear();
    this.#wakeRoomWaiters();
  }

  async #run(): Promise<void> {
    const { bus } = this.context.options.stores;
    const { gatewayId, pendingDeliveriesMax, commandReadBlockMs, logger } = this.context.options;
    while (this.#running) {
      const room = pendingDeliveriesMax - this.#deliveries.size;
      if (room <= 0) {
        // Backpressure: the entries wait in the stream until a delivery finishes.
        await this.context.sleep(idleWhenFullMs);
        continue;
      }
      let entries: BusEntry[];
      try {
        entries = await bus.readGroup(this.#stream, groups.gateway, gatewayId, { count: Math.min(readCountMax, room), blockMs: commandReadBlockMs });
      } catch (error) {
        if (!this.#running) break;
        logger.error({ err: error, trace_id: this.context.traceId() }, 'command stream read failed');
        await this.context.sleep(errorPauseMs);
        if (SdcError.is(error, 'STORE_NO_GROUP')) await this.#recreateGroup();
        continue;
      }
      for (const entry of entries) {
        if (!this.#running) break;
        try {
          await this.#handleEntry(entry);
        } catch (error) {
          // A store failure: the entry stays pending and is handed back by a claim later.
          logger.error({ err: error, entry_id: entry.id, trace_id: this.context.traceId() }, 'command entry handling failed');
        }
      }
    }
  }

  /**
   * The store lost our stream and group (Redis restarted without persistence, FLUSHALL). From '0':
   * what the control plane appended since is for us. Deliveries in flight stay held (their acks
   * find nothing and count 0); the control plane's redelivery sweep re-sends what the wipe lost.
   */
  async #recreateGroup(): Promise<void> {
    const { stores, logger } = this.context.options;
    try {
      await stores.bus.ensureGroup(this.#stream, groups.gateway, '0');
      logger.warn({ stream: this.#stream, trace_id: this.context.traceId() }, 'command stream group was lost (store wiped?); re-created');
    } catch (error) {
      logger.error({ err: error, trace_id: this.context.traceId() }, 'command stream group could not be re-created; retrying');
    }
  }

  async #handleEntry(entry: BusEntry): Promise<void> {
    const { bus } = this.context.options.stores;
    const { commandKeys, provider, logger, pendingDeliveriesPerDeviceMax } = this.context.options;
    let command: SignedCommand;
    let traceparent: string | undefined;
    let retry: number;
    try {
      const decoded = decodeBusEntry(entry.fields);
      if (decoded.kind !== 'deliver') throw new SdcError('GATEWAY_COMMAND_REFUSED', `a gateway stream carries deliver entries, not ${decoded.kind}`);
      command = decoded.data.command;
      traceparent = decoded.data.traceparent;
      retry = decoded.data.retry ?? 0;
    } catch (error) {
      const code = SdcError.is(error) ? error.code : 'GATEWAY_COMMAND_REFUSED';
      logger.warn({ code, entry_id: entry.id, trace_id: this.context.traceId() }, 'malformed command entry dead-lettered');
      await bus.deadLetter(this.#stream, groups.gateway, entry.id, code);
      return;
    }
    try {
      verifyCommand({ command, deviceId: command.device_id, resolveKey: (kid) => commandKeys.get(kid), provider, nowMs: this.context.nowMs() });
      if (command.device_seq < 1) throw new SdcError('GATEWAY_COMMAND_REFUSED', 'device_seq starts at 1');
    } catch (error) {
      const code = SdcError.is(error) ? error.code : 'GATEWAY_COMMAND_REFUSED';
      if (code === 'COMMAND_EXPIRED') {
        // The control plane's expiry sweep owns expired commands; handing it back would only loop.
        logger.info({ command_id: command.id, ...traceLogFields(traceparent) }, 'expired command dropped');
        await bus.ack(this.#stream, groups.gateway, [entry.id]);
        return;
      }
      logger.warn({ code, command_id: command.id, trace_id: this.context.traceId(), ...traceLogFields(traceparent) }, 'command refused by the gateway');
      await this.#progress(command, 'dead_letter', 0, `${code}: refused by gateway`, this.context.nowMs(), traceparent);
      await bus.deadLetter(this.#stream, groups.gateway, entry.id, code);
      return;
    }
    const existing = this.#deliveries.get(command.id);
    if (existing !== undefined) {
      // The control plane appended it again (a new presence, or its redelivery sweep because it has
      // no result yet). Unacked: the ACK-timeout retries carry on. Acked: the device's ACK or RESULT
      // may have been lost on the way to the control plane, so the device is asked again; it answers
      // a known command id from its journal (the result, or the ACK of where it is) and never runs it twice.
      // At most once per ACK timeout: an answer to an ask that recent may still be on its way, and
      // each ask costs the device a re-sent frame and the control plane's serial event partition for
      // the device one more event to work through (a burst of duplicates re-asked once each kept
      // commands queued in the API long after their results were forwarded; docs/gateway.md).
      if (existing.acked && this.context.nowMs() - existing.lastSentAtMs >= this.context.options.ackTimeoutMs) await this.#resend(existing);
      else if (existing.acked) this.context.options.logger.debug({ command_id: command.id, entry_id: entry.id, ...traceLogFields(traceparent) }, 'duplicate deliver within the ACK timeout of the last ask; the device is not asked again');
      if (existing.entryId !== entry.id) await bus.ack(this.#stream, groups.gateway, [entry.id]);
      return;
    }
    if (this.#givenUp.isStale(command.id, retry, this.context.nowMs())) {
      // Appended before the control plane read our dead letter (its sweep or a presence event):
      // the attempts are spent, and only an operator's retry starts them again.
      logger.info({ command_id: command.id, entry_id: entry.id, ...traceLogFields(traceparent) }, 'late re-append of a command dead-lettered here; dropped');
      await bus.ack(this.#stream, groups.gateway, [entry.id]);
      return;
    }
    const target = this.targetFor(command.device_id);
    if (target === undefined) {
      await this.#handBackCommand(this.#stream, entry.id, command, 0, 'device not connected to this gateway', traceparent);
      return;
    }
    if ((this.#perDevice.get(command.device_id) ?? 0) >= pendingDeliveriesPerDeviceMax) {
      await this.#handBackCommand(this.#stream, entry.id, command, 0, 'device delivery queue full', traceparent);
      return;
    }
    const delivery: Delivery = { stream: this.#stream, entryId: entry.id, command, traceparent, retry, target, attempt: 0, acked: false, timer: undefined, lastSentAtMs: this.context.nowMs() };
    this.#deliveries.set(command.id, delivery);
    this.#perDevice.set(command.device_id, (this.#perDevice.get(command.device_id) ?? 0) + 1);
    await this.#send(delivery);
  }

  #wakeRoomWaiters(): void {
    if (this.#roomWaiters.length === 0) return;
    const waiters = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const wake of waiters) wake();
  }

  #dropBacklog(commandId: string): void {
    this.#backlogs.delete(commandId);
    this.#wakeRoomWaiters();
  }

  async #send(delivery: Delivery): Promise<void> {
    if (this.#deliveries.get(delivery.command.id) !== delivery) return;
    // The deliver report below is not awaited, so without this wait a burst could fill #backlogs,
    // and a deliver report beyond it went out once, unregistered: not retried after a failure, and
    // not the queue the command's ACK and RESULT wait behind (review h12). The device is asked only
    // once there is room; checked again after each wake, with no await between the last check and
    // the report's registration (#persist sets it synchronously), so the bound holds.
    while (!this.#stopped && this.#backlogs.size >= this.#reportBacklogsMax && !this.#backlogs.has(delivery.command.id)) {
      await new Promise<void>((resolve) => { this.#roomWaiters.push(resolve); });
      // Meanwhile the delivery may have been finished, handed back or given up, or the router stopped.
      if (this.#stopped || this.#deliveries.get(delivery.command.id) !== delivery) return;
    }
    delivery.attempt += 1;
    delivery.lastSentAtMs = this.context.nowMs();
    if (!delivery.target.deliver(delivery.command, delivery.attempt, delivery.traceparent)) {
      await this.#requeue(delivery, 'session closed before delivery');
      return;
    }
    this.context.options.logger.info({
      command_id: delivery.command.id, device_id: delivery.command.device_id, attempt: delivery.attempt, ...traceLogFields(delivery.traceparent),
    }, 'command delivered to the device');
    this.#cancelTimer(delivery);
    delivery.timer = this.context.schedule(this.context.options.ackTimeoutMs, () => { void this.#onAckTimeout(delivery); });
    const attempt = delivery.attempt;
    // Stamped now, not when the report finally goes out: a report retried after a bus outage must
    // not carry a time later than the device's ACK and RESULT that followed this delivery.
    const atMs = this.context.nowMs();
    // Not awaited (issue 17): the report goes through the command's own queue (#persist), which keeps it ahead of the
    // command's ACK and RESULT and retries it after a failure, so the next entry need not wait for its append. Awaited,
    // the router delivered one command per append round trip: on a busy process a turn of the event loop each, which
    // held the 1,000th command of a burst for about 1,000 turns (`sdc bench roundtrip`, queued -> sent), and the
    // appends of one read went out one by one instead of in one pipelined write.
    void this.#persist('deliver', delivery.command.id, 'command_progress', progressData(delivery.command, this.context.options.gatewayId, { event: 'deliver', attempt, atMs, traceparent: delivery.traceparent }))
      .catch((error: unknown) => this.context.options.logger.error({ err: error, command_id: delivery.command.id }, 'deliver report failed; left to the redelivery sweep'));
  }

  /** COMMAND_DELIVERY again for an acked delivery; no `deliver` progress: the command is past `sent` here. */
  async #resend(delivery: Delivery): Promise<void> {
    delivery.attempt = Math.min(commandAttemptMax, delivery.attempt + 1);
    delivery.lastSentAtMs = this.context.nowMs();
    if (!delivery.target.deliver(delivery.command, delivery.attempt, delivery.traceparent)) await this.#requeue(delivery, 'session closed before redelivery');
  }

  async #onAckTimeout(delivery: Delivery): Promise<void> {
    delivery.timer = undefined;
    if (!this.#running || delivery.acked || this.#deliveries.get(delivery.command.id) !== delivery) return;
    const { deliveryAttemptsMax, backoff, random, logger } = this.context.options;
    try {
      if (delivery.attempt >= deliveryAttemptsMax) {
        logger.warn({ command_id: delivery.command.id, attempts: delivery.attempt, ...traceLogFields(delivery.traceparent) }, 'no ACK after the last attempt; dead-lettered');
        this.#forget(delivery);
        this.#givenUp.remember(delivery.command.id, delivery.retry, this.context.nowMs());
        await this.#progress(delivery.command, 'dead_letter', delivery.attempt, `no ACK after ${delivery.attempt} attempts`, this.context.nowMs(), delivery.traceparent);
        await this.context.options.stores.bus.deadLetter(delivery.stream, groups.gateway, delivery.entryId, 'GATEWAY_ACK_TIMEOUT');
        return;
      }
      const delayMs = backoffDelayMs({ ...backoff, failedAttempts: delivery.attempt, random });
      delivery.timer = this.context.schedule(delayMs, () => {
        delivery.timer = undefined;
        if (this.#running) void this.#send(delivery).catch((error: unknown) => logger.error({ err: error }, 'redelivery failed'));
      });
    } catch (error) {
      logger.error({ err: error, command_id: delivery.command.id, trace_id: this.context.traceId() }, 'ACK timeout handling failed');
    }
  }

  /**
   * A verified COMMAND_ACK from `deviceId`; `frame` is its signed text. Forwarded even without a
   * delivery here: the device's signed frame is the authority on its progress. A failed report is
   * retried in the background (#persist), so a store outage neither loses it nor stalls the session.
   */
  async onAck(deviceId: string, body: MessageBody<'COMMAND_ACK'>, frame: string): Promise<void> {
    const delivery = this.#markAcked(deviceId, body.command_id);
    // The device's word on the trace first: it also covers an ACK with no delivery held here (after a gateway restart).
    const traceparent = body.traceparent ?? delivery?.traceparent;
    const data = {
      command_id: body.command_id, device_id: deviceId, gateway_id: this.context.options.gatewayId, at_ms: this.context.nowMs(),
      event: body.stage === 'received' ? 'ack' as const : 'start' as const, attempt: delivery?.attempt ?? 0, frame,
      ...(traceparent === undefined ? {} : { traceparent }),
    };
    this.context.options.logger.debug({ command_id: body.command_id, device_id: deviceId, stage: body.stage, ...traceLogFields(traceparent) }, 'command ACK forwarded');
    await this.#persist(`COMMAND_ACK ${body.stage}`, body.command_id, 'command_progress', data);
  }

  /**
   * A verified COMMAND_RESULT: forwarded, and only once that succeeded is the delivery finished
   * and its stream entry acked. Until then the delivery stays held (acked), so a duplicate
   * `deliver` from the control plane re-asks the device, which re-sends the result from its journal.
   */
  async onResult(deviceId: string, body: MessageBody<'COMMAND_RESULT'>, frame: string): Promise<void> {
    // A result can overtake its ACK on a lossy link; it ends the ACK wait all the same.
    const delivery = this.#markAcked(deviceId, body.command_id);
    const traceparent = body.traceparent ?? delivery?.traceparent;
    const data = {
      command_id: body.command_id, device_id: deviceId, gateway_id: this.context.options.gatewayId, at_ms: this.context.nowMs(), frame,
      ...(traceparent === undefined ? {} : { traceparent }),
    };
    this.context.options.logger.info({ command_id: body.command_id, device_id: deviceId, status: body.status, ...traceLogFields(traceparent) }, 'command result forwarded');
    const then = delivery === undefined ? undefined : async () => {
      this.#forget(delivery);
      await this.context.options.stores.bus.ack(delivery.stream, groups.gateway, [delivery.entryId]);
    };
    await this.#persist('COMMAND_RESULT', body.command_id, 'command_result', data, then);
  }

  /**
   * The device's COMMAND_ACK or COMMAND_RESULT for `commandId` has reached this gateway (verified
   * by its session) and is queued behind the session's earlier frames, whose tasks forward it
   * (onAck, onResult). The ACK wait ends now, not at that turn: the session's tasks wait on the
   * stores (presence refreshes, telemetry appends), and on a slow store or a starved process they
   * fell behind the whole retry budget (deliveryAttemptsMax ACK timeouts) while the device had
   * answered the first delivery at once, so a command the device ran was dead-lettered by its own
   * gateway (test/e2e/store-wipe.test.ts, docs/chaos.md 2026-12-05 evening). The delivery stays held
   * as after onAck: if the queued frame is never forwarded (the session closed for overload or
   * revocation), the session's close hands the delivery back, or the control plane's redelivery
   * sweep re-appends it and the device is asked again (#resend).
   */
  answerHeard(deviceId: string, commandId: string): void {
    this.#markAcked(deviceId, commandId);
  }

  #markAcked(deviceId: string, commandId: string): Delivery | undefined {
    const delivery = this.#deliveryOf(deviceId, commandId);
    if (delivery !== undefined) {
      delivery.acked = true;
      this.#cancelTimer(delivery);
    }
    return delivery;
  }

  /**
   * Appends a report (then runs its `then`), through a per-command queue so that the control
   * plane sees deliver, ack, start and result in the order the gateway got them. Normally the
   * report goes out at once and is awaited; reports that queue while one is in flight go out
   * together in one appendBatch (#drainBacklog). After a failure the queue is retried in order
   * on the scheduler with backoff (options.backoff) while the caller goes on, so the session's
   * other work continues during a store outage; later reports of the command join the queue.
   * Bounded: `reportAttemptsMax` attempts per report, reportsPerCommandMax queued per command,
   * reportBacklogsMax commands queued. What is given up is recovered by the control plane's
   * redelivery sweep, answered by the device from its journal.
   */
  async #persist<K extends 'command_progress' | 'command_result'>(what: string, commandId: string, kind: K, data: BusEntryData<K>, then?: () => Promise<void>): Promise<void> {
    let entry: Record<string, string>;
    try {
      entry = encodeBusEntry(kind, data);
    } catch (error) {
      // Refused by the bus contract: every retry would be refused the same way.
      this.context.options.logger.error({ err: error, command_id: commandId, trace_id: this.context.traceId() }, `${what} not reported: not a valid ${kind} entry; left to the redelivery sweep`);
      return;
    }
    const report: PendingReport = { what, entry, then, appended: false };
    const queued = this.#backlogs.get(commandId);
    if (queued !== undefined) {
      if (queued.reports.length < reportsPerCommandMax) queued.reports.push(report);
      else this.context.options.logger.error({ command_id: commandId, trace_id: this.context.traceId() }, `${what} dropped: too many reports queued; left to the redelivery sweep`);
      return;
    }
    if (this.#stopped || this.#backlogs.size >= this.#reportBacklogsMax) {
      // No room to keep it for a retry: one attempt.
      try {
        await this.#runReports([report]);
      } catch (error) {
        this.context.options.logger.error({ err: error, command_id: commandId, trace_id: this.context.traceId() }, `${what} not reported; left to the redelivery sweep`);
      }
      return;
    }
    const backlog: ReportBacklog = { reports: [report], failures: 0, timer: undefined };
    this.#backlogs.set(commandId, backlog);
    await this.#drainBacklog(commandId, backlog);
  }

  #retryLater(commandId: string, backlog: ReportBacklog, error: unknown): void {
    const { backoff, random, logger, reportAttemptsMax } = this.context.options;
    const what = backlog.reports.map((r) => r.what).join(', ');
    if (this.#stopped || backlog.failures >= reportAttemptsMax) {
      this.#dropBacklog(commandId);
      logger.error({ err: error, command_id: commandId, attempts: backlog.failures, trace_id: this.context.traceId() }, `${what} not reported; left to the redelivery sweep`);
      return;
    }
    logger.warn({ err: error, command_id: commandId, attempts: backlog.failures }, `${what} report failed; retrying`);
    backlog.timer = this.context.schedule(backoffDelayMs({ ...backoff, failedAttempts: backlog.failures, random }), () => {
      backlog.timer = undefined;
      void this.#drainBacklog(commandId, backlog);
    });
  }

  /** One drain at a time per queue: the caller that created it, then each retry timer. */
  async #drainBacklog(commandId: string, backlog: ReportBacklog): Promise<void> {
    if (this.#backlogs.get(commandId) !== backlog) return;
    try {
      // Reports that arrive meanwhile are pushed onto `reports` and taken by this loop, together.
      while (backlog.reports.length > 0) {
        const batch = nextReportBatch(backlog.reports);
        await this.#runReports(batch);
        backlog.reports.splice(0, batch.length);
        if (backlog.failures > 0) this.context.options.logger.info({ command_id: commandId, failures: backlog.failures }, 'report delivered after a retry');
        backlog.failures = 0;
      }
      this.#dropBacklog(commandId);
    } catch (error) {
      backlog.failures += 1;
      this.#retryLater(commandId, backlog, error);
    }
  }

  /**
   * Appends the entries of `batch` not yet on the stream in one call (one pipeline, in order),
   * then runs the last report's `then` (only the last may have one: nextReportBatch). A failure
   * leaves every entry of the call to be appended again: at least once, and in order.
   */
  async #runReports(batch: readonly PendingReport[]): Promise<void> {
    const unsent = batch.filter((report) => !report.appended);
    if (unsent.length > 0) {
      await this.context.reportEncoded(unsent.map((report) => report.entry));
      for (const report of unsent) report.appended = true;
    }
    await batch[batch.length - 1]?.then?.();
  }

  /** The session ended: everything it had in flight goes back to the control plane. */
  async onSessionClosed(sessionId: string): Promise<void> {
    const mine = [...this.#deliveries.values()].filter((delivery) => delivery.target.sessionId === sessionId);
    for (const delivery of mine) await this.#requeue(delivery, 'device session closed');
  }

  /** Reports `requeue` for a claimed or stale entry and acks it; a malformed entry is dead-lettered. */
  async handBack(stream: string, entry: BusEntry, why: string): Promise<void> {
    let command: SignedCommand;
    let traceparent: string | undefined;
    try {
      const decoded = decodeBusEntry(entry.fields);
      if (decoded.kind !== 'deliver') throw new SdcError('GATEWAY_COMMAND_REFUSED', `unexpected entry kind ${decoded.kind}`);
      command = decoded.data.command;
      traceparent = decoded.data.traceparent;
    } catch (error) {
      await this.context.options.stores.bus.deadLetter(stream, groups.gateway, entry.id, SdcError.is(error) ? error.code : 'GATEWAY_COMMAND_REFUSED');
      return;
    }
    await this.#handBackCommand(stream, entry.id, command, Math.min(commandAttemptMax, Math.max(0, entry.deliveryCount - 1)), why, traceparent);
  }

  async #handBackCommand(stream: string, entryId: string, command: SignedCommand, attempt: number, why: string, traceparent: string | undefined): Promise<void> {
    // Report first, then ack: a crash in between leaves the entry pending, and a second requeue is harmless.
    await this.#progress(command, 'requeue', attempt, why, this.context.nowMs(), traceparent);
    await this.context.options.stores.bus.ack(stream, groups.gateway, [entryId]);
  }

  async #requeue(delivery: Delivery, why: string): Promise<void> {
    this.#forget(delivery);
    await this.#handBackCommand(delivery.stream, delivery.entryId, delivery.command, delivery.attempt, why, delivery.traceparent);
  }

  #deliveryOf(deviceId: string, commandId: string): Delivery | undefined {
    const delivery = this.#deliveries.get(commandId);
    return delivery?.command.device_id === deviceId ? delivery : undefined;
  }

  #forget(delivery: Delivery): void {
    this.#cancelTimer(delivery);
    if (this.#deliveries.get(delivery.command.id) !== delivery) return;
    this.#deliveries.delete(delivery.command.id);
    const count = (this.#perDevice.get(delivery.command.device_id) ?? 1) - 1;
    if (count <= 0) this.#perDevice.delete(delivery.command.device_id);
    else this.#perDevice.set(delivery.command.device_id, count);
  }

  #cancelTimer(delivery: Delivery): void {
    if (delivery.timer !== undefined) this.context.options.scheduler.cancel(delivery.timer);
    delivery.timer = undefined;
  }

  /** `atMs`: when the event happened here (default now); `traceparent`: the command's trace, passed on. */
  async #progress(command: SignedCommand, event: 'deliver' | 'dead_letter' | 'requeue', attempt: number, detail?: string, atMs = this.context.nowMs(), traceparent?: string): Promise<void> {
    await this.context.report('command_progress', progressData(command, this.context.options.gatewayId, { event, attempt, detail, atMs, traceparent }));
  }
}

interface ProgressFacts {
  readonly event: 'deliver' | 'dead_letter' | 'requeue';
  readonly attempt: number;
  readonly atMs: number;
  readonly detail?: string | undefined;
  readonly traceparent?: string | undefined;
}

function progressData(command: SignedCommand, gatewayId: string, { event, attempt, atMs, detail, traceparent }: ProgressFacts): BusEntryData<'command_progress'> {
  return {
    command_id: command.id, device_id: command.device_id, gateway_id: gatewayId, at_ms: atMs,
    event, attempt, ...(detail === undefined ? {} : { detail: detail.slice(0, commandRouterLimits.progressDetailCharsMax) }),
    ...(traceparent === undefined ? {} : { traceparent }),
  };
}

/**
 * The reports at the head of a command's queue that go out in one call: up to and including the
 * first with a `then` (its stream ack must follow its own entry, and nothing after it may be
 * appended before that ack's turn). At most reportsPerCommandMax, the queue's own bound.
 */
function nextReportBatch(reports: readonly PendingReport[]): readonly PendingReport[] {
  const end = reports.findIndex((report) => report.then !== undefined);
  return reports.slice(0, end === -1 ? reportsPerCommandMax : Math.min(end + 1, reportsPerCommandMax));
}
