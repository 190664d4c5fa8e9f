/**
 * Why the fleet reads its list again by itself. A row's `online` is the gateway's presence key
 * (it expires without heartbeats); its `gateway_id` is the control plane's record of the session,
 * set by the `online` presence event and cleared by the `offline` one. On a busy gateway the key
 * can lapse for a moment and be written again by the next heartbeat: the session never ended. A
 * list read during that moment shows the device offline while its session is on record. Since
 * 2026-12-05 the gateway reports an `online` when it writes such a key back (docs/gateway.md), which
 * corrects the row and cancels the re-read; this stays as a cheap backstop for an event that comes
 * late. Such a row ("lapsed") is read again after a pause, a bounded number of times: a gateway
 * that died sends no `offline` either, and its devices stay lapsed until its sessions are cleared.
 */

/** Pauses doubling from 2 s (longer than the e2e presence TTL of 1.5 s), 5 reads at most (62 s in all). */
export const fleetRecheckLimits = Object.freeze({ firstDelayMs: 2_000, readsMax: 5 });

export interface PresenceRow {
  readonly id: string;
  readonly online: boolean;
  readonly gateway_id: string | null;
}

/** Offline by the presence key while the control plane still records a session: a lapse or an offline on its way. */
export function lapsedRows(rows: Iterable<PresenceRow>): string[] {
  const ids: string[] = [];
  for (const row of rows) if (!row.online && row.gateway_id !== null) ids.push(row.id);
  return ids;
}

export interface FleetRecheckOptions {
  /** The rows shown now (presence events included). */
  readonly rows: () => Iterable<PresenceRow>;
  /** Reads the list again; calls `afterRead` when its rows are shown. */
  readonly reread: () => void;
  readonly setTimer?: (callback: () => void, delayMs: number) => unknown;
  readonly clearTimer?: (timer: unknown) => void;
}

export class FleetRecheck {
  readonly #options: FleetRecheckOptions;
  #timer: unknown;
  /** Re-reads since the last read that showed no lapsed row. */
  #reads = 0;

  constructor(options: FleetRecheckOptions) {
    this.#options = options;
  }

  /** After every read of the list: schedules a re-read while some row is lapsed, within the bound. */
  afterRead(): void {
    this.#cancel();
    if (lapsedRows(this.#options.rows()).length === 0) {
      this.#reads = 0;
      return;
    }
    if (this.#reads >= fleetRecheckLimits.readsMax) return;
    const delayMs = fleetRecheckLimits.firstDelayMs * 2 ** this.#reads;
    const setTimer = this.#options.setTimer ?? ((callback, ms) => setTimeout(callback, ms));
    this.#timer = setTimer(() => {
      this.#timer = undefined;
      // A presence event since (online, or the offline that clears the session) settled it: no read.
      if (lapsedRows(this.#options.rows()).length === 0) return;
      this.#reads += 1;
      this.#options.reread();
    }, delayMs);
  }

  stop(): void {
    this.#cancel();
    this.#reads = 0;
  }

  #cancel(): void {
    if (this.#timer === undefined) return;
    (this.#options.clearTimer ?? ((timer) => clearTimeout(timer as ReturnType<typeof setTimeout>)))(this.#timer);
    this.#timer = undefined;
  }
}
