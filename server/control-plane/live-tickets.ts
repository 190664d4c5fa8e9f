import { createHash } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';
import type { Clock, RandomSource } from '../../core/ports/ports.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import type { VerifiedPrincipal } from './auth.js';
import type { TokenBinding } from './token-subjects.js';
import { isRole, type Role } from './users.js';

/**
 * One-time tickets that open the live stream (`GET /v1/live?ticket=`). A browser's EventSource
 * cannot send an Authorization header, and the JWT in the URL (what the viewer did before) leaks
 * to proxies, browser history and Referer and stays a bearer token for its whole lifetime. A
 * ticket is asked for with the header (`POST /v1/live/tickets`), opens one stream within seconds,
 * and is worth nothing after (docs/security/threat-model.md, "The live stream's ticket").
 *
 * Tickets live in the key/value store, so a ticket issued by one control plane opens a stream on
 * another; the store holds only the SHA-256 of a ticket (a read of the store gives no usable
 * ticket), and a ticket is spent with one atomic get-and-delete (KeyValueStore.take), so two
 * streams racing with one ticket on two replicas get one stream between them.
 */
export const liveTicketLimits = Object.freeze({
  // From the POST to the GET: a browser opens the stream at once; 30 s covers a slow network
  // and a busy machine, and is short enough that a ticket seen in a log or a proxy is spent or stale.
  ticketTtlMs: 30_000,
  // Unused tickets one user may hold (across every control plane): a few tabs reconnecting at
  // once need a handful; the bound keeps a client that never uses them from filling the store.
  ticketsPerUserMax: 16,
  // 256 bits from the random port: not guessable within the store's lifetime, whatever the rate.
  ticketBytes: 32,
});

/** A ticket, as POST /v1/live/tickets answers it. */
export interface IssuedLiveTicket {
  readonly ticket: string;
  readonly expiresAtMs: number;
}

export interface LiveTicketsOptions {
  readonly kv: KeyValueStore;
  /** Expiry is judged on this clock (the store's TTL only collects), so tests move it. */
  readonly clock: Clock;
  readonly random: RandomSource;
  /**
   * Throws when the user no longer exists, no longer holds `role`, is another account than the
   * token's (`binding`), or has had the token's generation revoked since (the JWT path's check,
   * AuthService).
   */
  readonly requireSubject: (name: string, role: Role, tokenGeneration: number, binding: TokenBinding) => Promise<void>;
}

/** What the store keeps under a ticket's hash: who asked, with which role, until when their token is good. */
interface StoredTicket {
  readonly user: string;
  readonly role: Role;
  readonly token_expires_at_ms: number;
  readonly expires_at_ms: number;
  /** The generation of the token the ticket was asked with (absent in a ticket from before it: 0). */
  readonly token_generation?: number;
  /** The account id and `iat` (seconds) of that token, so a ticket too is refused for a later account of the same name (absent before). */
  readonly token_user_id?: string;
  readonly token_issued_at_s?: number;
}

// base64url of 32 bytes, no padding: anything else cannot be a ticket and is refused unhashed.
const ticketPattern = /^[A-Za-z0-9_-]{43}$/;
// Hex digits of SHA-256 kept of a user name in the count's key, as in window-counter.ts.
const userHashHexChars = 16;
// Hex digits of a ticket's SHA-256 naming it in its user's set: 64 bits, no two of a user's 16 alike.
const heldMemberHexChars = 16;

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function invalidTicket(): SdcError {
  // Unknown, used and expired read alike: the answer must not help anyone probe the store.
  return new SdcError('API_LIVE_TICKET_INVALID', 'the live stream ticket is unknown, used or expired; get a new one from POST /v1/live/tickets');
}

export class LiveTickets {
  readonly #o: LiveTicketsOptions;

  constructor(options: LiveTicketsOptions) {
    this.#o = options;
  }

  /**
   * A ticket for `principal`'s next stream, good for ticketTtlMs or until the token expires,
   * whichever is first (the stream it opens closes at the token's expiry too). JWT_EXPIRED for a
   * token already past its expiry (the verifier allows clock skew); API_LIVE_TICKETS_LIMIT when the
   * user holds ticketsPerUserMax unused ones.
   */
  async issue(principal: VerifiedPrincipal): Promise<IssuedLiveTicket> {
    const nowMs = this.#o.clock.nowMs();
    const expiresAtMs = Math.min(nowMs + liveTicketLimits.ticketTtlMs, principal.tokenExpiresAtMs);
    if (expiresAtMs <= nowMs) throw new SdcError('JWT_EXPIRED', 'the token has expired; log in again');
    const ticket = Buffer.from(this.#o.random.bytes(liveTicketLimits.ticketBytes)).toString('base64url');
    await this.#hold(principal.name, ticket, nowMs, expiresAtMs);
    try {
      const stored: StoredTicket = {
        user: principal.name, role: principal.role, token_expires_at_ms: principal.tokenExpiresAtMs, expires_at_ms: expiresAtMs, token_generation: principal.tokenGeneration,
        ...(principal.tokenUserId === undefined ? {} : { token_user_id: principal.tokenUserId }),
        ...(principal.tokenIssuedAtS === undefined ? {} : { token_issued_at_s: principal.tokenIssuedAtS }),
      };
      await this.#o.kv.set(ticketKey(ticket), JSON.stringify(stored), { ttlMs: expiresAtMs - nowMs });
      return { ticket, expiresAtMs };
    } catch (error) {
      await this.#release(principal.name, ticket);
      throw error;
    }
  }

  /**
   * Spends a ticket: the principal it was issued to, with the token's expiry, when it is known,
   * unused and unexpired (API_LIVE_TICKET_INVALID otherwise), and its user still exists with its
   * role and is the token's account, not a later one of the same name (API_TOKEN_SUBJECT_INVALID
   * otherwise, as for a JWT) and has not had the token revoked
   * since (API_TOKEN_REVOKED). Spent even when refused.
   */
  async redeem(ticket: string): Promise<VerifiedPrincipal> {
    if (!ticketPattern.test(ticket)) throw invalidTicket();
    const raw = await this.#o.kv.take(ticketKey(ticket));
    if (raw === null) throw invalidTicket();
    const stored = parseStored(raw);
    if (stored === undefined) throw invalidTicket();
    await this.#release(stored.user, ticket);
    if (stored.expires_at_ms <= this.#o.clock.nowMs()) throw invalidTicket();
    const tokenGeneration = stored.token_generation ?? 0;
    const binding = { userId: stored.token_user_id, issuedAtS: stored.token_issued_at_s };
    await this.#o.requireSubject(stored.user, stored.role, tokenGeneration, binding);
    return {
      name: stored.user, role: stored.role, tokenExpiresAtMs: stored.token_expires_at_ms, tokenGeneration,
      ...(binding.userId === undefined ? {} : { tokenUserId: binding.userId }),
      ...(binding.issuedAtS === undefined ? {} : { tokenIssuedAtS: binding.issuedAtS }),
    };
  }

  /** Unused unexpired tickets held by `user` now, on the clock. */
  heldBy(user: string): Promise<number> {
    return this.#o.kv.expiringSetCount(heldKey(user), this.#o.clock.nowMs());
  }

  /**
   * Counts one more unused ticket, or refuses. Each ticket is counted on its own until its expiry
   * (a set scored by expiry, kv expiringSetAdd), so tickets that expire unused stop counting by
   * themselves; a refusal adds and extends nothing. A single counter with one TTL renewed by every
   * request kept a user who asked at least every 30 s refused for good once 16 tickets had expired
   * unused (review h11, finding 1). The check and the add are one atomic step, so two replicas
   * issuing at once never pass the bound together.
   */
  async #hold(user: string, ticket: string, nowMs: number, expiresAtMs: number): Promise<void> {
    const { added } = await this.#o.kv.expiringSetAdd(heldKey(user), heldMember(ticket), { nowMs, expiresAtMs, membersMax: liveTicketLimits.ticketsPerUserMax });
    if (added) return;
    const retryAfterS = Math.ceil(liveTicketLimits.ticketTtlMs / 1000);
    throw new SdcError('API_LIVE_TICKETS_LIMIT', `the user holds its maximum of ${liveTicketLimits.ticketsPerUserMax} unused live stream tickets; retry in ${retryAfterS} s`, {
      ticketsPerUserMax: liveTicketLimits.ticketsPerUserMax, retryAfterS,
    });
  }

  async #release(user: string, ticket: string): Promise<void> {
    await this.#o.kv.expiringSetRemove(heldKey(user), heldMember(ticket));
  }
}

/** The store's key of a ticket: its SHA-256, never the ticket. */
function ticketKey(ticket: string): string {
  return `sdc:live-ticket:${sha256Hex(ticket)}`;
}

/**
 * The user's set of unused tickets. A new name: the old key held a counter (a string), and a set
 * operation on it would be refused as another type until it expired.
 */
function heldKey(user: string): string {
  return `sdc:live-tickets-unused:${sha256Hex(user).slice(0, userHashHexChars)}`;
}

/** A ticket's member in its user's set: a part of its SHA-256 (never the ticket), enough to tell 16 apart. */
function heldMember(ticket: string): string {
  return sha256Hex(ticket).slice(0, heldMemberHexChars);
}

function parseStored(raw: string): StoredTicket | undefined {
  try {
    const value = JSON.parse(raw) as Partial<StoredTicket>;
    if (typeof value.user !== 'string' || !isRole(value.role)) return undefined;
    if (!Number.isSafeInteger(value.token_expires_at_ms) || !Number.isSafeInteger(value.expires_at_ms)) return undefined;
    if (value.token_generation !== undefined && !(Number.isSafeInteger(value.token_generation) && value.token_generation >= 0)) return undefined;
    if (value.token_user_id !== undefined && typeof value.token_user_id !== 'string') return undefined;
    if (value.token_issued_at_s !== undefined && !Number.isSafeInteger(value.token_issued_at_s)) return undefined;
    return value as StoredTicket;
  } catch {
    return undefined;
  }
}
