import { SdcError } from '../../core/errors/index.js';
import type { TimerHandle } from '../../core/ports/ports.js';
import { backoffDelayMs } from './backoff.js';
import type { GatewayContext } from './gateway-context.js';
import type { Presence, PresenceRecord, PresenceSession } from './presence.js';

/** A closed session's offline that could not be written: what Presence.offline needs, not the session itself. */
interface Owed {
  readonly session: PresenceSession;
  readonly reason: string;
  /** The session's place in the order of this gateway's authentications: the larger is the newer. */
  readonly authSeq: number;
}

export interface PresenceOfflineOwedOptions {
  readonly context: GatewayContext;
  readonly presence: Presence;
  /** The device's open authenticated session on this gateway, if any; it authenticated after every closed one. */
  readonly liveSessionOf: (deviceId: string) => { readonly sessionId: string } | undefined;
  /** Owed offlines held at once (one per device at most); beyond it one is logged and left to the key's TTL. */
  readonly entriesMax: number;
  /** A crashed gateway (abort) writes nothing more. */
  readonly aborted: () => boolean;
}

/**
 * Presence offlines that failed (the key/value store or the bus down at the session's close),
 * owed to the control plane until they are written: without this the key expired by its TTL but
 * the control plane never received the offline and kept the device on this gateway (issue 15).
 * Retried on the gateway's backoff (options.backoff, one timer for all of them), in the order
 * they were owed, and once more at stop().
 *
 * Never after a newer session of the device came online: the control plane clears a device's
 * gateway on an offline from that gateway whatever the session (devices.ts recordPresence), so an
 * older session's late offline would undo the newer session's online. Hence:
 * - one entry per device, the newest session's (an older session's offline says nothing the newer one's does not);
 * - a session authenticating here drops the device's entry (supersede), and none is owed while one is open here;
 * - the retry writes nothing if the key names a session that may hold the device (another
 *   gateway's, or this gateway's open one), and checks again just before the event is appended.
 * A record of a session of this gateway that is no longer open is stale (its own close could not
 * delete it): removed by delete-if-equal on its exact text, and the offline is reported.
 */
export class PresenceOfflineOwed {
  readonly #options: PresenceOfflineOwedOptions;
  /** By device id, in the order owed. */
  readonly #owed = new Map<string, Owed>();
  #timer: TimerHandle | undefined;
  /** Failed rounds in a row: the backoff's attempt number. */
  #failures = 0;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(options: PresenceOfflineOwedOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#owed.size;
  }

  /** The first offline of a closed session failed with `error`: owed, unless a newer session of the device makes it moot. */
  owe(session: PresenceSession, reason: string, authSeq: number, error: unknown): void {
    const { context, liveSessionOf, entriesMax } = this.#options;
    const { logger } = context.options;
    const fields = { err: error, device_id: session.deviceId, session_id: session.sessionId, trace_id: context.traceId() };
    if (this.#stopped || this.#options.aborted()) {
      logger.error(fields, 'presence offline not reported: the gateway is stopping');
      return;
    }
    // A newer session is open here (its online stands) or already owes its own offline.
    if (liveSessionOf(session.deviceId) !== undefined || (this.#owed.get(session.deviceId)?.authSeq ?? 0) > authSeq) return;
    if (!this.#owed.has(session.deviceId) && this.#owed.size >= entriesMax) {
      logger.error({ ...fields, err: new SdcError('GATEWAY_OVERLOADED', `${entriesMax} presence offlines already owed`) },
        'presence offline not reported: too many owed; the key still expires by its TTL');
      return;
    }
    this.#owed.delete(session.deviceId);
    this.#owed.set(session.deviceId, { session: { deviceId: session.deviceId, sessionId: session.sessionId, sinceMs: session.sinceMs }, reason, authSeq });
    logger.warn(fields, 'presence offline failed; owed and retried on the backoff');
    this.#schedule();
  }

  /** A session of the device authenticated here: an owed offline of an older one must never follow its online. */
  supersede(deviceId: string): void {
    this.#owed.delete(deviceId);
  }

  /** The one last attempt of stop(), after the sessions' own close work; what still fails is logged. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancel();
    await this.#running;
    if (this.#owed.size > 0 && !this.#options.aborted()) await this.#run();
    this.#cancel();
    if (this.#owed.size > 0) this.#options.context.options.logger.error({ owed: this.#owed.size }, 'presence offlines not reported at stop; their keys expire by their TTL');
    this.#owed.clear();
  }

  /** A crash: no more retries. */
  abort(): void {
    this.#stopped = true;
    this.#cancel();
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#running !== undefined || this.#stopped) return;
    const { backoff, random } = this.#options.context.options;
    this.#timer = this.#options.context.schedule(backoffDelayMs({ ...backoff, failedAttempts: Math.max(1, this.#failures), random }), () => {
      this.#timer = undefined;
      void this.#run();
    });
  }

  #cancel(): void {
    if (this.#timer !== undefined) this.#options.context.options.scheduler.cancel(this.#timer);
    this.#timer = undefined;
  }

  /** One round: each owed offline in turn; the first failure ends the round and the next one waits on the backoff. */
  #run(): Promise<void> {
    const round = this.#round().finally(() => {
      this.#running = undefined;
      if (this.#owed.size > 0) this.#schedule();
    });
    this.#running = round;
    return round;
  }

  async #round(): Promise<void> {
    for (const [deviceId, owed] of [...this.#owed]) {
      if (this.#options.aborted()) return;
      if (this.#owed.get(deviceId) !== owed) continue;
      try {
        await this.#options.presence.offline(owed.session, owed.reason, {
          stale: (holder) => this.#stale(deviceId, holder),
          mayReport: () => this.#owed.get(deviceId) === owed && this.#options.liveSessionOf(deviceId) === undefined && !this.#options.aborted(),
        });
      } catch (error) {
        this.#failures += 1;
        this.#options.context.options.logger.warn({ err: error, owed: this.#owed.size, failures: this.#failures }, 'owed presence offlines still failing; retried on the backoff');
        return;
      }
      // Reported, or moot (a newer session holds the device): no longer owed either way.
      if (this.#owed.get(deviceId) === owed) this.#owed.delete(deviceId);
    }
    this.#failures = 0;
  }

  /** A record this gateway wrote for a session that is no longer open here: no session can refresh it. */
  #stale(deviceId: string, holder: PresenceRecord): boolean {
    return holder.gateway_id === this.#options.context.options.gatewayId && this.#options.liveSessionOf(deviceId)?.sessionId !== holder.session_id;
  }
}
