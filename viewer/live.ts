/**
 * The `/v1/live` Server-Sent Events stream (docs/api.md, "Live updates"), with reconnects. The
 * server keeps no replay buffer, so "resume" means: after every (re)connect, and whenever the
 * server says `resync` (it lost changes in a store outage), the views read their state again from
 * the REST API, then apply events on top.
 */

export type LiveEvent =
  | { readonly type: 'command'; readonly command_id: string; readonly device_id: string; readonly state: string; readonly at_ms: number }
  | { readonly type: 'presence'; readonly device_id: string; readonly online: boolean; readonly gateway_id: string; readonly at_ms: number }
  | { readonly type: 'alert'; readonly alert_id: string; readonly device_id: string | null; readonly severity: string; readonly kind: string; readonly message: string; readonly at_ms: number }
  | { readonly type: 'alert_acknowledged'; readonly alert_id: string; readonly device_id: string | null; readonly kind: string; readonly acknowledged_by: string; readonly note: string | null; readonly at_ms: number }
  | { readonly type: 'alert_cleared'; readonly alert_id: string; readonly device_id: string | null; readonly kind: string; readonly at_ms: number };

export type LiveStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Reconnect pauses: doubling from 1 s to 30 s, so a restarting server is not hammered. */
export const liveReconnectLimits = Object.freeze({ firstDelayMs: 1_000, delayMsMax: 30_000 });

export interface LiveOptions {
  readonly token: () => string | undefined;
  readonly onEvent: (event: LiveEvent) => void;
  readonly onStatus: (status: LiveStatus) => void;
  /**
   * The server said `event: resync`: changes before it may have been lost (a store outage), so
   * the views read their state again, as after a reconnect.
   */
  readonly onResync: () => void;
  /** The stream ended because the token expired (`event: dropped`, reason token_expired). */
  readonly onTokenExpired: () => void;
  readonly createSource?: (url: string) => EventSource;
  readonly setTimer?: (callback: () => void, delayMs: number) => unknown;
}

const eventTypes = ['command', 'presence', 'alert', 'alert_acknowledged', 'alert_cleared'] as const;
const alertEventTypes: ReadonlySet<string> = new Set(['alert', 'alert_acknowledged', 'alert_cleared']);

export class LiveStream {
  readonly #options: LiveOptions;
  #source: EventSource | undefined;
  #delayMs: number = liveReconnectLimits.firstDelayMs;
  #stopped = false;

  constructor(options: LiveOptions) {
    this.#options = options;
  }

  start(): void {
    this.#stopped = false;
    this.#connect('connecting');
  }

  stop(): void {
    this.#stopped = true;
    this.#source?.close();
    this.#source = undefined;
    this.#options.onStatus('closed');
  }

  #connect(status: LiveStatus): void {
    const token = this.#options.token();
    if (this.#stopped || token === undefined) return;
    this.#options.onStatus(status);
    const url = `/v1/live?token=${encodeURIComponent(token)}`;
    const source = this.#options.createSource?.(url) ?? new EventSource(url);
    this.#source = source;
    source.onopen = () => {
      this.#delayMs = liveReconnectLimits.firstDelayMs;
      this.#options.onStatus('open');
    };
    for (const type of eventTypes) {
      source.addEventListener(type, (message) => this.#deliver(type, (message as MessageEvent<string>).data));
    }
    source.addEventListener('resync', () => this.#options.onResync());
    source.addEventListener('dropped', (message) => {
      source.close();
      const reason = parseObject((message as MessageEvent<string>).data)?.reason;
      if (reason === 'token_expired') {
        this.#options.onStatus('closed');
        this.#options.onTokenExpired();
      } else {
        this.#retry(source);
      }
    });
    // EventSource retries by itself after a dropped connection, but not after a refusal (401,
    // 429, 503): it closes. Either way we take over, with our own backoff and a fresh token.
    source.onerror = () => this.#retry(source);
  }

  #retry(source: EventSource): void {
    if (this.#stopped || this.#source !== source) return;
    source.close();
    this.#source = undefined;
    this.#options.onStatus('reconnecting');
    const delayMs = this.#delayMs;
    this.#delayMs = Math.min(this.#delayMs * 2, liveReconnectLimits.delayMsMax);
    (this.#options.setTimer ?? ((callback, ms) => setTimeout(callback, ms)))(() => this.#connect('reconnecting'), delayMs);
  }

  #deliver(type: (typeof eventTypes)[number], data: string): void {
    const value = parseObject(data);
    // A line that is not the documented shape is skipped, never allowed to break the view.
    if (value === undefined) return;
    // Alerts about no one device (backpressure, the image repository) carry device_id null.
    const deviceOk = typeof value.device_id === 'string' || (value.device_id === null && alertEventTypes.has(type));
    if (!deviceOk || (alertEventTypes.has(type) && typeof value.alert_id !== 'string')) return;
    this.#options.onEvent({ ...value, type } as unknown as LiveEvent);
  }
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}
