import { randomUUID } from 'node:crypto';
import { SdcError } from '../core/errors/index.js';
import { httpsJson } from '../runtime/https-json.js';
import { openLiveStream, type SseEvent } from '../runtime/sse-client.js';
import { systemClock } from '../runtime/system.js';
import type { CliIo } from './command.js';
import { loadLogin, type StoredLogin } from './credentials.js';

/** The operator's API calls with the stored login: the server, its CA and the JWT. */
export interface ApiClient {
  readonly login: StoredLogin;
  get<T>(path: string): Promise<T>;
  /** Every POST carries an Idempotency-Key (a fresh one unless given), so a retried send is one command. */
  post<T>(path: string, body: unknown, idempotencyKey?: string): Promise<T>;
  /** PUT and DELETE are idempotent by themselves: no key. */
  put<T>(path: string, body: unknown): Promise<T>;
  delete<T>(path: string): Promise<T>;
  /** The live event stream (`/v1/live`); resolves with a close function. */
  live(onEvent: (event: SseEvent) => void, onEnd: (error?: Error) => void): Promise<{ close(): void }>;
}

const apiTimeoutMs = 30_000;

export async function apiClient(io: CliIo): Promise<ApiClient> {
  const login = await loadLogin(io.env, systemClock.nowMs());
  const url = (path: string) => new URL(path, login.server);
  return {
    login,
    async get<T>(path: string) {
      return (await httpsJson<T>({ method: 'GET', url: url(path), caPem: login.ca_pem, token: login.token, timeoutMs: apiTimeoutMs })).body;
    },
    async post<T>(path: string, body: unknown, idempotencyKey?: string) {
      return (await httpsJson<T>({
        method: 'POST', url: url(path), caPem: login.ca_pem, token: login.token, body, timeoutMs: apiTimeoutMs,
        headers: { 'idempotency-key': idempotencyKey ?? randomUUID() },
      })).body;
    },
    async put<T>(path: string, body: unknown) {
      return (await httpsJson<T>({ method: 'PUT', url: url(path), caPem: login.ca_pem, token: login.token, body, timeoutMs: apiTimeoutMs })).body;
    },
    async delete<T>(path: string) {
      return (await httpsJson<T>({ method: 'DELETE', url: url(path), caPem: login.ca_pem, token: login.token, timeoutMs: apiTimeoutMs })).body;
    },
    live(onEvent, onEnd) {
      // A one-time ticket, then the stream: the token never goes in the URL.
      return openLiveStream({ apiUrl: login.server, caPem: login.ca_pem, token: login.token, onEvent, onEnd });
    },
  };
}

/** A path segment from user input, encoded (an id with a slash must not reach another route). */
export function segment(value: string): string {
  if (value.length === 0 || value.length > 256) throw new SdcError('CLI_USAGE', 'an id must be 1 to 256 characters');
  return encodeURIComponent(value);
}

/** The one positional argument a command takes (`sdc device show ID`). */
export function onePositional(positionals: readonly string[], what: string): string {
  if (positionals.length !== 1) throw new SdcError('CLI_USAGE', `give exactly one ${what}`);
  return positionals[0]!;
}

/** Pages one list request may follow; with 500 items each, past any `--limit` a command allows. */
const listPagesMax = 100;
const listPageItemsMax = 500;

/** Up to `limit` items of a paged list route (`items`, `next_cursor`), following the cursor page by page; `path` may carry a query of its own. */
export async function getAllPages<T>(api: ApiClient, path: string, limit: number): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null | undefined;
  for (let page = 0; page < listPagesMax && items.length < limit; page++) {
    const answer = await api.get<{ items: T[]; next_cursor?: string | null }>(
      `${path}${path.includes('?') ? '&' : '?'}limit=${Math.min(listPageItemsMax, limit - items.length)}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    items.push(...answer.items);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return items;
}
