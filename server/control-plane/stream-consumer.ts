import type { Logger } from 'pino';
import { SdcError } from '../../core/errors/index.js';
import type { BusEntry, StreamBus } from '../stores/bus/bus-port.js';
import type { Scheduler } from '../../core/ports/ports.js';

/**
 * One consumer in a group, at-least-once: an entry is acked only after its handler resolved
 * (so after the handler's SQL transaction committed). A handler that throws a remote-fault
 * SdcError (malformed entry, bad signature) gets the entry dead-lettered; any other failure
 * (a store outage) is retried in place (`retryLimits`) while the later entries of its partition
 * wait, then leaves it pending to be retried through `claim`, up to deliveriesMax, after which it
 * is dead-lettered too so one poison entry cannot stall the group forever.
 *
 * Entries are processed concurrently across partitions (`partitionKey`, e.g. the device id) and in
 * stream order within one, at most `partitionsInFlightMax` handlers at a time: entries about one
 * device keep their order (ACK before RESULT), entries about different devices do not wait for
 * each other's SQL and audit writes. Each entry is acked after its handler; the acks of entries
 * finished while an XACK is in flight go together in the next one (one bus call for many entries,
 * issue 17), and an entry counts as finished only once its ack is through.
 *
 * The running loop (`start`) is a pipeline: it reads the next entries while earlier ones are still
 * being handled, up to `entriesInFlightMax` read and not yet finished, and an entry waits only for
 * the earlier entries of its own partition. (Waiting for a whole batch before the next read made
 * every entry wait for the slowest device of the batch before it, and kept the handlers, and with
 * them the SQL and audit group commits, small: the events stream backed up while the process
 * had CPU to spare.) `pollOnce`, `claimIdle` and `drain` still resolve only once their entries
 * are handled.
 */
export interface StreamConsumerOptions {
  readonly bus: StreamBus;
  readonly stream: string;
  readonly group: string;
  readonly consumer: string;
  readonly logger: Logger;
  readonly scheduler: Scheduler;
  readonly handle: (entry: BusEntry) => Promise<void>;
  /** Entries read per call. */
  readonly batchSize?: number;
  /** Pending entries idle this long are taken over (a dead consumer's, or our own failed ones). */
  readonly claimIdleMs?: number;
  readonly deliveriesMax?: number;
  /**
   * Entries with the same key are handled one after another, in stream order; undefined (e.g. a
   * malformed entry) is a partition of its own. Default: every entry in one partition (serial).
   * Several keys (an entry about several devices: telemetry_frames, decision 0023): the entry waits
   * for the earlier entries of each of them, and the later entries of each wait for it.
   */
  readonly partitionKey?: (entry: BusEntry) => string | readonly string[] | undefined;
  /** Handlers running at the same time (each on a different partition). */
  readonly partitionsInFlightMax?: number;
  /** Entries the running loop has read and not yet finished; it reads more only below this. */
  readonly entriesInFlightMax?: number;
}

const serial = (): string => '';

/** Entry ids per XACK at most (the entries in flight are fewer by default: entriesInFlightMax 256). */
const ackIdsPerCallMax = 256;

/**
 * A failed handler, ack or dead-letter is tried again here, after a pause that doubles from
 * `pauseMsFirst` up to `pauseMsMax`, `attemptsMax` attempts in all (31.75 s of pauses, about the
 * default claimIdleMs), while the later entries of its partition wait behind it. Left pending
 * for a claim instead, a failed entry was overtaken by the later entries of its device: after a
 * 1-5 s SQL outage the control plane applied a device's later `deliver` before its earlier
 * ACK/RESULT, and the command's history went back in time (issue 18.5).
 */
export const retryLimits = Object.freeze({ attemptsMax: 9, pauseMsFirst: 250, pauseMsMax: 8_000 });

/** What the handler decided about an entry: ack it, or dead-letter it for `reason`. */
type Verdict = { readonly ack: true } | { readonly ack: false; readonly reason: string };
const acked: Verdict = Object.freeze({ ack: true });

/** An entry waiting behind the running one of its partition; `settled` is told how it ended (pollOnce, claimIdle and drain wait on that). */
interface Queued {
  readonly entry: BusEntry;
  readonly settled: ((outcome: { ok: boolean } | { error: unknown }) => void) | undefined;
}

/**
 * An entry read and not finished, in the order of its partitions: it runs once the earlier entries
 * of each of its keys finished (`waitsOn` 0), and the later ones wait on it (`next`, in stream
 * order). `broken`: an earlier entry of one of its keys was left pending (its retries ran out) or
 * failed on the bus, after which the later ones are not handled: they stay pending, so a claim
 * retries the partition in order.
 */
interface Node extends Queued {
  readonly keys: readonly string[];
  waitsOn: number;
  readonly next: Node[];
  broken: { readonly error: unknown } | 'left pending' | undefined;
}

/** The ids going out in one XACK, and the one promise all their entries wait on. */
interface AckBatch {
  readonly ids: string[];
  readonly done: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

export class StreamConsumer {
  readonly #o: Required<StreamConsumerOptions>;
  #running = false;
  #loop: Promise<void> | undefined;
  /**
   * Aborted by stop(): ends the running loop's blocked read and its pause after a failed read. Both
   * are timers on the bus's or our scheduler, which may never fire again once the caller stops
   * driving it (a virtual clock no one advances, an unref'd timer in an empty event loop): stop()
   * waited for them and never resolved (audit-atomicity.test.ts's restarted control plane, b17cb33).
   */
  #stopReads: AbortController | undefined;
  #groupReady = false;
  /**
   * Per partition key with an entry unfinished, the last of them read: a new entry of the key
   * waits on it. The next one runs when it ends, and is handled only if it was acked or
   * dead-lettered (not left pending). Links and a callback, not a promise chained per entry: two
   * promises and their jobs per entry less (issue 17).
   */
  readonly #tails = new Map<string, Node>();
  /** Ids of the entries submitted and not yet finished. */
  readonly #inFlight = new Set<string>();
  /** stop() waits here until no entry is in flight. */
  readonly #idleWaiters: Array<() => void> = [];
  #slotsFree: number;
  readonly #slotWaiters: Array<() => void> = [];
  #wakeRoom: (() => void) | undefined;
  /** Set while stop() runs: retries give up and leave their entries pending. */
  #stopping = false;
  /** Cuts short the retry pauses now waiting (at most one per entry in flight). */
  readonly #pauses = new Set<() => void>();
  /** Acks waiting for the next XACK (in batches of at most ackIdsPerCallMax, oldest first), and whether an XACK is in flight. */
  readonly #acks: AckBatch[] = [];
  #acking = false;

  constructor(options: StreamConsumerOptions) {
    this.#o = { batchSize: 64, claimIdleMs: 30_000, deliveriesMax: 5, partitionKey: serial, partitionsInFlightMax: 64, entriesInFlightMax: 256, ...options };
    for (const name of ['partitionsInFlightMax', 'entriesInFlightMax'] as const) {
      if (!(Number.isSafeInteger(this.#o[name]) && this.#o[name] >= 1)) throw new SdcError('STORE_INVALID_ARGUMENT', `${name} must be a positive integer`);
    }
    this.#slotsFree = this.#o.partitionsInFlightMax;
  }

  /** Entries read and not yet finished (acked, dead-lettered or left pending). */
  get entriesInFlight(): number {
    return this.#inFlight.size;
  }

  async ensureGroup(): Promise<void> {
    if (this.#groupReady) return;
    await this.#o.bus.ensureGroup(this.#o.stream, this.#o.group, '0');
    this.#groupReady = true;
  }

  /**
   * Runs a read or claim on the group. STORE_NO_GROUP means the store lost the group (Redis
   * restarted without persistence, FLUSHALL): the next ensureGroup re-creates it from '0', so the
   * entries the gateways appended since are read, instead of every later read failing the same way.
   */
  async #onGroup<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (SdcError.is(error, 'STORE_NO_GROUP')) {
        this.#groupReady = false;
        this.#o.logger.warn({ stream: this.#o.stream, group: this.#o.group }, 'consumer group vanished (store wiped?); re-creating it');
      }
      throw error;
    }
  }

  /** Takes over idle pending entries and processes them; returns how many were handled. */
  async claimIdle(minIdleMs: number = this.#o.claimIdleMs): Promise<number> {
    await this.ensureGroup();
    const entries = await this.#claim(minIdleMs);
    await this.#processBatch(entries);
    return entries.length;
  }

  /** Reads and processes one batch of new entries; returns how many. */
  async pollOnce(blockMs = 0): Promise<number> {
    await this.ensureGroup();
    const entries = await this.#onGroup(() => this.#o.bus.readGroup(this.#o.stream, this.#o.group, this.#o.consumer, { count: this.#o.batchSize, blockMs }));
    await this.#processBatch(entries);
    return entries.length;
  }

  /** Drains: claims idle entries, then reads until nothing new arrives (bounded by `batchesMax`). */
  async drain(batchesMax = 1_000): Promise<number> {
    let total = await this.claimIdle();
    for (let batch = 0; batch < batchesMax; batch += 1) {
      const n = await this.pollOnce(0);
      total += n;
      if (n === 0) break;
    }
    return total;
  }

  /**
   * Runs until `stop`: reads (blocking up to `blockMs`) while at most `entriesInFlightMax` entries
   * are unfinished, hands each to its partition, and claims idle entries every `claimEveryPolls` reads.
   */
  start(options: { blockMs: number; claimEveryPolls?: number }): void {
    if (this.#running) return;
    this.#running = true;
    const stopReads = new AbortController();
    this.#stopReads = stopReads;
    const claimEvery = options.claimEveryPolls ?? 30;
    this.#loop = (async () => {
      let polls = 0;
      while (this.#running) {
        try {
          await this.ensureGroup();
          await this.#roomForMore();
          if (!this.#running) break;
          const room = this.#o.entriesInFlightMax - this.#inFlight.size;
          if (polls % claimEvery === 0) this.#submitAll(await this.#claim(this.#o.claimIdleMs, room));
          polls += 1;
          const count = Math.min(this.#o.batchSize, this.#o.entriesInFlightMax - this.#inFlight.size);
          if (count < 1) continue;
          this.#submitAll(await this.#onGroup(() => this.#o.bus.readGroup(this.#o.stream, this.#o.group, this.#o.consumer, { count, blockMs: options.blockMs, signal: stopReads.signal })));
        } catch (error) {
          // The bus itself failed (e.g. Redis down): log and keep going after the next block.
          this.#o.logger.error({ err: error, stream: this.#o.stream }, 'stream consumer read failed');
          if (!this.#running) break;
          await this.#pause(Math.min(options.blockMs, 1_000));
        }
      }
    })();
  }

  /** Stops reading and resolves once the entries already read are finished. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#stopping = true;
    this.#stopReads?.abort();
    this.#stopReads = undefined;
    this.#wakeRoom?.();
    for (const cut of [...this.#pauses]) cut();
    try {
      await this.#loop;
      this.#loop = undefined;
      while (this.#inFlight.size > 0) await new Promise<void>((resolve) => { this.#idleWaiters.push(resolve); });
    } finally {
      this.#stopping = false;
    }
  }

  /** Resolves when every entry of the batch was handled (acked, dead-lettered or left pending). */
  async #processBatch(entries: readonly BusEntry[]): Promise<void> {
    // A bus failure (ack/dead-letter) stops its partition (the rest stays pending) and is
    // rethrown once the others are done.
    const settled = await Promise.allSettled(entries.map((entry) => new Promise<boolean>((resolve, reject) => {
      this.#submit(entry, (outcome) => ('error' in outcome ? reject(outcome.error) : resolve(outcome.ok)));
    })));
    const failed = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  /** Idle pending entries, without those this consumer is handling right now (they may be idle that long in a slow store). */
  async #claim(minIdleMs: number, countMax = this.#o.batchSize): Promise<BusEntry[]> {
    const count = Math.min(this.#o.batchSize, countMax);
    if (count < 1) return [];
    const entries = await this.#onGroup(() => this.#o.bus.claim(this.#o.stream, this.#o.group, this.#o.consumer, { minIdleMs, count }));
    return entries.filter((entry) => !this.#inFlight.has(entry.id));
  }

  #submitAll(entries: readonly BusEntry[]): void {
    for (const entry of entries) this.#submit(entry, undefined);
  }

  /**
   * Queues the entry behind the earlier ones of its partition, or runs it now when there are none;
   * `settled` (if any) is told once it is handled. If an earlier entry of the partition was left
   * pending (its retries ran out) or failed on the bus, this one is not handled either: it stays
   * pending, so a claim retries the partition in order (and `settled` gets the error, in the bus case).
   */
  #submit(entry: BusEntry, settled: Queued['settled']): void {
    // Unkeyed entries (malformed) are partitions of their own: the handler refuses them, nothing waits for them.
    const key = this.#keyOf(entry);
    const keys = key === undefined || key.length === 0 ? [`\u0000${entry.id}`] : typeof key === 'string' ? [key] : key;
    this.#inFlight.add(entry.id);
    const node: Node = { entry, settled, keys, waitsOn: 0, next: [], broken: undefined };
    for (const each of keys) {
      const tail = this.#tails.get(each);
      // Two keys with the same last entry: one wait on it, not two; a key named twice: no wait on itself.
      if (tail !== undefined && tail !== node && tail.next[tail.next.length - 1] !== node) {
        tail.next.push(node);
        node.waitsOn += 1;
      }
      this.#tails.set(each, node);
    }
    if (node.waitsOn === 0) void this.#run(node);
  }

  /**
   * Handles the entry, then the later entries it was the last wait of: the first of them in this
   * call (one key: the partition's next entry, as a queue would), the others in calls of their own,
   * so entries of different partitions still run side by side.
   */
  async #run(first: Node): Promise<void> {
    for (let node: Node | undefined = first; node !== undefined;) {
      const { entry, settled } = node;
      let broken = node.broken;
      let outcome: { ok: boolean } | { error: unknown };
      if (broken === undefined) {
        try {
          outcome = { ok: await this.#process(entry) };
        } catch (error) {
          outcome = { error };
        }
        if ('error' in outcome) broken = { error: outcome.error };
        else if (!outcome.ok) broken = 'left pending';
      } else if (broken === 'left pending') {
        this.#o.logger.warn({ stream: this.#o.stream, entryId: entry.id }, 'bus entry left pending behind an earlier entry of its partition');
        outcome = { ok: false };
      } else {
        outcome = { error: broken.error };
      }
      // The bus failed on ack or dead-letter: the entry (and the rest of its partition read so far) stays pending for a claim.
      if ('error' in outcome && settled === undefined) this.#o.logger.error({ err: outcome.error, stream: this.#o.stream, entryId: entry.id }, 'bus entry left pending');
      for (const key of node.keys) if (this.#tails.get(key) === node) this.#tails.delete(key);
      this.#finished(entry);
      settled?.(outcome);
      let continued: Node | undefined;
      for (const later of node.next) {
        if (broken !== undefined && later.broken === undefined) later.broken = broken;
        later.waitsOn -= 1;
        if (later.waitsOn > 0) continue;
        if (continued === undefined) continued = later;
        else void this.#run(later);
      }
      node = continued;
    }
  }

  /** The entry is done (handled, or left pending): room for the loop to read more, and stop() may be waiting for the last. */
  #finished(entry: BusEntry): void {
    this.#inFlight.delete(entry.id);
    const wake = this.#wakeRoom;
    this.#wakeRoom = undefined;
    wake?.();
    if (this.#inFlight.size === 0) for (const idle of this.#idleWaiters.splice(0)) idle();
  }

  /** Resolves once fewer than entriesInFlightMax entries are unfinished (or the loop is stopping). */
  async #roomForMore(): Promise<void> {
    while (this.#running && this.#inFlight.size >= this.#o.entriesInFlightMax) {
      await new Promise<void>((resolve) => { this.#wakeRoom = resolve; });
    }
  }

  #keyOf(entry: BusEntry): string | readonly string[] | undefined {
    try {
      return this.#o.partitionKey(entry);
    } catch {
      return undefined; // the handler will refuse the entry; it need not wait for anything
    }
  }

  /**
   * Handles the entry, then acks or dead-letters it, retrying a failure in place (retryLimits; a
   * handler that succeeded is not run again for a failed ack). Resolves true when the entry is
   * finished, false when the handler still fails after the last attempt (left pending for a
   * claim); rejects when the ack or dead-letter still fails (the bus is down).
   *
   * The handler runs in one of the partitionsInFlightMax handler slots, not held during retry
   * pauses: a failure worth retrying (a store outage) is thrown on to the retry below, any other
   * gives the verdict. The slot, the handler and the verdict are in this function, not in an async
   * function of their own: each async layer and its await was two promises per entry (the process's
   * AsyncLocalStorage hooks give every await a promise of its own), four of the telemetry
   * consumer's nine (issue 17).
   */
  async #process(entry: BusEntry): Promise<boolean> {
    const { stream, logger } = this.#o;
    let verdict: Verdict | undefined;
    for (let attempt = 1; ; attempt += 1) {
      try {
        if (verdict === undefined) {
          if (this.#slotsFree > 0) this.#slotsFree -= 1;
          else await new Promise<void>((resolve) => { this.#slotWaiters.push(resolve); });
          try {
            await this.#o.handle(entry);
            verdict = acked;
          } catch (error) {
            const remote = SdcError.is(error) && error.fault === 'remote';
            if (!remote && entry.deliveryCount < this.#o.deliveriesMax) throw error;
            const reason = SdcError.is(error) ? `${error.code}: ${error.message}` : `after ${entry.deliveryCount} deliveries: ${(error as Error).message}`;
            verdict = { ack: false, reason: reason.slice(0, 512) };
          } finally {
            // The slot passes straight to the longest waiter; the waiters are bounded by the entries in flight.
            const next = this.#slotWaiters.shift();
            if (next !== undefined) next();
            else this.#slotsFree += 1;
          }
        }
        if (verdict.ack) await this.#ack(entry.id);
        else await this.#deadLetter(entry, verdict.reason);
        return true;
      } catch (error) {
        const pauseMs = Math.min(retryLimits.pauseMsMax, retryLimits.pauseMsFirst * 2 ** (attempt - 1));
        if (attempt < retryLimits.attemptsMax && !this.#stopping && await this.#pause(pauseMs)) {
          logger.warn({ err: error, stream, entryId: entry.id, attempt }, 'bus entry failed; retrying it before the rest of its partition');
          continue;
        }
        if (verdict !== undefined) throw error;
        logger.error({ err: error, stream, entryId: entry.id, attempt }, 'bus entry failed; left pending for retry, with the rest of its partition');
        return false;
      }
    }
  }

  async #deadLetter(entry: BusEntry, reason: string): Promise<void> {
    const { bus, stream, group, logger } = this.#o;
    logger.warn({ stream, entryId: entry.id, reason }, 'bus entry dead-lettered');
    await bus.deadLetter(stream, group, entry.id, reason);
  }

  /**
   * Acks the entry together with the others finished meanwhile: the first ack goes at once (after
   * the entries finished in the same turn joined it), those that come while it is in flight go in
   * the next XACK. The entries of one XACK wait on one promise (not one each: issue 17); a failed
   * XACK fails each of its entries, which retry their own ack (#process).
   */
  #ack(id: string): Promise<void> {
    let batch = this.#acks[this.#acks.length - 1];
    if (batch === undefined || batch.ids.length >= ackIdsPerCallMax) {
      let resolve!: () => void;
      let reject!: (error: unknown) => void;
      const done = new Promise<void>((onResolve, onReject) => { resolve = onResolve; reject = onReject; });
      // Nobody may wait on a batch whose XACK failed and whose entries stopped retrying (stop()): not an unhandled rejection.
      done.catch(() => undefined);
      batch = { ids: [], done, resolve, reject };
      this.#acks.push(batch);
    }
    batch.ids.push(id);
    if (!this.#acking) {
      this.#acking = true;
      void this.#flushAcks();
    }
    return batch.done;
  }

  async #flushAcks(): Promise<void> {
    const { bus, stream, group } = this.#o;
    try {
      await Promise.resolve();
      for (let batch = this.#acks.shift(); batch !== undefined; batch = this.#acks.shift()) {
        try {
          await bus.ack(stream, group, batch.ids);
          batch.resolve();
        } catch (error) {
          batch.reject(error);
        }
      }
    } finally {
      this.#acking = false;
    }
  }

  /** Waits `delayMs` on the scheduler; false when stop() cut the wait short. */
  #pause(delayMs: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const end = (elapsed: boolean): void => {
        this.#pauses.delete(cut);
        resolve(elapsed);
      };
      const timer = this.#o.scheduler.schedule(delayMs, () => end(true));
      const cut = (): void => {
        this.#o.scheduler.cancel(timer);
        end(false);
      };
      this.#pauses.add(cut);
    });
  }
}
