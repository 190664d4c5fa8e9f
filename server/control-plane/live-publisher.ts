import type { Logger } from 'pino';
import type { Clock, Scheduler, TimerHandle } from '../../core/ports/ports.js';
import { liveChannel } from '../bus-contract/streams.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import type { LiveEvent } from './context.js';

/**
 * Why a live stream's clients must read their state again: a change was not published (this
 * process could not reach the channel), or a process's subscription was lost for a while.
 */
export type ResyncReason = 'publish_lost' | 'subscription_restored';

/** The `resync` event: the stream may have missed changes before it; read the state again (REST). */
export interface ResyncEvent {
  readonly type: 'resync';
  readonly reason: ResyncReason;
  readonly at_ms: number;
}

export const livePublisherLimits = Object.freeze({
  /** First pause before the resync notice is tried again after a failed publish. */
  retryFirstMs: 500,
  /** Longest pause between tries: a store outage of hours costs one publish per 10 s. */
  retryMaxMs: 10_000,
});

export interface LivePublisherOptions {
  readonly kv: KeyValueStore;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
}

/**
 * Publishes operator-visible changes on the live channel. Pub/sub is at most once and a publish
 * fails while the store is unreachable, so a change can be lost; a stream that silently missed
 * a command's terminal state showed it `executing` for ever (the chaos `redis-cut` finding,
 * docs/chaos.md). So a lost publish is never silent to the clients: from then on this process
 * owes a `resync` event, sent before anything else it publishes and retried on the scheduler
 * (backoff up to retryMaxMs) until the channel takes it; every stream on every process relays it
 * and its clients read their state again. One flag, not a queue: old changes are not replayed
 * (they could arrive after newer ones), the re-read replaces them.
 */
export class LivePublisher {
  readonly #o: LivePublisherOptions;
  /** A change was lost and no resync notice has gone out since. */
  #resyncOwed = false;
  #retryTimer: TimerHandle | undefined;
  #noticeInFlight: Promise<void> | undefined;
  #failedTries = 0;
  #stopped = false;
  /** Publishes failed and resync notices sent, for tests and logs. */
  readonly counts = { publishesLost: 0, resyncsSent: 0 };

  constructor(options: LivePublisherOptions) {
    this.#o = options;
  }

  get resyncOwed(): boolean {
    return this.#resyncOwed;
  }

  /** Fire and forget: never throws, never waits for the store. */
  publish(event: LiveEvent): void {
    void this.#publishInOrder(JSON.stringify(event));
  }

  /** Stops the retries (the process is shutting down). */
  stop(): void {
    this.#stopped = true;
    if (this.#retryTimer !== undefined) this.#o.scheduler.cancel(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  async #publishInOrder(message: string): Promise<void> {
    // Both go out on one connection, so the notice reaches the subscribers before the change.
    // One notice in flight covers every change published after it (they queue behind it).
    const notice = this.#resyncOwed && this.#noticeInFlight === undefined ? this.#sendResync() : undefined;
    try {
      await this.#o.kv.publish(liveChannel, message);
    } catch (error) {
      this.#lost(error);
    }
    await notice;
  }

  #sendResync(): Promise<void> {
    const sending = this.#trySendResync().finally(() => { this.#noticeInFlight = undefined; });
    this.#noticeInFlight = sending;
    return sending;
  }

  async #trySendResync(): Promise<void> {
    const lossesBefore = this.counts.publishesLost;
    const event: ResyncEvent = { type: 'resync', reason: 'publish_lost', at_ms: this.#o.clock.nowMs() };
    try {
      await this.#o.kv.publish(liveChannel, JSON.stringify(event));
    } catch (error) {
      this.#lost(error);
      return;
    }
    this.counts.resyncsSent += 1;
    // A change lost while the notice was in flight may postdate the clients' re-read: still owed.
    if (this.counts.publishesLost !== lossesBefore) {
      this.#scheduleRetry();
      return;
    }
    this.#o.logger.info({ failed_tries: this.#failedTries }, 'live resync notice published after lost changes');
    this.#resyncOwed = false;
    this.#failedTries = 0;
    if (this.#retryTimer !== undefined) this.#o.scheduler.cancel(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  #lost(error: unknown): void {
    this.counts.publishesLost += 1;
    if (!this.#resyncOwed) this.#o.logger.warn({ err: error }, 'live publish failed; a resync notice will follow when the channel is back');
    this.#resyncOwed = true;
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#stopped || this.#retryTimer !== undefined) return;
    this.#failedTries += 1;
    const delayMs = Math.min(livePublisherLimits.retryMaxMs, livePublisherLimits.retryFirstMs * 2 ** Math.min(this.#failedTries - 1, 20));
    this.#retryTimer = this.#o.scheduler.schedule(delayMs, () => {
      this.#retryTimer = undefined;
      if (this.#resyncOwed && !this.#stopped && this.#noticeInFlight === undefined) void this.#sendResync();
    });
  }
}
