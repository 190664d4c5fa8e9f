/**
 * The console's one way to the control plane's REST API (docs/api.md), same origin. The JWT lives
 * in this object only, never in localStorage or a cookie: a page reload or a closed tab logs out,
 * and a script injected elsewhere on the origin finds nothing stored to steal.
 */

/** A refusal of the API (its `{error: {code, message, trace_id}}`), or a network failure as `VIEWER_NETWORK`. */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  readonly traceId: string | undefined;
  constructor(code: string, message: string, status: number, traceId?: string) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
    this.traceId = traceId;
  }
}

export type Role = 'viewer' | 'operator' | 'approver' | 'admin';

export interface Session {
  readonly name: string;
  readonly role: Role;
  readonly token: string;
  /** From the token's `exp`; the console asks for the password again at that time. */
  readonly expiresAtMs: number;
}

/** Codes after which the token is of no more use: the console asks the operator to log in again. */
const sessionEndingCodes: ReadonlySet<string> = new Set(['API_UNAUTHENTICATED', 'API_TOKEN_SUBJECT_INVALID', 'JWT_EXPIRED', 'JWT_INVALID', 'JWT_SIGNATURE_INVALID']);

/** A request that has not answered after this long is given up, so no view waits forever. */
export const apiRequestTimeoutMs = 30_000;

export type Fetch = (input: string, init: RequestInit) => Promise<Response>;

export function isSessionEnding(error: unknown): boolean {
  return error instanceof ApiError && (error.status === 401 || sessionEndingCodes.has(error.code));
}

/** A JWT's claims, read without verifying (the server verifies; this only schedules the re-ask). */
function tokenClaims(token: string): { exp?: unknown; iat?: unknown } | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/')));
    return typeof claims === 'object' && claims !== null ? claims as { exp?: unknown; iat?: unknown } : undefined;
  } catch {
    return undefined;
  }
}

const finite = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);

/** The `exp` of a JWT in milliseconds (the server's clock). */
export function tokenExpiryMs(token: string): number | undefined {
  const exp = tokenClaims(token)?.exp;
  return finite(exp) ? exp * 1000 : undefined;
}

/**
 * When the token expires on this page's clock: its lifetime (`exp` - `iat`) from when it was
 * received. The server's `exp` alone would be wrong by however far this computer's clock is off
 * (too far ahead, and every new token would look expired at once). Without `iat`, the `exp`.
 */
export function tokenExpiryOnLocalClockMs(token: string, receivedAtMs: number): number | undefined {
  const claims = tokenClaims(token);
  if (finite(claims?.exp) && finite(claims?.iat) && claims.exp >= claims.iat) return receivedAtMs + (claims.exp - claims.iat) * 1000;
  return tokenExpiryMs(token);
}

export class ApiClient {
  #session: Session | undefined;
  readonly #fetch: Fetch;
  readonly #onSessionEnd: (reason: string) => void;

  constructor(options: { fetch?: Fetch; onSessionEnd: (reason: string) => void }) {
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#onSessionEnd = options.onSessionEnd;
  }

  get session(): Session | undefined {
    return this.#session;
  }

  async login(name: string, password: string, nowMs: number): Promise<Session> {
    const answer = await this.#request<{ token: string; role: Role }>('POST', '/v1/auth/login', { body: { name, password }, authenticated: false });
    const expiresAtMs = tokenExpiryOnLocalClockMs(answer.token, nowMs) ?? nowMs + 15 * 60_000;
    this.#session = { name, role: answer.role, token: answer.token, expiresAtMs };
    return this.#session;
  }

  logout(): void {
    this.#session = undefined;
  }

  get<T>(path: string): Promise<T> {
    return this.#request<T>('GET', path, {});
  }

  post<T>(path: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
    return this.#request<T>('POST', path, { body, headers });
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.#request<T>('PUT', path, { body });
  }

  /**
   * A binary answer (an artifact download) with its headers; an answer over `bytesMax` is refused
   * (VIEWER_DOWNLOAD_TOO_LARGE) rather than held. Refusals are read as JSON, as for every route.
   */
  async getBytes(path: string, bytesMax: number): Promise<{ bytes: Uint8Array<ArrayBuffer>; headers: Headers }> {
    const response = await this.#send('GET', path, { headers: { accept: 'application/octet-stream, application/json' } });
    if (!response.ok) await this.#refusal(response, true);
    const declared = Number(response.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > bytesMax) {
      await response.body?.cancel().catch(() => undefined);
      throw new ApiError('VIEWER_DOWNLOAD_TOO_LARGE', `the answer is ${declared} bytes, more than the ${bytesMax} this page keeps`, 0);
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (bytes.length > bytesMax) throw new ApiError('VIEWER_DOWNLOAD_TOO_LARGE', `the answer is ${bytes.length} bytes, more than the ${bytesMax} this page keeps`, 0);
    return { bytes, headers: response.headers };
  }

  async #send(method: string, path: string, options: { body?: unknown; headers?: Record<string, string>; authenticated?: boolean }): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (options.authenticated !== false) {
      if (this.#session === undefined) throw new ApiError('API_UNAUTHENTICATED', 'not logged in', 401);
      headers.authorization = `Bearer ${this.#session.token}`;
    }
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    try {
      return await this.#fetch(path, {
        method, headers, ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        signal: AbortSignal.timeout(apiRequestTimeoutMs), credentials: 'omit', cache: 'no-store',
      });
    } catch (error) {
      throw new ApiError('VIEWER_NETWORK', `the control plane did not answer: ${(error as Error).message}`, 0);
    }
  }

  /** Throws the API's refusal; a session-ending one also ends the session here. */
  async #refusal(response: Response, authenticated: boolean): Promise<never> {
    const body = await response.json().catch(() => undefined) as { error?: { code?: string; message?: string; trace_id?: string } } | undefined;
    const refusal = body?.error;
    const error = new ApiError(refusal?.code ?? `HTTP_${response.status}`, refusal?.message ?? response.statusText, response.status, refusal?.trace_id);
    if (authenticated && isSessionEnding(error)) {
      this.#session = undefined;
      this.#onSessionEnd(`${error.code}: ${error.message}`);
    }
    throw error;
  }

  async #request<T>(method: string, path: string, options: { body?: unknown; headers?: Record<string, string>; authenticated?: boolean }): Promise<T> {
    const response = await this.#send(method, path, options);
    if (!response.ok) await this.#refusal(response, options.authenticated !== false);
    return await response.json().catch(() => undefined) as T;
  }
}
