import { presenceRestoredReason } from '../bus-contract/entries.js';
import { kvKeys } from '../bus-contract/streams.js';
import type { GatewayContext } from './gateway-context.js';
import type { DevicePosture } from '../../core/protocol/messages/posture.js';

/** What the presence key holds: which gateway and session hold the device, since when. */
export interface PresenceRecord {
  gateway_id: string;
  session_id: string;
  since_ms: number;
}

/** What a session's `online` event carries besides the session: the device's word at AUTH. */
export interface OnlineFacts {
  readonly lastCommandSeq: number;
  /** The device clock minus ours, measured at AUTH; the control plane shows it on the device. */
  readonly clockOffsetMs: number;
  readonly agentVersion?: string;
  readonly posture?: DevicePosture;
}

/** What a retried (owed) offline checks besides the key (presence-offline-owed.ts). */
export interface OwedOfflineChecks {
  /** True for a record in the key that names a session which will never refresh it (closed, of this gateway): it does not hold the device. */
  readonly stale?: (holder: PresenceRecord) => boolean;
  /** Asked just before the event is appended: false writes no event (a newer session came online meanwhile). */
  readonly mayReport?: () => boolean;
}

export interface PresenceSession {
  readonly deviceId: string;
  readonly sessionId: string;
  readonly sinceMs: number;
  /** True once the session ended (DeviceSession sets it): its presence is never written again. */
  readonly closed?: boolean;
}

/** 1.5 heartbeat intervals: the same bound as GatewayConnection's silence timeout. */
export function presenceTtlMs(heartbeatIntervalMs: number): number {
  return Math.ceil(heartbeatIntervalMs * 1.5);
}

/**
 * The `reason` of an online entry reported because a refresh wrote a lapsed key again (the session
 * never ended, but a list read while the key was missing showed the device offline). The control
 * plane, whose record names this gateway already, only publishes it (events.ts #presence), so a
 * whole fleet's keys lapsing at once (a store outage longer than the TTL) costs one read each.
 */
export { presenceRestoredReason } from '../bus-contract/entries.js';

/** What a refresh found: its own record (extended), no record (written again), or another session's. */
type KeyRefresh = 'held' | 'restored' | 'lost';

/** A function, not an inline test: the flag changes across awaits, which TypeScript's narrowing does not see. */
function isClosed(session: PresenceSession): boolean {
  return session.closed === true;
}

function parseRecord(text: string | null): PresenceRecord | undefined {
  if (text === null) return undefined;
  try {
    const value = JSON.parse(text) as Partial<PresenceRecord>;
    return typeof value.session_id === 'string' && typeof value.gateway_id === 'string' ? value as PresenceRecord : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Presence in the key/value store (for routing) and on the events stream (for the control
 * plane's history). A new session's `online` writes the key unconditionally (the newest session
 * wins); a refresh is a compare-and-set on the session's own record, so an older session never
 * takes the key back, and `offline` deletes the key only if it still holds this session's record.
 */
export class Presence {
  /**
   * Sessions whose lapsed key a refresh wrote again and whose online entry could not be appended
   * yet (the bus down): their next refresh that holds the key appends it. Weak, so a session that
   * ends is dropped with no bookkeeping; at most one entry per session, so no event storm.
   */
  readonly #restoredOwed = new WeakSet<PresenceSession>();

  constructor(private readonly context: GatewayContext) {}

  /**
   * The key, written unconditionally (the newest AUTH wins), then the online event. A failure of
   * either leaves the event owed: the caller reports it with `reclaim` and `reportOnline` once the
   * store answers again (gateway-core.ts #refreshOwed).
   */
  async online(session: PresenceSession, facts: OnlineFacts): Promise<void> {
    const { stores, heartbeatIntervalMs } = this.context.options;
    await stores.kv.set(kvKeys.presence(session.deviceId), this.#record(session), { ttlMs: presenceTtlMs(heartbeatIntervalMs) });
    await this.reportOnline(session, facts);
  }

  /** The `online` entry on the events stream alone, stamped now. */
  async reportOnline(session: PresenceSession, facts: OnlineFacts): Promise<void> {
    await this.context.report('presence', {
      device_id: session.deviceId, gateway_id: this.context.options.gatewayId, session_id: session.sessionId, online: true,
      at_ms: this.context.nowMs(), last_command_seq: facts.lastCommandSeq, clock_offset_ms: facts.clockOffsetMs,
      // What the device said of itself in AUTH, passed on for the control plane's compliance state.
      ...(facts.agentVersion === undefined ? {} : { agent_version: facts.agentVersion }), ...(facts.posture === undefined ? {} : { posture: facts.posture }),
    });
  }

  /**
   * Extends the key's TTL (default the full presence TTL; PresenceRefreshWindow passes what is left
   * of it since the frame was heard). Returns false when the key names another session: a newer
   * session of this device exists (here or on another gateway), so this one must end.
   */
  async refresh(session: PresenceSession, ttlMs = presenceTtlMs(this.context.options.heartbeatIntervalMs)): Promise<boolean> {
    const found = await this.#refreshRecord(session, ttlMs);
    if (found === 'lost') return false;
    await this.#reportRestored(session, found === 'restored');
    return true;
  }

  async #refreshRecord(session: PresenceSession, ttlMs: number): Promise<KeyRefresh> {
    const { stores } = this.context.options;
    const key = kvKeys.presence(session.deviceId);
    const mine = this.#record(session);
    // Compare-and-set on this session's record: a read then a write would overwrite a newer
    // session's key written between the two, and that session would then be closed as replaced.
    if (await stores.kv.compareAndSet(key, mine, mine, { ttlMs })) return 'held';
    // Missing: it expired during a stall (a store outage, or a busy gateway that read the next
    // heartbeat after the TTL); the session is live, so restore it, again only if nobody wrote it
    // meanwhile. Anything else names another session. Not if the session ended while the
    // compare-and-set was out: its offline may have deleted the key just now, and a restore would
    // bring back a closed session's presence. (A restore sent before the close is removed by the
    // offline's delete, which is sent after it.)
    if (session.closed === true) return 'lost';
    return (await stores.kv.set(key, mine, { ttlMs, onlyIfAbsent: true })) ? 'restored' : 'lost';
  }

  /**
   * The online entry of a session whose key had lapsed and was just written again (`restored`), or
   * whose earlier such entry is still owed. Why: while the key was missing the device read as
   * offline (device lists, the viewer's fleet), and without an event nothing told a reader it is
   * back. One per lapse: a refresh that finds its own record reports nothing. Not after the
   * session closed: its offline follows its tasks (this refresh included) and nothing may come
   * after it. A failed append is logged, not thrown: the key is written, so the refresh held it
   * and the frame goes on; the entry is tried again at the next refresh. Without AUTH's facts:
   * its last_command_seq is old by now (the control plane moves it up as results arrive, and would
   * take it back), and the posture was recorded at AUTH.
   */
  async #reportRestored(session: PresenceSession, restored: boolean): Promise<void> {
    if (restored) this.#restoredOwed.add(session);
    if (!this.#restoredOwed.has(session)) return;
    if (isClosed(session)) {
      this.#restoredOwed.delete(session);
      return;
    }
    try {
      await this.context.report('presence', {
        device_id: session.deviceId, gateway_id: this.context.options.gatewayId, session_id: session.sessionId, online: true,
        at_ms: this.context.nowMs(), reason: presenceRestoredReason,
      });
      this.#restoredOwed.delete(session);
    } catch (error) {
      this.context.options.logger.warn({ err: error, device_id: session.deviceId, session_id: session.sessionId, trace_id: this.context.traceId() },
        'online of a restored presence key not reported; tried again at the next refresh');
    }
  }

  /**
   * The refresh of a session whose AUTH write failed (its key may never have been written): as
   * `refresh`, and when the key names another session that `mayTakeOver` accepts, a compare-and-set
   * on that exact record, so nothing written since is overwritten. Why: during a store outage
   * shorter than the TTL, the key still names the session this one replaced; a plain refresh
   * would find it and end the newer session as replaced by the older one.
   * `onlineOwed`: the caller reports the session's owed online once this holds the key, which
   * covers a lapsed key written again; false (only other AUTH work owed) reports it as `refresh` does.
   */
  async reclaim(session: PresenceSession, ttlMs: number, mayTakeOver: (holder: PresenceRecord) => boolean, onlineOwed = true): Promise<boolean> {
    const found = await this.#reclaimRecord(session, ttlMs, mayTakeOver);
    if (found === 'lost') return false;
    if (!onlineOwed) await this.#reportRestored(session, found === 'restored');
    return true;
  }

  async #reclaimRecord(session: PresenceSession, ttlMs: number, mayTakeOver: (holder: PresenceRecord) => boolean): Promise<KeyRefresh> {
    const found = await this.#refreshRecord(session, ttlMs);
    if (found !== 'lost' || isClosed(session)) return found;
    const { stores } = this.context.options;
    const key = kvKeys.presence(session.deviceId);
    const text = await stores.kv.get(key);
    // Each write below only if the session is still open (as in refresh: its offline may be under way).
    if (isClosed(session)) return 'lost';
    // Gone since the refresh looked (the holder's close deleted it): as a refresh, only if still absent.
    if (text === null) return (await stores.kv.set(key, this.#record(session), { ttlMs, onlyIfAbsent: true })) ? 'restored' : 'lost';
    const holder = parseRecord(text);
    if (holder === undefined || !mayTakeOver(holder)) return 'lost';
    // Taken from an older session of this gateway: the key was there, so the device read as online all along.
    return (await stores.kv.compareAndSet(key, text, this.#record(session), { ttlMs })) ? 'held' : 'lost';
  }

  /**
   * Reports offline only if the key still names this session; a newer session must stay online.
   * The key is removed by delete-if-equal on this session's own record (atomic on the store): a
   * read then a delete would remove a newer session's record written between the two, and that
   * session would be routed nothing until its next refresh, or be reported offline by us.
   * `owed`: the extra checks of an offline retried after a store failure (presence-offline-owed.ts).
   */
  async offline(session: PresenceSession, reason: string, owed: OwedOfflineChecks = {}): Promise<boolean> {
    const { gatewayId, stores } = this.context.options;
    const key = kvKeys.presence(session.deviceId);
    if (!(await stores.kv.deleteIfEqual(key, this.#record(session)))) {
      // Not ours (or gone): another session's record means that session holds the device.
      const text = await stores.kv.get(key);
      const current = parseRecord(text);
      if (current !== undefined && current.session_id !== session.sessionId) {
        if (owed.stale?.(current) !== true) return false;
        // A record no session will refresh again: removed on its exact text, so a record written
        // since (a newer session's) stays, and then this offline is not reported either.
        if (!(await stores.kv.deleteIfEqual(key, text!))) return false;
      }
    }
    if (owed.mayReport?.() === false) return false;
    await this.context.report('presence', {
      device_id: session.deviceId, gateway_id: gatewayId, session_id: session.sessionId, online: false,
      at_ms: this.context.nowMs(), reason: reason.slice(0, 256),
    });
    return true;
  }

  #record(session: PresenceSession): string {
    const record: PresenceRecord = { gateway_id: this.context.options.gatewayId, session_id: session.sessionId, since_ms: session.sinceMs };
    return JSON.stringify(record);
  }
}
