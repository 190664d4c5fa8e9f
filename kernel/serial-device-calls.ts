/**
 * The call discipline of the backends whose device call runs off the event loop (koffi's async
 * mode, on a libuv worker thread): the native library and the Windows driver. A STAGE copies and
 * hashes up to 256 MiB and a screen lock may wait 10 s; a synchronous call would stop the agent's
 * event loop for that long (no heartbeats, and the bridge's timeout could never fire).
 *
 * The caller's signal ends the caller's wait, never the device call, which keeps running on its
 * thread and stays accounted for: at most one device call is in flight per device (the driver or
 * library serialises on its handle anyway and would answer a second one BUSY), later calls wait
 * for it (or for their own signal), more than `waitingCallsMax` waiting are refused
 * KERNEL_QUEUE_FULL, and the handle is freed only after the last device call returned.
 */
import { SdcError } from '../core/errors/index.js';

export const deviceCallLimits = Object.freeze({
  /** Calls waiting behind the device call in flight (one that timed out is still running). The bridge sends one at a time, so a few suffice. */
  waitingCallsMax: 8,
});

export interface SerialDeviceCallsOptions {
  /** Names the device in refusals: "native kernel device", "windows kernel device". */
  readonly deviceName: string;
  /** Frees the device handle; called once, after close() and when no device call runs. */
  readonly freeHandle: () => void;
}

export class SerialDeviceCalls {
  /** The device call running on a worker thread, settled when it returns; null when none. */
  #inFlight: Promise<void> | null = null;
  #waiting = 0;
  #closing = false;
  #freed = false;
  readonly #o: SerialDeviceCallsOptions;

  constructor(options: SerialDeviceCallsOptions) {
    this.#o = options;
  }

  /** Whether a device call is running (one whose caller may have stopped waiting). */
  get inFlight(): boolean {
    return this.#inFlight !== null;
  }

  /**
   * Runs `start` (which begins the device call and returns its completion) once no other device
   * call runs. `signal` ends this caller's wait with its reason; the call itself runs on.
   */
  async run<T>(start: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const release = await this.#claim(signal);
    let call: Promise<T>;
    try {
      call = start();
    } catch (error) {
      release();
      throw error;
    }
    call.then(release, release);
    return abortable(call, signal);
  }

  /** Frees the handle now, or when the device call in flight returns (its thread still uses it). */
  close(): void {
    this.#closing = true;
    if (this.#inFlight === null) this.#free();
  }

  /**
   * Waits until no device call runs, then takes the slot in the same synchronous step as the
   * last check, so two waiters never both start one. The returned function gives it back.
   */
  async #claim(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    this.#refuseIfClosed();
    if (this.#inFlight !== null) {
      if (this.#waiting >= deviceCallLimits.waitingCallsMax) {
        throw new SdcError('KERNEL_QUEUE_FULL', `more than ${deviceCallLimits.waitingCallsMax} calls waiting for a ${this.#o.deviceName} call still running`);
      }
      this.#waiting++;
      try {
        while (this.#inFlight !== null) await abortable(this.#inFlight, signal);
      } finally {
        this.#waiting--;
      }
      this.#refuseIfClosed();
    }
    let settle!: () => void;
    this.#inFlight = new Promise<void>((resolve) => { settle = resolve; });
    return () => {
      this.#inFlight = null;
      settle();
      if (this.#closing) this.#free();
    };
  }

  #refuseIfClosed(): void {
    if (this.#closing) throw new SdcError('KERNEL_CLOSED', `${this.#o.deviceName} is closed`);
  }

  #free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.#o.freeHandle();
  }
}

/** `promise`, or the signal's reason when it aborts first (the promise itself runs on). */
export function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => { signal.removeEventListener('abort', onAbort); resolve(value); },
      (error: unknown) => { signal.removeEventListener('abort', onAbort); reject(error); },
    );
  });
}
