import { commandTerminalStates, type CommandState } from '../core/protocol/command-machine.js';
import { openSse } from '../runtime/sse-client.js';
import { systemClock, systemScheduler } from '../runtime/system.js';
import type { BenchApi, CommandRecord } from './roundtrip-deployment.js';
import { sleep } from './wall-time.js';

/** A terminal state as the tracker saw it: arrival time (performance.now) and lag when it came live. */
export interface LiveSeen {
  state: CommandState;
  atMs?: number;
  lagMs?: number;
}

interface LiveTrackerOptions {
  apiUrl: string;
  token: string;
  caPem: string;
  api: BenchApi;
}

const reconnectAttemptsMax = 20;
const reconnectRetryMs = 250;

/**
 * Terminal command states from the SSE live stream, with the local time each arrived. The hub
 * drops a client that falls behind; the tracker then reconnects and asks the API for the commands
 * it was waiting on (those get no client-observed time: their event was lost).
 */
export class LiveTracker {
  readonly #seen = new Map<string, LiveSeen>();
  readonly #waiters = new Map<string, (seen: LiveSeen) => void>();
  #close: (() => void) | undefined;
  #closed = false;
  reconnects = 0;
  static readonly seenMax = 1_000_000;

  private readonly o: LiveTrackerOptions;

  private constructor(options: LiveTrackerOptions) {
    this.o = options;
  }

  static async open(o: LiveTrackerOptions): Promise<LiveTracker> {
    const tracker = new LiveTracker(o);
    await tracker.#connect();
    return tracker;
  }

  async #connect(): Promise<void> {
    const live = await openSse({
      url: new URL(`/v1/live?token=${encodeURIComponent(this.o.token)}`, this.o.apiUrl), caPem: this.o.caPem,
      onEvent: ({ event, data }) => {
        if (event !== 'command') return;
        const message = JSON.parse(data) as { command_id: string; state: CommandState; at_ms?: number };
        if (!commandTerminalStates.includes(message.state)) return;
        // The state's own time is the gateway's wall clock (same host): arrival minus it is the delivery lag.
        // It goes with its command, so only measured commands count (not the warm-up round's).
        const seen: LiveSeen = { state: message.state, atMs: performance.now(), ...(typeof message.at_ms === 'number' ? { lagMs: systemClock.nowMs() - message.at_ms } : {}) };
        const waiter = this.#waiters.get(message.command_id);
        if (waiter !== undefined) waiter(seen);
        else if (this.#seen.size < LiveTracker.seenMax) this.#seen.set(message.command_id, seen);
      },
      onEnd: () => {
        if (!this.#closed) void this.#reconnect();
      },
    });
    this.#close = live.close;
  }

  async #reconnect(): Promise<void> {
    this.reconnects += 1;
    for (let attempt = 0; attempt < reconnectAttemptsMax && !this.#closed; attempt += 1) {
      try {
        await this.#connect();
        break;
      } catch {
        await sleep(reconnectRetryMs);
      }
    }
    // Terminal events sent while we were away are lost: ask for the state of everything pending.
    for (const [id, waiter] of [...this.#waiters]) {
      const record = await this.o.api<CommandRecord>('GET', `/v1/commands/${id}`).catch(() => undefined);
      if (record !== undefined && commandTerminalStates.includes(record.state)) waiter({ state: record.state });
    }
  }

  /** Resolves with the terminal state (and arrival time when seen live), or undefined at the deadline. */
  waitTerminal(id: string, deadlineMs: number): Promise<LiveSeen | undefined> {
    const known = this.#seen.get(id);
    if (known !== undefined) {
      this.#seen.delete(id);
      return Promise.resolve(known);
    }
    return new Promise((resolve) => {
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
  }

  close(): void {
    this.#closed = true;
    this.#close?.();
  }
}
