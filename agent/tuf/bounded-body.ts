import { SdcError } from '../../core/errors/index.js';
import type { Scheduler, TimerHandle } from '../../core/ports/ports.js';

/**
 * Reads one response body under the two limits that stop TUF's endless-data and slow-retrieval
 * attacks: at most `bytesMax` bytes (TUF_TOO_LARGE the moment one more arrives, so an endless
 * stream costs at most bytesMax of memory), and a deadline (TUF_DOWNLOAD_TIMEOUT) both for
 * silence (`idleTimeoutMs` without a byte) and for the whole body (`totalTimeoutMs`, so a
 * repository trickling one byte just inside the idle limit still cannot hold the client forever).
 * Timers come from the Scheduler port: tests run the attack on virtual time, with no real waiting.
 */
export interface BodySource {
  on(event: 'data', listener: (chunk: Uint8Array) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  /** Stops the transfer: called on every refusal, so the server's connection is not left open. */
  destroy(): void;
}

export interface BodyLimits {
  readonly bytesMax: number;
  readonly idleTimeoutMs: number;
  readonly totalTimeoutMs: number;
}

export function readBoundedBody(body: BodySource, limits: BodyLimits, scheduler: Scheduler, what: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    new BoundedRead({ body, limits, scheduler, what, resolve, reject }).start();
  });
}

/** One read: the chunks so far and the two timers, settled exactly once. */
class BoundedRead {
  private readonly chunks: Uint8Array[] = [];
  private received = 0;
  private settled = false;
  private idleTimer: TimerHandle | undefined;
  private totalTimer: TimerHandle | undefined;

  constructor(private readonly read: {
    body: BodySource; limits: BodyLimits; scheduler: Scheduler; what: string;
    resolve: (bytes: Uint8Array) => void; reject: (error: SdcError) => void;
  }) {}

  start(): void {
    const { body, limits, scheduler } = this.read;
    this.totalTimer = scheduler.schedule(limits.totalTimeoutMs, () => this.timeout(`not complete within ${limits.totalTimeoutMs} ms`, limits.totalTimeoutMs));
    this.armIdle();
    body.on('data', (chunk) => this.onData(chunk));
    body.on('end', () => this.finish(undefined));
    body.on('error', (error) => this.finish(new SdcError('TUF_DOWNLOAD_FAILED', `${this.read.what}: ${error.message}`)));
  }

  private onData(chunk: Uint8Array): void {
    if (this.settled) return;
    this.received += chunk.byteLength;
    const { bytesMax } = this.read.limits;
    if (this.received > bytesMax) {
      this.finish(new SdcError('TUF_TOO_LARGE', `${this.read.what} exceeds its limit of ${bytesMax} bytes`, { bytesMax }));
      return;
    }
    this.chunks.push(chunk);
    this.armIdle();
  }

  private armIdle(): void {
    const { scheduler, limits } = this.read;
    if (this.idleTimer !== undefined) scheduler.cancel(this.idleTimer);
    this.idleTimer = scheduler.schedule(limits.idleTimeoutMs, () => this.timeout(`no data for ${limits.idleTimeoutMs} ms`, limits.idleTimeoutMs));
  }

  private timeout(message: string, limitMs: number): void {
    this.finish(new SdcError('TUF_DOWNLOAD_TIMEOUT', `${this.read.what}: ${message}`, { limitMs, receivedBytes: this.received }));
  }

  private finish(error: SdcError | undefined): void {
    if (this.settled) return;
    this.settled = true;
    const { scheduler, body } = this.read;
    if (this.totalTimer !== undefined) scheduler.cancel(this.totalTimer);
    if (this.idleTimer !== undefined) scheduler.cancel(this.idleTimer);
    if (error === undefined) {
      this.read.resolve(concat(this.chunks, this.received));
      return;
    }
    body.destroy();
    this.read.reject(error);
  }
}

function concat(chunks: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
