import type { SqlExecutor } from '../stores/sql/sql-port.js';

/** A device finished the command with `deviceSeq` at `atMs` (its signed result arrived). */
export interface CommandFinished {
  readonly deviceId: string;
  readonly deviceSeq: number;
  readonly atMs: number;
}

/** Devices written by one statement; the rest wait for the next one. */
export const commandFinishedBatchMax = 64;

interface Pending {
  deviceSeq: number;
  atMs: number;
  readonly waiters: Array<{ resolve(): void; reject(error: unknown): void }>;
}

/**
 * Moves each device's `last_command_seq` up to a finished command's seq and `last_seen_at` up to
 * its time, never down. The results the events consumer handles while a write is in flight go
 * into the next write together: one UPDATE for up to commandFinishedBatchMax devices, where each
 * result cost one UPDATE of its own (about 1.1 SQL round trips per command in `sdc bench
 * roundtrip`, issue 17). Two results of one device in a batch keep the higher of each value, as
 * two statements would. A caller's promise settles when the statement holding its result has
 * run (or failed), so it may still act only after its result is recorded.
 */
export class CommandFinishedWrites {
  readonly #db: SqlExecutor;
  #next = new Map<string, Pending>();
  #writing = false;

  constructor(db: SqlExecutor) {
    this.#db = db;
  }

  record(finished: CommandFinished): Promise<void> {
    return new Promise((resolve, reject) => {
      const pending = this.#next.get(finished.deviceId);
      if (pending === undefined) {
        this.#next.set(finished.deviceId, { deviceSeq: finished.deviceSeq, atMs: finished.atMs, waiters: [{ resolve, reject }] });
      } else {
        pending.deviceSeq = Math.max(pending.deviceSeq, finished.deviceSeq);
        pending.atMs = Math.max(pending.atMs, finished.atMs);
        pending.waiters.push({ resolve, reject });
      }
      if (!this.#writing) void this.#drain();
    });
  }

  /** One statement at a time, each taking up to commandFinishedBatchMax devices, until none wait. */
  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#next.size > 0) {
        const batch = [...this.#next].slice(0, commandFinishedBatchMax);
        for (const [deviceId] of batch) this.#next.delete(deviceId);
        try {
          await this.#write(batch);
          for (const [, pending] of batch) for (const waiter of pending.waiters) waiter.resolve();
        } catch (error) {
          for (const [, pending] of batch) for (const waiter of pending.waiters) waiter.reject(error);
        }
      }
    } finally {
      this.#writing = false;
    }
  }

  #write(batch: ReadonlyArray<readonly [string, Pending]>): Promise<unknown> {
    if (batch.length === 1) {
      const [deviceId, { deviceSeq, atMs }] = batch[0]!;
      return this.#db.execute(
        `UPDATE devices SET
           last_command_seq = CASE WHEN last_command_seq IS NULL OR last_command_seq < ? THEN ? ELSE last_command_seq END,
           last_seen_at = CASE WHEN last_seen_at IS NULL OR last_seen_at < ? THEN ? ELSE last_seen_at END
         WHERE id = ?`,
        [deviceSeq, deviceSeq, atMs, atMs, deviceId],
      );
    }
    // Rows locked in primary-key order whatever the batch's order (InnoDB takes them as it scans the index).
    const seqCases = batch.map(() => 'WHEN ? THEN CASE WHEN last_command_seq IS NULL OR last_command_seq < ? THEN ? ELSE last_command_seq END').join(' ');
    const seenCases = batch.map(() => 'WHEN ? THEN CASE WHEN last_seen_at IS NULL OR last_seen_at < ? THEN ? ELSE last_seen_at END').join(' ');
    return this.#db.execute(
      `UPDATE devices SET
         last_command_seq = CASE id ${seqCases} ELSE last_command_seq END,
         last_seen_at = CASE id ${seenCases} ELSE last_seen_at END
       WHERE id IN (${batch.map(() => '?').join(', ')})`,
      [
        ...batch.flatMap(([deviceId, { deviceSeq }]) => [deviceId, deviceSeq, deviceSeq]),
        ...batch.flatMap(([deviceId, { atMs }]) => [deviceId, atMs, atMs]),
        ...batch.map(([deviceId]) => deviceId),
      ],
    );
  }
}
