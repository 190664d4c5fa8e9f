import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { liveChannel } from '../bus-contract/streams.js';
import type { Clock, Scheduler, TimerHandle } from '../../core/ports/ports.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import type { VerifiedPrincipal } from './auth.js';
import type { ResyncEvent } from './live-publisher.js';
import { tokenSubjectLimits } from './token-subjects.js';

/**
 * Whether a stream's token still stands, and news of users that changed: AuthService. Without
 * it (a hub on its own, in tests) streams end only at expiry, when slow, or by closeUser.
 */
export interface LiveSubjects {
  /** Throws API_TOKEN_REVOKED or API_TOKEN_SUBJECT_INVALID when the token no longer stands; `fresh`: read the users table now. */
  recheck(viewer: LiveViewer, options: { fresh: boolean }): Promise<void>;
  /** Calls back with the name of a user some control plane changed (undefined: any may have); resolves with the unsubscribe. */
  watchSubjectChanges(onChanged: (name: string | undefined) => void): Promise<() => Promise<void>>;
}

export interface LiveHubOptions {
  readonly kv: KeyValueStore;
  readonly logger: Logger;
  /** Token expiry is judged on this clock, and the close at expiry is scheduled on this scheduler. */
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  /** Connected SSE clients per process; one more is refused with API_TOO_MANY_CLIENTS. */
  readonly clientsMax?: number;
  /** Streams one user may hold per process; one more is API_TOO_MANY_STREAMS (liveHubLimits). */
  readonly clientsPerUserMax?: number;
  /** Bytes queued in a client's socket before it is considered too slow and dropped. */
  readonly clientBufferBytesMax?: number;
  readonly subjects?: LiveSubjects;
  /** How often every stream's token is re-checked against the users table (default: the subject cache's TTL). */
  readonly recheckIntervalMs?: number;
  /** Users a notice may have re-checked at once (running or queued); more are dropped until one ends (liveHubLimits). */
  readonly noticeUsersPendingMax?: number;
}

/** Who opened a stream: the principal of its token (or ticket), with the token's expiry, generation and account. */
export type LiveViewer = VerifiedPrincipal;

/**
 * Why the server ended a stream (`event: dropped`, `{"reason":...}`). token_expired,
 * token_revoked, user_removed and subject_invalid end the session: log in again, do not reconnect.
 */
export type LiveDropReason = 'shutdown' | 'slow_client' | 'token_expired' | 'token_revoked' | 'user_removed' | 'subject_invalid';

/** The reason a stream is closed with when its token's re-check is refused with this code. */
const dropReasonOfCode: Readonly<Record<string, LiveDropReason>> = {
  API_TOKEN_REVOKED: 'token_revoked',
  // Removed, re-created under the same name, or holding a lower role than the token's.
  API_TOKEN_SUBJECT_INVALID: 'subject_invalid',
};

interface LiveClient {
  readonly id: number;
  readonly response: ServerResponse;
  readonly viewer: LiveViewer;
  expiryTimer: TimerHandle | undefined;
}

const messageBytesMax = 16 * 1024;

/** Defaults of the hub's options (each can be set per hub). */
export const liveHubLimits = Object.freeze({
  // Streams per process: each holds a socket and up to clientBufferBytesMax of memory.
  clientsMax: 100,
  // Streams per user per process: a few browser tabs; without it one user could take all 100.
  clientsPerUserMax: 5,
  // Unsent bytes before a client counts as too slow and is dropped: a client this far behind is not reading.
  clientBufferBytesMax: 256 * 1024,
  // Users whose streams a notice (sdc:cp:user-changed) has them re-check at once, running or
  // queued; a notice naming one more is dropped and counted (API_LIVE_RECHECK_NOTICES_DROPPED):
  // the periodic re-check covers its streams within recheckIntervalMs. Each running re-check
  // holds one users read (one pool connection, 10 by default on MySQL), and anyone who can
  // publish on the kv channel can send notices at its speed; real changes come one at a time.
  noticeUsersPendingMax: 4,
});

/**
 * Fans out live updates to Server-Sent Events clients. Every control-plane process publishes on
 * the kv channel and every process relays what it hears to its own clients, so an operator sees
 * changes made by any process. A client whose socket cannot keep up (more than
 * clientBufferBytesMax queued) gets a final `dropped` event and is disconnected, and so does a
 * client whose token expires (`token_expired`): at the expiry time, and in any case before it
 * would be sent anything after it.
 *
 * A client whose token no longer stands (revoked, its user removed or given another role) is
 * closed too, on every process: at once where the change was made (closeUser), at once on the
 * others when they hear its notice (LiveSubjects.watchSubjectChanges; each re-checks that user's
 * streams against the users table), and, should the notice be lost (pub/sub is at most once) or
 * the change be made in the database directly, at the next re-check of every stream, every
 * recheckIntervalMs (the subject cache's 5 s). Notices for one user are merged (one re-check
 * running, one queued) and at most noticeUsersPendingMax users wait: a flood of notices costs a
 * bounded number of users reads, and a dropped notice's streams wait for the periodic re-check.
 */
export class LiveHub {
  readonly #o: Required<Omit<LiveHubOptions, 'subjects'>> & Pick<LiveHubOptions, 'subjects'>;
  readonly #clients = new Map<number, LiveClient>();
  readonly #streamsByUser = new Map<string, number>();
  #nextId = 1;
  #unsubscribe: (() => Promise<void>) | undefined;
  #unsubscribeSubjects: (() => Promise<void>) | undefined;
  #recheckTimer: TimerHandle | undefined;
  /** Re-checks running now: stop() waits for them, so none touches the stores after it. */
  readonly #rechecks = new Set<Promise<void>>();
  /**
   * Notice re-checks per user (undefined: everyone, after a lost subscription), each running with
   * at most one more queued: notices heard while one runs are merged into that one more (it reads
   * after them). At most noticeUsersPendingMax users besides everyone.
   */
  readonly #noticeRechecks = new Map<string | undefined, { queued: boolean }>();
  #noticesDropped = 0;
  /** A notice was dropped and none taken since: the drop was logged already. */
  #droppingNotices = false;
  #sweeping = false;
  #running = false;

  constructor(options: LiveHubOptions) {
    this.#o = { ...liveHubLimits, recheckIntervalMs: tokenSubjectLimits.cacheTtlMs, ...options };
  }

  get clientCount(): number {
    return this.#clients.size;
  }

  /** Notices dropped since start because noticeUsersPendingMax users had a re-check pending. */
  get noticesDropped(): number {
    return this.#noticesDropped;
  }

  async start(): Promise<void> {
    if (this.#unsubscribe !== undefined) return;
    // Changes published while this process's subscription was down never reach it: its clients
    // are told to read their state again (the publisher's side of this is LivePublisher).
    const resync = (): void => {
      const event: ResyncEvent = { type: 'resync', reason: 'subscription_restored', at_ms: this.#o.clock.nowMs() };
      this.#o.logger.info('live subscription restored; clients told to resync');
      this.#broadcast(JSON.stringify(event));
    };
    this.#unsubscribe = await this.#o.kv.subscribe(liveChannel, (message) => this.#broadcast(message), { onResubscribed: resync });
    this.#running = true;
    const subjects = this.#o.subjects;
    if (subjects === undefined) return;
    this.#unsubscribeSubjects = await subjects.watchSubjectChanges((name) => this.#onNotice(name));
    this.#scheduleSweep();
  }

  async stop(): Promise<void> {
    this.#running = false;
    if (this.#recheckTimer !== undefined) this.#o.scheduler.cancel(this.#recheckTimer);
    this.#recheckTimer = undefined;
    const unsubscribe = this.#unsubscribe;
    const unsubscribeSubjects = this.#unsubscribeSubjects;
    this.#unsubscribe = undefined;
    this.#unsubscribeSubjects = undefined;
    if (unsubscribe !== undefined) await unsubscribe();
    if (unsubscribeSubjects !== undefined) await unsubscribeSubjects();
    while (this.#rechecks.size > 0) await Promise.all([...this.#rechecks]);
    for (const client of [...this.#clients.values()]) this.#close(client, 'shutdown');
  }

  /** Streams `user` holds on this process. */
  streamsOf(user: string): number {
    return this.#streamsByUser.get(user) ?? 0;
  }

  /** Throws API_TOO_MANY_STREAMS or API_TOO_MANY_CLIENTS when full; call before writing the response head. */
  reserve(user: string): void {
    if (this.streamsOf(user) >= this.#o.clientsPerUserMax) {
      throw new SdcError('API_TOO_MANY_STREAMS', `user holds its maximum of ${this.#o.clientsPerUserMax} live streams`, { streamsPerUserMax: this.#o.clientsPerUserMax });
    }
    if (this.#clients.size >= this.#o.clientsMax) throw new SdcError('API_TOO_MANY_CLIENTS', `live stream has its maximum of ${this.#o.clientsMax} clients`);
  }

  /** Takes over a response: writes the SSE head and keeps it until the client leaves, is dropped or its token expires or stops standing. */
  attach(response: ServerResponse, viewer: LiveViewer): void {
    this.reserve(viewer.name);
    const client: LiveClient = { id: this.#nextId++, response, viewer, expiryTimer: undefined };
    this.#clients.set(client.id, client);
    this.#streamsByUser.set(viewer.name, this.streamsOf(viewer.name) + 1);
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    response.write(`event: hello\ndata: {"client":${client.id}}\n\n`);
    response.on('close', () => this.#forget(client));
    const untilExpiryMs = viewer.tokenExpiresAtMs - this.#o.clock.nowMs();
    if (untilExpiryMs <= 0) this.#close(client, 'token_expired');
    else client.expiryTimer = this.#o.scheduler.schedule(untilExpiryMs, () => this.#onExpiryTimer(client));
  }

  /**
   * Closes every stream `user` holds on this process with a final `dropped` event naming `reason`
   * (their tokens were just revoked or the user removed, here). The other processes close theirs
   * when they hear of the change (the class comment says how).
   */
  closeUser(user: string, reason: 'token_revoked' | 'user_removed'): number {
    const theirs = [...this.#clients.values()].filter((client) => client.viewer.name === user);
    for (const client of theirs) this.#close(client, reason);
    if (theirs.length > 0) this.#o.logger.info({ code: reason === 'token_revoked' ? 'API_TOKEN_REVOKED' : 'API_TOKEN_SUBJECT_INVALID', user, streams: theirs.length, reason }, 'live streams closed: the user changed here');
    return theirs.length;
  }

  /** Resolves once every re-check started so far has ended (tests). */
  async rechecksSettled(): Promise<void> {
    while (this.#rechecks.size > 0) await Promise.all([...this.#rechecks]);
  }

  #track(recheck: Promise<void>): void {
    const tracked = recheck.catch((error: unknown) => { this.#o.logger.error({ err: error }, 'live stream re-check failed'); })
      .finally(() => { this.#rechecks.delete(tracked); });
    this.#rechecks.add(tracked);
  }

  /** A user (undefined: any) changed on some control plane: re-check their streams here, merged and bounded (#noticeRechecks). */
  #onNotice(name: string | undefined): void {
    if (!this.#running) return;
    // A user without streams here has nothing to re-check: no read, no place taken.
    if (name !== undefined && this.streamsOf(name) === 0) return;
    const pending = this.#noticeRechecks.get(name);
    if (pending !== undefined) {
      pending.queued = true;
      return;
    }
    const users = this.#noticeRechecks.size - (this.#noticeRechecks.has(undefined) ? 1 : 0);
    if (name !== undefined && users >= this.#o.noticeUsersPendingMax) {
      this.#noticesDropped += 1;
      // One line per burst: the first drop after a notice was last taken.
      if (!this.#droppingNotices) {
        this.#o.logger.warn({ code: 'API_LIVE_RECHECK_NOTICES_DROPPED', users_pending: users, dropped_total: this.#noticesDropped }, 'user change notices dropped: too many users being re-checked; the periodic re-check covers their streams');
      }
      this.#droppingNotices = true;
      return;
    }
    this.#droppingNotices = false;
    const state = { queued: false };
    this.#noticeRechecks.set(name, state);
    this.#track((async () => {
      try {
        do {
          state.queued = false;
          await this.#recheck(name, 'notice');
        } while (state.queued && this.#running);
      } finally {
        this.#noticeRechecks.delete(name);
      }
    })());
  }

  #scheduleSweep(): void {
    if (!this.#running) return;
    this.#recheckTimer = this.#o.scheduler.schedule(this.#o.recheckIntervalMs, () => {
      this.#recheckTimer = undefined;
      // One sweep at a time: a slow store must not stack them.
      if (this.#sweeping) {
        this.#scheduleSweep();
        return;
      }
      this.#sweeping = true;
      this.#track(this.#recheck(undefined, 'sweep').finally(() => {
        this.#sweeping = false;
        this.#scheduleSweep();
      }));
    });
  }

  /**
   * Re-checks the streams of `user` (every stream when undefined) against the users table, read
   * afresh once per user, and closes those whose token no longer stands with the reason of the
   * refusal's code, logged with it. A re-check that fails otherwise (the database unreachable)
   * keeps the streams, ends the pass at once (reading for the next user, or the next stream,
   * would only wait on the same database again) and is logged once
   * (API_LIVE_RECHECK_FAILED): the next sweep tries again. Once stop() was called, nothing more
   * is read (stop() waits for the read in flight only).
   */
  async #recheck(user: string | undefined, trigger: 'notice' | 'sweep'): Promise<void> {
    const subjects = this.#o.subjects;
    if (subjects === undefined) return;
    const byUser = new Map<string, LiveClient[]>();
    for (const client of this.#clients.values()) {
      if (user !== undefined && client.viewer.name !== user) continue;
      byUser.set(client.viewer.name, [...(byUser.get(client.viewer.name) ?? []), client]);
    }
    for (const [name, clients] of byUser) {
      const closed = new Map<string, number>();
      // The first read is fresh; the user's other streams are judged by its answer (the cache).
      let fresh = true;
      let failed: unknown;
      for (const client of clients) {
        if (!this.#running) break;
        if (!this.#clients.has(client.id)) continue;
        try {
          await subjects.recheck(client.viewer, { fresh });
          fresh = false;
        } catch (error) {
          const code = error instanceof SdcError ? error.code : undefined;
          const reason = code === undefined ? undefined : dropReasonOfCode[code];
          if (reason === undefined) {
            failed = error;
            break;
          }
          fresh = false;
          if (this.#close(client, reason)) closed.set(code!, (closed.get(code!) ?? 0) + 1);
        }
      }
      for (const [code, streams] of closed) {
        this.#o.logger.info({ code, user: name, streams, reason: dropReasonOfCode[code], trigger }, 'live streams closed: the user\'s token no longer stands');
      }
      if (failed !== undefined) {
        this.#o.logger.warn({ code: 'API_LIVE_RECHECK_FAILED', err: failed, user: name, trigger }, 'live stream re-check could not read the users; pass ended, streams kept until the next one');
        return;
      }
      if (!this.#running) return;
    }
  }

  #broadcast(message: string): void {
    if (message.length > messageBytesMax) return;
    let type = 'message';
    try {
      const parsed = JSON.parse(message) as { type?: unknown };
      if (typeof parsed.type === 'string' && /^[a-z_]{1,32}$/.test(parsed.type)) type = parsed.type;
    } catch {
      this.#o.logger.warn('live message is not JSON; dropped');
      return;
    }
    // One line of data: the message is compact JSON, which has no raw newlines.
    const frame = `event: ${type}\ndata: ${message}\n\n`;
    for (const client of [...this.#clients.values()]) {
      if (this.#closeIfExpired(client)) continue;
      if (client.response.writableLength > this.#o.clientBufferBytesMax) {
        this.#close(client, 'slow_client');
        continue;
      }
      client.response.write(frame);
    }
  }

  /** Closes a client whose token has expired by the clock; true if it did (or the client is gone). */
  #closeIfExpired(client: LiveClient): boolean {
    if (!this.#clients.has(client.id)) return true;
    if (client.viewer.tokenExpiresAtMs > this.#o.clock.nowMs()) return false;
    this.#close(client, 'token_expired');
    return true;
  }

  /** The expiry timer; against an injected clock it may fire early, and then waits again. */
  #onExpiryTimer(client: LiveClient): void {
    client.expiryTimer = undefined;
    if (this.#closeIfExpired(client)) return;
    client.expiryTimer = this.#o.scheduler.schedule(client.viewer.tokenExpiresAtMs - this.#o.clock.nowMs(), () => this.#onExpiryTimer(client));
  }

  #forget(client: LiveClient): boolean {
    if (!this.#clients.delete(client.id)) return false;
    if (client.expiryTimer !== undefined) this.#o.scheduler.cancel(client.expiryTimer);
    client.expiryTimer = undefined;
    const left = this.streamsOf(client.viewer.name) - 1;
    if (left > 0) this.#streamsByUser.set(client.viewer.name, left);
    else this.#streamsByUser.delete(client.viewer.name);
    return true;
  }

  /** Ends a client's stream with `event: dropped`; false when it was gone already. */
  #close(client: LiveClient, reason: LiveDropReason): boolean {
    if (!this.#forget(client)) return false;
    try {
      client.response.end(`event: dropped\ndata: {"reason":"${reason}"}\n\n`);
    } catch (error) {
      this.#o.logger.debug({ err: error }, 'live client already gone');
    }
    return true;
  }
}
