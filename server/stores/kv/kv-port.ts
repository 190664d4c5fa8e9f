/**
 * The key/value port: strings with optional TTL, counters, and fire-and-forget pub/sub (after
 * Redis). Used for short-lived state shared between processes: rate-limit counters, nonces,
 * presence, and change notifications. Nothing here is durable; durable state lives in SQL.
 */

export interface SetOptions {
  readonly ttlMs?: number;
  /** Only write if the key does not exist (SET NX). */
  readonly onlyIfAbsent?: boolean;
}

export type MessageHandler = (message: string) => void;

export interface SubscribeOptions {
  /**
   * Called when the subscription was lost (the connection dropped) and is back: messages
   * published meanwhile were not received, so a listener that keeps state from them must read
   * it again. Never called by a store whose subscriptions cannot be lost (the in-process ones).
   */
  readonly onResubscribed?: () => void;
}

/** expiringSetAdd's times and bound; the times are on the caller's clock (see expiringSetAdd). */
export interface ExpiringSetAddOptions {
  /** Now, on the caller's clock: members expiring at or before it are dropped first. */
  readonly nowMs: number;
  /** When the new member stops counting, on the same clock; after nowMs. */
  readonly expiresAtMs: number;
  /** The member is added only while fewer than this many unexpired members are there. */
  readonly membersMax: number;
}

export interface ExpiringSetAddResult {
  /** False: the set held membersMax unexpired members, and nothing was added or extended. */
  readonly added: boolean;
  /** Unexpired members after the call (the new one included when added). */
  readonly members: number;
}

/** getBounded's answer: the value, none, or only the size of a value above the bound (never read whole). */
export type BoundedValue =
  | { readonly state: 'value'; readonly value: string }
  | { readonly state: 'absent' }
  | { readonly state: 'tooLarge'; readonly bytes: number };

export interface KeyValueStore {
  get(key: string): Promise<string | null>;
  /**
   * The value only when it is at most `bytesMax` bytes (UTF-8, as Redis STRLEN counts), in one
   * atomic step (one round trip on Redis): a larger value is reported by its size and never
   * crosses the connection. For a key others may write and the reader must not be made to load a
   * value up to the server's own limit (512 MB on Redis): the gateways' CRL record, review h13.
   * STORE_INVALID_ARGUMENT unless bytesMax is a non-negative safe integer.
   */
  getBounded(key: string, bytesMax: number): Promise<BoundedValue>;
  /**
   * Delete-if-larger, atomically: removes the key only when its value is more than `bytesMax`
   * bytes. True if removed. Replaces a too-large value without sending it back (a compareAndSet
   * would need it as `expected`), and never removes a value within the bound another writer put
   * there meanwhile. STORE_INVALID_ARGUMENT as getBounded.
   */
  deleteIfLarger(key: string, bytesMax: number): Promise<boolean>;
  /** True if written; false only when onlyIfAbsent found the key present. A write without ttlMs removes any TTL. */
  set(key: string, value: string, opts?: SetOptions): Promise<boolean>;
  /**
   * Compare-and-set, atomically: writes `value` (with `ttlMs`, else without a TTL) only when the
   * key exists and holds exactly `expected`. True if written. A check then a write would let
   * another writer's value land between the two and be overwritten.
   */
  compareAndSet(key: string, expected: string, value: string, opts?: { readonly ttlMs?: number }): Promise<boolean>;
  /**
   * Delete-if-equal, atomically: removes the key only when it holds exactly `expected`. True if
   * removed. A read then a delete would remove a value another writer put there between the two
   * (presence: a new session's record removed by the old session's timeout).
   */
  deleteIfEqual(key: string, expected: string): Promise<boolean>;
  /**
   * Get-and-delete, atomically (Redis GETDEL, 6.2 and later): the value, which is removed, or null
   * when the key is missing or expired. Of several takers of one key exactly one gets the value,
   * in this process or any other sharing the store: a single-use credential (a live stream
   * ticket, server/control-plane/live-tickets.ts) is spent once. A get then a del would let two
   * takers both read it before either deleted it.
   */
  take(key: string): Promise<string | null>;
  /** True if the key existed. */
  del(key: string): Promise<boolean>;
  /** Adds `by` (default 1) to an integer value, creating it at 0; STORE_CONFLICT if the value is not an integer. */
  incr(key: string, by?: number): Promise<number>;
  /** True if the key exists and now expires in ttlMs. */
  expire(key: string, ttlMs: number): Promise<boolean>;
  /** Remaining milliseconds, or null when the key is missing or has no TTL. */
  ttlMs(key: string): Promise<number | null>;
  /**
   * A bounded set of members that expire one by one (a Redis sorted set scored by expiry), in one
   * atomic step: drops the members expired at `nowMs`, then adds `member` (or moves its expiry)
   * only when fewer than `membersMax` remain. A refused add changes nothing but the pruning, so
   * asking again and again never keeps anything alive: a count with one TTL renewed by every
   * request would (server/control-plane/live-tickets.ts, review h11 finding 1). Expiry is judged
   * on the caller's clock, passed in, so virtual time moves it on every adapter; the key's own TTL
   * (until its last member's expiry) only collects it. STORE_CONFLICT when the key holds another type.
   */
  expiringSetAdd(key: string, member: string, opts: ExpiringSetAddOptions): Promise<ExpiringSetAddResult>;
  /** Removes `member` from an expiring set; true if it was there (expired or not). */
  expiringSetRemove(key: string, member: string): Promise<boolean>;
  /** Members of an expiring set that expire after `nowMs` (the caller's clock); 0 for a missing key. */
  expiringSetCount(key: string, nowMs: number): Promise<number>;
  /** Returns how many subscribers received the message (at most once, only those subscribed now). */
  publish(channel: string, message: string): Promise<number>;
  /** Resolves once subscribed; the result unsubscribes this handler. */
  subscribe(channel: string, handler: MessageHandler, options?: SubscribeOptions): Promise<() => Promise<void>>;
  close(): Promise<void>;
}
