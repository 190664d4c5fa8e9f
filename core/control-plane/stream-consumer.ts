import type { Logger } from 'pino';
import { SdcError } from '../errors/index.js';
import type { BusEntry, StreamBus } from '../stores/bus/bus-port.js';
import type { Scheduler } from '../protocol/ports.js';

/**
 * One consumer in a group, at-least-once: an entry is acked only after its handler resolved
 * (so after the handler's SQL transaction committed). A handler that throws a remote-fault
 * SdcError (malformed entry, bad signature) gets the entry dead-lettered; any other failure
 * (a store outage) leaves it pending to be retried through `claim`, up to deliveriesMax, after
 * which it is dead-lettered too so one poison entry cannot stall the group forever.
 *
 * A batch is processed concurrently across partitions (`partitionKey`, e.g. the device id) and in
 * stream order within one, at most `partitionsInFlightMax` partitions at a time: entries about
 * one device keep their order (ACK before RESULT), entries about different devices do not wait
 * for each other's SQL and audit writes. Each entry is acked on its own, after its handler.
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
   */
  readonly partitionKey?: (entry: BusEntry) => string | undefined;
  /** Partitions of one batch handled at the same time. */
  readonly partitionsInFlightMax?: number;
}

const serial = (): string => '';

export class StreamConsumer {
  readonly #o: Required<StreamConsumerOptions>;
  #running = false;
  #loop: Promise<void> | undefined;
  #groupReady = false;

  constructor(options: StreamConsumerOptions) {
    this.#o = { batchSize: 64, claimIdleMs: 30_000, deliveriesMax: 5, partitionKey: serial, partitionsInFlightMax: 16, ...options };
    if (!(Number.isSafeInteger(this.#o.partitionsInFlightMax) && this.#o.partitionsInFlightMax >= 1)) {
      throw new SdcError('STORE_INVALID_ARGUMENT', 'partitionsInFlightMax must be a positive integer');
    }
  }

  async ensureGroup(): Promise<void> {
    if (this.#groupReady) return;
    await this.#o.bus.ensureGroup(this.#o.stream, this.#o.group, '0');
    this.#groupReady = true;
  }

  /** Takes over idle pending entries and processes them; returns how many were handled. */
  async claimIdle(minIdleMs: number = this.#o.claimIdleMs): Promise<number> {
    await this.ensureGroup();
    const entries = await this.#o.bus.claim(this.#o.stream, this.#o.group, this.#o.consumer, { minIdleMs, count: this.#o.batchSize });
    await this.#processBatch(entries);
    return entries.length;
  }

  /** Reads and processes one batch of new entries; returns how many. */
  async pollOnce(blockMs = 0): Promise<number> {
    await this.ensureGroup();
    const entries = await this.#o.bus.readGroup(this.#o.stream, this.#o.group, this.#o.consumer, { count: this.#o.batchSize, blockMs });
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

  /** Runs until `stop`: a blocking read loop, with a claim of idle entries every `claimEveryPolls` reads. */
  start(options: { blockMs: number; claimEveryPolls?: number }): void {
    if (this.#running) return;
    this.#running = true;
    const claimEvery = options.claimEveryPolls ?? 30;
    this.#loop = (async () => {
      let polls = 0;
      while (this.#running) {
        try {
          if (polls % claimEvery === 0) await this.claimIdle();
          polls += 1;
          await this.pollOnce(options.blockMs);
        } catch (error) {
          // The bus itself failed (e.g. Redis down): log and keep going after the next block.
          this.#o.logger.error({ err: error, stream: this.#o.stream }, 'stream consumer read failed');
          if (!this.#running) break;
          await new Promise<void>((resolve) => { this.#o.scheduler.schedule(Math.min(options.blockMs, 1_000), resolve); });
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
    this.#loop = undefined;
  }

  /** Resolves when every entry of the batch was handled (acked, dead-lettered or left pending). */
  async #processBatch(entries: readonly BusEntry[]): Promise<void> {
    const partitions = new Map<string, BusEntry[]>();
    const unkeyed: BusEntry[][] = [];
    for (const entry of entries) {
      const key = this.#keyOf(entry);
      if (key === undefined) {
        unkeyed.push([entry]);
        continue;
      }
      const partition = partitions.get(key);
      if (partition === undefined) partitions.set(key, [entry]);
      else partition.push(entry);
    }
    const queue = [...partitions.values(), ...unkeyed];
    let next = 0;
    // Workers pull whole partitions, so one partition never runs on two workers at once.
    const worker = async (): Promise<void> => {
      for (let partition = queue[next++]; partition !== undefined; partition = queue[next++]) {
        for (const entry of partition) await this.#process(entry);
      }
    };
    const workers = Math.min(this.#o.partitionsInFlightMax, queue.length);
    // All workers finish before the next read, so a later batch never overtakes an entry of this
    // one. A bus failure (ack/dead-letter) stops its partition (the rest stays pending) and is
    // rethrown once the others are done.
    const settled = await Promise.allSettled(Array.from({ length: workers }, worker));
    const failed = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  #keyOf(entry: BusEntry): string | undefined {
    try {
      return this.#o.partitionKey(entry);
    } catch {
      return undefined; // the handler will refuse the entry; it need not wait for anything
    }
  }

  async #process(entry: BusEntry): Promise<void> {
    const { bus, stream, group, logger } = this.#o;
    try {
      await this.#o.handle(entry);
      await bus.ack(stream, group, [entry.id]);
    } catch (error) {
      const remote = SdcError.is(error) && error.fault === 'remote';
      if (remote || entry.deliveryCount >= this.#o.deliveriesMax) {
        const reason = SdcError.is(error) ? `${error.code}: ${error.message}` : `after ${entry.deliveryCount} deliveries: ${(error as Error).message}`;
        logger.warn({ stream, entryId: entry.id, reason }, 'bus entry dead-lettered');
        await bus.deadLetter(stream, group, entry.id, reason.slice(0, 512));
      } else {
        logger.error({ err: error, stream, entryId: entry.id }, 'bus entry failed; left pending for retry');
      }
    }
  }
}
