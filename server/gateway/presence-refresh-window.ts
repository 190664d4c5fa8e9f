import { SdcError } from '../../core/errors/index.js';
import type { TimerHandle } from '../../core/ports/ports.js';
import { presenceTtlMs, type Presence, type PresenceSession } from './presence.js';

export interface PresenceRefreshWindowOptions {
  readonly presence: Presence;
  readonly heartbeatIntervalMs: number;
  /** How long a refresh may wait for others; 0 sends each at once (the simulator's default, so its traces keep their timing). */
  readonly windowMs: number;
  /** Refreshes waiting at once; each session has at most one (its tasks run in order), so this only bounds a bug. */
  readonly waitingMax: number;
  readonly nowMs: () => number;
  readonly schedule: (delayMs: number, run: () => void) => TimerHandle;
  /** A crashed gateway (abort) writes nothing more: its waiting refreshes are answered without a write. */
  readonly aborted: () => boolean;
}

/** The longest a deployed gateway lets a refresh wait: a tenth of a second, and never more than an eighth of the heartbeat interval. */
export const presenceRefreshWindowMsMax = 100;

/** The window `sdc serve` and `sdc gateway` use for a heartbeat interval (GatewayCoreOptions.presenceRefreshWindowMs). */
export function presenceRefreshWindowMsFor(heartbeatIntervalMs: number): number {
  return Math.min(presenceRefreshWindowMsMax, Math.floor(heartbeatIntervalMs / 8));
}

interface Waiting {
  readonly session: PresenceSession;
  readonly heardMs: number;
  readonly resolve: (present: boolean) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Presence refreshes of many sessions sent together: the ones that arrive within `windowMs` are
 * issued in one synchronous step when the window closes, so on Redis they go out in one pipelined
 * write (ioredis autopipelining) and their replies come back in one read. Why: each refresh sent
 * on its own cost the gateway a socket write and a wake-up for its reply, the largest item of its
 * CPU per frame in steady state (docs/benchmarks.md, 2026-12-03 night); a fleet's heartbeats are
 * spread over the interval, so few ever shared a turn of the event loop by chance.
 *
 * The key still expires when it did: the TTL written is the presence TTL less the time the frame
 * waited, so the key lives exactly 1.5 heartbeat intervals past the frame heard (the same instant
 * as the session's silence deadline), as when each refresh went out at once.
 */
export class PresenceRefreshWindow {
  #waiting: Waiting[] = [];
  #timer: TimerHandle | undefined;
  #stopped = false;

  constructor(private readonly options: PresenceRefreshWindowOptions) {
    if (!Number.isSafeInteger(options.windowMs) || options.windowMs < 0) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'presenceRefreshWindowMs must be a non-negative integer');
  }

  /**
   * False when the key names another session (Presence.refresh). `heardMs`: when the frame that
   * asks for it was heard. `canWait` false sends at once: a frame whose forwarding waits on the
   * refresh and is on a command's path (ACK, RESULT) is not delayed for the sake of batching.
   */
  refresh(session: PresenceSession, heardMs: number, canWait: boolean): Promise<boolean> {
    const { windowMs, waitingMax } = this.options;
    if (windowMs === 0 || !canWait || this.#stopped) return this.#send(session, heardMs);
    if (this.#waiting.length >= waitingMax) return Promise.reject(new SdcError('GATEWAY_OVERLOADED', `${waitingMax} presence refreshes already wait`));
    return new Promise<boolean>((resolve, reject) => {
      this.#waiting.push({ session, heardMs, resolve, reject });
      this.#timer ??= this.options.schedule(windowMs, () => this.#flush());
    });
  }

  /**
   * The gateway is stopping: what waits is sent now and nothing waits any more. Its timer is left
   * to fire on an empty list (this class has no cancel); a stop must not wait on it, since timers
   * are unref'd and a stop waited on by nothing else would end the process first.
   */
  stopWaiting(): void {
    this.#stopped = true;
    if (this.#waiting.length > 0) this.#flush();
  }

  #flush(): void {
    this.#timer = undefined;
    const batch = this.#waiting;
    this.#waiting = [];
    // One synchronous loop: every command is issued before any reply is read.
    for (const waiting of batch) {
      if (this.options.aborted()) waiting.resolve(true);
      else this.#send(waiting.session, waiting.heardMs).then(waiting.resolve, waiting.reject);
    }
  }

  #send(session: PresenceSession, heardMs: number): Promise<boolean> {
    const waitedMs = Math.max(0, this.options.nowMs() - heardMs);
    return this.options.presence.refresh(session, Math.max(1, presenceTtlMs(this.options.heartbeatIntervalMs) - waitedMs));
  }
}
