/**
 * The `/v1/live` Server-Sent Events stream (docs/api.md, "Live updates"), with reconnects. The
 * server keeps no replay buffer, so "resume" means: after every (re)connect, and whenever the
 * server says `resync` (it lost changes in a store outage), the views read their state again from
 * the REST API, then apply events on top.
 *
 * EventSource cannot send an Authorization header, and the token must not go in the URL (proxies,
 * history and Referer keep URLs): every connect first asks for a one-time ticket with the header
 * (`POST /v1/live/tickets`), then opens `/v1/live?ticket=`. A ticket opens one stream, so every
 * reconnect asks for a new one.
 */

export type LiveEvent =
  | { readonly type: 'command'; readonly command_id: string; readonly device_id: string; readonly state: string; readonly at_ms: number }
  | { readonly type: 'presence'; readonly device_id: string; readonly online: boolean; readonly gateway_id: string; readonly at_ms: number }
  | { readonly type: 'alert'; readonly alert_id: string; readonly device_id: string | null; readonly severity: string; readonly kind: string; readonly message: string; readonly at_ms: number }
  | { readonly type: 'alert_acknowledged'; readonly alert_id: string; readonly device_id: string | null; readonly kind: string; readonly acknowledged_by: string; readonly note: string | null; readonly at_ms: number }
  | { readonly type: 'alert_cleared'; readonly alert_id: string; readonly device_id: string | null; readonly kind: string; readonly at_ms: number };

export type LiveStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** The `dropped` reasons that end the session (server/control-plane/live.ts, LiveDropReason). */
export const revokedReasons = ['token_revoked', 'user_removed', 'subject_invalid'] as const;
export type RevokedReason = (typeof revokedReasons)[number];
const revokedReasonSet: ReadonlySet<unknown> = new Set(revokedReasons);

/** Reconnect pauses: doubling from 1 s to 30 s, so a restarting server is not hammered. */
export const liveReconnectLimits = Object.freeze({ firstDelayMs: 1_000, delayMsMax: 30_000 });

export interface LiveOptions {
  /**
   * A fresh one-time ticket for the next connect (POST /v1/live/tickets, the session's token in the
   * header); undefined when there is no session, and then the stream stays closed. A refusal or a
   * network failure is retried with the reconnect pause.
   */
  readonly ticket: () => Promise<string | undefined>;
  readonly onEvent: (event: LiveEvent) => void;
  readonly onStatus: (status: LiveStatus) => void;
  /**
   * The server said `event: resync`: changes before it may have been lost (a store outage), so
   * the views read their state again, as after a reconnect.
   */
  readonly onResync: () => void;
  /** The stream ended because the token expired (`event: dropped`, reason token_expired). */
  readonly onTokenExpired: () => void;
  /**
   * The stream ended because the session's token no longer stands (`event: dropped` with
   * token_revoked: a new password, a new role or log-out-everywhere; user_removed or
   * subject_invalid: the account was removed or lost its role). Reconnecting would only be refused
   * (or, on another control plane within seconds, open a stream it closes again): log in again.
   */
  readonly onSessionRevoked: (reason: RevokedReason) => void;
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
  /** Moves at every start and stop: a connect still waiting for its ticket from before gives up. */
  #generation = 0;

  constructor(options: LiveOptions) {
    this.#options = options;
  }

  start(): void {
    this.#stopped = false;
    this.#generation += 1;
    void this.#connect('connecting');
  }

  stop(): void {
    this.#stopped = true;
    this.#generation += 1;
    this.#source?.close();
    this.#source = undefined;
    this.#options.onStatus('closed');
  }

  async #connect(status: LiveStatus): Promise<void> {
    if (this.#stopped) return;
    const generation = this.#generation;
    let ticket: string | undefined;
    try {
      ticket = await this.#options.ticket();
    } catch {
      // Refused or unreachable: the same pause as a failed stream (a session-ending refusal has
      // ended the session, so the next try finds no session and stops).
      if (generation === this.#generation) this.#reconnectLater();
      return;
    }
    if (this.#stopped || generation !== this.#generation || ticket === undefined) return;
    this.#options.onStatus(status);
    const url = `/v1/live?ticket=${encodeURIComponent(ticket)}`;
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
      } else if (revokedReasonSet.has(reason)) {
        // No reconnect: the next ticket request would be refused with the same token.
        this.#source = undefined;
        this.#options.onStatus('closed');
        this.#options.onSessionRevoked(reason as RevokedReason);
      } else {
        this.#retry(source);
      }
    });
    // EventSource retries by itself after a dropped connection, but not after a refusal (401,
    // 429, 503): it closes. Either way we take over, with our own backoff and a fresh ticket (its
    // own retry would send the spent ticket again).
    source.onerror = () => this.#retry(source);
  }

  #retry(source: EventSource): void {
    if (this.#stopped || this.#source !== source) return;
    source.close();
    this.#source = undefined;
    this.#reconnectLater();
  }

  #reconnectLater(): void {
    if (this.#stopped) return;
    this.#options.onStatus('reconnecting');
    const delayMs = this.#delayMs;
    this.#delayMs = Math.min(this.#delayMs * 2, liveReconnectLimits.delayMsMax);
    const generation = this.#generation;
    const reconnect = (): void => { if (generation === this.#generation) void this.#connect('reconnecting'); };
    (this.#options.setTimer ?? ((callback, ms) => setTimeout(callback, ms)))(reconnect, delayMs);
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
