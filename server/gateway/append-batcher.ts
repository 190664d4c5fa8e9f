import { SdcError } from '../../core/errors/index.js';
import type { StreamBus } from '../stores/bus/bus-port.js';

export interface AppendBatcherOptions {
  readonly bus: StreamBus;
  readonly stream: string;
  readonly maxLen: number;
  /** Entries per appendBatch (one pipeline); 1 appends one by one, as without a batcher. */
  readonly entriesMax: number;
  /** Entries waiting for the next flush, across all sessions: beyond it append() refuses (STORE_LIMIT). */
  readonly waitingMax: number;
}

interface Waiting {
  readonly fields: Record<string, string>;
  readonly resolve: (id: string) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Collects the appends to one stream made in the same turn of the event loop (many sessions'
 * telemetry) and writes them with one appendBatch each `entriesMax`. Each caller still awaits its
 * own entry, so a session's frames reach the stream in order and a failure reaches every caller
 * whose entry was in the failed batch. No timer: the flush runs as a microtask, so batching adds
 * no latency and the simulator's virtual time is untouched.
 */
export class AppendBatcher {
  #waiting: Waiting[] = [];
  #flushQueued = false;

  constructor(private readonly options: AppendBatcherOptions) {
    if (!Number.isSafeInteger(options.entriesMax) || options.entriesMax < 1) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'entriesMax must be a positive integer');
  }

  append(fields: Record<string, string>): Promise<string> {
    const { bus, stream, maxLen, entriesMax, waitingMax } = this.options;
    if (entriesMax === 1) return bus.append(stream, fields, { maxLen });
    if (this.#waiting.length >= waitingMax) return Promise.reject(new SdcError('STORE_LIMIT', `${waitingMax} appends to ${stream} already wait for a flush`));
    return new Promise<string>((resolve, reject) => {
      this.#waiting.push({ fields, resolve, reject });
      if (this.#waiting.length >= entriesMax) this.#flush();
      else if (!this.#flushQueued) {
        this.#flushQueued = true;
        queueMicrotask(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#flushQueued = false;
    while (this.#waiting.length > 0) {
      const batch = this.#waiting.splice(0, this.options.entriesMax);
      void this.#write(batch);
    }
  }

  async #write(batch: readonly Waiting[]): Promise<void> {
    try {
      const ids = await this.options.bus.appendBatch(this.options.stream, batch.map((w) => w.fields), { maxLen: this.options.maxLen });
      batch.forEach((waiting, index) => waiting.resolve(ids[index] as string));
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    }
  }
}
