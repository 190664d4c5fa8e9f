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

export interface KeyValueStore {
  get(key: string): Promise<string | null>;
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
  /** Returns how many subscribers received the message (at most once, only those subscribed now). */
  publish(channel: string, message: string): Promise<number>;
  /** Resolves once subscribed; the result unsubscribes this handler. */
  subscribe(channel: string, handler: MessageHandler, options?: SubscribeOptions): Promise<() => Promise<void>>;
  close(): Promise<void>;
}
