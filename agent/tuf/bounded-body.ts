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
    const chunks: Uint8Array[] = [];
    let received = 0;
    let settled = false;
    let idleTimer: TimerHandle | undefined;
    const finish = (error: SdcError | undefined): void => {
      if (settled) return;
      settled = true;
      scheduler.cancel(totalTimer);
      if (idleTimer !== undefined) scheduler.cancel(idleTimer);
      if (error === undefined) {
        resolve(concat(chunks, received));
        return;
      }
      body.destroy();
      reject(error);
    };
    const timeout = (message: string, limitMs: number) => () =>
      finish(new SdcError('TUF_DOWNLOAD_TIMEOUT', `${what}: ${message}`, { limitMs, receivedBytes: received }));
    const armIdle = (): void => {
      if (idleTimer !== undefined) scheduler.cancel(idleTimer);
      idleTimer = scheduler.schedule(limits.idleTimeoutMs, timeout(`no data for ${limits.idleTimeoutMs} ms`, limits.idleTimeoutMs));
    };
    const totalTimer = scheduler.schedule(limits.totalTimeoutMs,
      timeout(`not complete within ${limits.totalTimeoutMs} ms`, limits.totalTimeoutMs));
    armIdle();
    body.on('data', (chunk) => {
      if (settled) return;
      received += chunk.byteLength;
      if (received > limits.bytesMax) {
        finish(new SdcError('TUF_TOO_LARGE', `${what} exceeds its limit of ${limits.bytesMax} bytes`, { bytesMax: limits.bytesMax }));
        return;
      }
      chunks.push(chunk);
      armIdle();
    });
    body.on('end', () => finish(undefined));
    body.on('error', (error) => finish(new SdcError('TUF_DOWNLOAD_FAILED', `${what}: ${error.message}`)));
  });
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
