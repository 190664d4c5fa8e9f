import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Clock, Scheduler, TimerHandle } from '../../core/ports/ports.js';
import type { AuditAnchor } from '../../core/protocol/audit-chain.js';
import { formatAuditAnchorLine } from '../../core/protocol/audit-anchors.js';

/**
 * Keeps audit heads automatically (docs/audit.md, "Anchors kept automatically"): every
 * `intervalMs` the chained head is read and, when it moved since the last line written, appended
 * to the anchor file as `{seq, hash, at}`. `sdc audit verify --anchors FILE` then checks the chain
 * against every line, so a removed tail or a history rewritten before any anchored head is found
 * without an operator having copied a head by hand. The file is only worth something where the
 * database's writer cannot rewrite it too (another volume, shipped off the host); the writer
 * cannot ensure that, the deployment can.
 */

/** Where the lines go: the node file below, or an array in tests. */
export interface AuditAnchorSink {
  /** Appends one line and returns once it is durable (fsync'd). */
  append(line: string): Promise<void>;
}

/**
 * The anchor file: opened for appending on each line (so a file moved away by log rotation is
 * created afresh, never written through a stale descriptor), mode 0600 (it says when the log
 * changed), the line fsync'd before the next; a newly created file's directory entry fsync'd once.
 */
export function auditAnchorFile(path: string): AuditAnchorSink {
  let directorySynced = false;
  return {
    async append(line) {
      const handle = await open(path, 'a', 0o600);
      try {
        // A file made before (by hand, by another umask) gets the mode too: the anchors are not for everyone.
        await handle.chmod(0o600);
        await handle.write(line);
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (!directorySynced) {
        const directory = await open(dirname(path), 'r');
        try {
          await directory.sync();
        } finally {
          await directory.close();
        }
        directorySynced = true;
      }
    },
  };
}

export interface AuditAnchorWriterOptions {
  /** The chained head now (SqlAuditStore.head), undefined while the log is empty. */
  readonly head: () => Promise<AuditAnchor | undefined>;
  readonly sink: AuditAnchorSink;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly intervalMs: number;
  /** A failed read or write: logged by the caller; the next interval tries again. */
  readonly onError: (error: unknown) => void;
}

/** Bounds of `intervalMs`: below a second the file grows for no more assurance; a day is the longest gap worth having. */
export const auditAnchorIntervalMsBounds = { min: 1_000, max: 86_400_000, fallback: 60_000 } as const;

export class AuditAnchorWriter {
  readonly #options: AuditAnchorWriterOptions;
  #timer: TimerHandle | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  /** The last head written, so an idle log adds no line (the file grows with the log, not with time). */
  #lastWritten: AuditAnchor | undefined;

  constructor(options: AuditAnchorWriterOptions) {
    const { min, max } = auditAnchorIntervalMsBounds;
    if (!Number.isSafeInteger(options.intervalMs) || options.intervalMs < min || options.intervalMs > max) {
      throw new RangeError(`intervalMs must be a whole number from ${min} to ${max}`);
    }
    this.#options = options;
  }

  /**
   * Writes the head now (a failure here is thrown: a path that cannot be written is a start-up
   * mistake), then every interval, the next one scheduled after this one finished (never two at once).
   */
  async start(): Promise<void> {
    await this.#write();
    if (!this.#stopped) this.#timer = this.#options.scheduler.schedule(this.#options.intervalMs, () => this.#tick());
  }

  /** Stops the timer, waits for a write in progress, and writes the head once more: a clean stop leaves the last head anchored. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#options.scheduler.cancel(this.#timer);
    this.#timer = undefined;
    await this.#running;
    await this.writeIfMoved();
  }

  /** One anchor line when the head moved since the last; returns whether one was written. A failure goes to onError. */
  async writeIfMoved(): Promise<boolean> {
    try {
      return await this.#write();
    } catch (error) {
      this.#options.onError(error);
      return false;
    }
  }

  async #write(): Promise<boolean> {
    const head = await this.#options.head();
    if (head === undefined || (this.#lastWritten?.seq === head.seq && this.#lastWritten.hash === head.hash)) return false;
    await this.#options.sink.append(formatAuditAnchorLine(head, this.#options.clock.nowMs()));
    this.#lastWritten = { seq: head.seq, hash: head.hash };
    return true;
  }

  #tick(): void {
    this.#timer = undefined;
    this.#running = this.writeIfMoved().then(() => {
      this.#running = undefined;
      if (!this.#stopped) this.#timer = this.#options.scheduler.schedule(this.#options.intervalMs, () => this.#tick());
    });
  }
}
