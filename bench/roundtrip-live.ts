import { SdcError } from '../core/errors/index.js';
import { commandTerminalStates, type CommandState } from '../core/protocol/command-machine.js';
import { openLiveStream } from '../runtime/sse-client.js';
import { systemClock, systemScheduler } from '../runtime/system.js';
import type { BenchApi, CommandRecord } from './roundtrip-deployment.js';
import { sleep } from './wall-time.js';

/** A terminal state as the tracker saw it: arrival time (performance.now) and lag when it came live. */
export interface LiveSeen {
  state: CommandState;
  atMs?: number;
  lagMs?: number;
}

export interface LiveTrackerOptions {
  apiUrl: string;
  caPem: string;
  api: BenchApi;
  /** The operator token the API uses now; the stream opens with it. */
  currentToken(): string;
  /** A fresh token once `expired` was refused (the hub closes a stream when its token expires). */
  renewToken(expired: string): Promise<string>;
}

/** Attempts to open the stream again before giving up (the commands then end at their deadline). */
const reconnectAttemptsMax = 60;
const reconnectRetryMsMin = 250;
const reconnectRetryMsMax = 5_000;
/** Command states asked for at once after a gap in the stream. */
const catchUpBatchSize = 32;

/**
 * Terminal command states from the SSE live stream, with the local time each arrived. The hub
 * ends a stream that falls behind (`slow_client`) or whose token expires (`token_expired`); the
 * tracker then reconnects, with a renewed token when the old one was refused, and asks the API
 * for the commands it was waiting on (those get no client-observed time: their event was lost).
 * A command whose POST was in flight during a gap (`epoch` moved) is asked for too: its terminal
 * event may have been sent before it had a waiter and while no stream was open.
 */
export class LiveTracker {
  readonly #seen = new Map<string, LiveSeen>();
  readonly #waiters = new Map<string, (seen: LiveSeen) => void>();
  #close: (() => void) | undefined;
  #closed = false;
  /** The connection whose end starts a reconnect; ends of failed attempts and closed ones are ignored. */
  #currentConnection = 0;
  #nextConnection = 1;
  #epoch = 0;
  #reconnecting: Promise<void> | undefined;
  #tokenExpired = false;
  reconnects = 0;
  /** Reconnects that gave up after reconnectAttemptsMax attempts. */
  reconnectFailures = 0;
  /** `dropped` events the hub sent, by reason (slow_client, token_expired, shutdown). */
  readonly dropsByReason: Record<string, number> = {};
  static readonly seenMax = 1_000_000;

  private readonly o: LiveTrackerOptions;

  private constructor(options: LiveTrackerOptions) {
    this.o = options;
  }

  static async open(o: LiveTrackerOptions): Promise<LiveTracker> {
    const tracker = new LiveTracker(o);
    await tracker.#connect(o.currentToken());
    return tracker;
  }

  /** Whether a stream is open now (false from its end until a reconnect succeeds). */
  get connected(): boolean {
    return this.#currentConnection !== 0;
  }

  /** Moves each time the stream ends: a command posted in an earlier epoch may have missed its event. */
  get epoch(): number {
    return this.#epoch;
  }

  async #connect(token: string): Promise<void> {
    const connection = this.#nextConnection++;
    const live = await openLiveStream({
      apiUrl: this.o.apiUrl, caPem: this.o.caPem, token,
      onEvent: ({ event, data }) => {
        if (event === 'dropped') this.#onDropped(data);
        else if (event === 'command') this.#onCommand(data);
      },
      onEnd: () => {
        if (connection !== this.#currentConnection || this.#closed) return;
        this.#currentConnection = 0;
        this.#epoch += 1;
        this.#reconnecting ??= this.#reconnect().finally(() => { this.#reconnecting = undefined; });
      },
    });
    this.#currentConnection = connection;
    this.#close = live.close;
  }

  #onDropped(data: string): void {
    let reason = 'unknown';
    try {
      const parsed = JSON.parse(data) as { reason?: unknown };
      if (typeof parsed.reason === 'string') reason = parsed.reason;
    } catch { /* counted as unknown */ }
    this.dropsByReason[reason] = (this.dropsByReason[reason] ?? 0) + 1;
    if (reason === 'token_expired') this.#tokenExpired = true;
  }

  #onCommand(data: string): void {
    const message = JSON.parse(data) as { command_id: string; state: CommandState; at_ms?: number };
    if (!commandTerminalStates.includes(message.state)) return;
    // The state's own time is the gateway's wall clock (same host): arrival minus it is the delivery lag.
    // It goes with its command, so only measured commands count (not the warm-up round's).
    const seen: LiveSeen = { state: message.state, atMs: performance.now(), ...(typeof message.at_ms === 'number' ? { lagMs: systemClock.nowMs() - message.at_ms } : {}) };
    const waiter = this.#waiters.get(message.command_id);
    if (waiter !== undefined) waiter(seen);
    else if (this.#seen.size < LiveTracker.seenMax) this.#seen.set(message.command_id, seen);
  }

  async #reconnect(): Promise<void> {
    this.reconnects += 1;
    let token = this.o.currentToken();
    for (let attempt = 0; !this.#closed; attempt += 1) {
      if (this.#tokenExpired) {
        // Before this fix the tracker reopened with the first token forever: refused after it expired.
        token = await this.o.renewToken(token).catch(() => this.o.currentToken());
        this.#tokenExpired = false;
      }
      try {
        await this.#connect(token);
        break;
      } catch (error) {
        if (SdcError.is(error) && error.details?.['status'] === 401) this.#tokenExpired = true;
        if (attempt + 1 >= reconnectAttemptsMax) {
          this.reconnectFailures += 1;
          return;
        }
        await sleep(Math.min(reconnectRetryMsMax, reconnectRetryMsMin * 2 ** Math.min(attempt, 5)));
      }
    }
    // Terminal events sent while we were away are lost: ask for the state of everything pending.
    await this.#catchUp([...this.#waiters.keys()]);
  }

  async #catchUp(ids: readonly string[]): Promise<void> {
    for (let i = 0; i < ids.length && !this.#closed; i += catchUpBatchSize) {
      await Promise.all(ids.slice(i, i + catchUpBatchSize).map(async (id) => {
        const record = await this.o.api<CommandRecord>('GET', `/v1/commands/${id}`).catch(() => undefined);
        if (record !== undefined && commandTerminalStates.includes(record.state)) this.#waiters.get(id)?.({ state: record.state });
      }));
    }
  }

  /** After a gap that began once the command was posted: its state from the API when the stream is back. */
  async #catchUpAfterGap(id: string): Promise<void> {
    await this.#reconnecting;
    await this.#catchUp([id]);
  }

  /**
   * Resolves with the terminal state (and arrival time when seen live), or undefined at the
   * deadline. `postedInEpoch`: `epoch` read before the command's POST.
   */
  waitTerminal(id: string, deadlineMs: number, postedInEpoch = this.#epoch): Promise<LiveSeen | undefined> {
    const known = this.#seen.get(id);
    if (known !== undefined) {
      this.#seen.delete(id);
      return Promise.resolve(known);
    }
    const waiting = new Promise<LiveSeen | undefined>((resolve) => {
      const timer = systemScheduler.schedule(Math.max(0, deadlineMs - systemClock.nowMs()), () => {
        this.#waiters.delete(id);
        resolve(undefined);
      });
      this.#waiters.set(id, (seen) => {
        systemScheduler.cancel(timer);
        this.#waiters.delete(id);
        resolve(seen);
      });
    });
    if (postedInEpoch !== this.#epoch) void this.#catchUpAfterGap(id);
    return waiting;
  }

  close(): void {
    this.#closed = true;
    this.#close?.();
  }
}
