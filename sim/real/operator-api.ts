import { SdcError } from '../../core/errors/index.js';
import { httpsJson } from '../../runtime/https-json.js';
import { systemClock } from '../../runtime/system.js';

/** Operator tokens live 15 minutes by default; a long run logs in again before this. */
const tokenRefreshMs = 10 * 60_000;

export interface OperatorLogin {
  /** Control plane base URL, https://HOST:PORT. */
  readonly url: string;
  readonly caPem: string;
  readonly admin: string;
  readonly password: string;
  /**
   * `sdc chaos run`'s expired-JWT fault: where a login's token comes from. Given the password
   * login, it may answer a token of its own (a short-lived one, issued by the control plane's
   * authority) instead.
   */
  readonly tokenSource?: (passwordLogin: () => Promise<string>) => Promise<string>;
}

/** The control plane's HTTPS API as the run's operator: logs in again before the token expires. */
export interface OperatorApi {
  readonly apiUrl: URL;
  readonly caPem: string;
  /** The current token (for the live stream's query string). */
  token(): string;
  call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T>;
  /** Calls refused 401 JWT_EXPIRED, each followed by a login and one retry. */
  expiredRefusals(): number;
  /** Logs in again now (`sdc chaos run` takes a short-lived token this way). */
  logInAgain(): Promise<void>;
}

/** A request refused because the token expired never reached the handler, so it is sent again once after a new login. */
function tokenExpired(error: unknown): boolean {
  return SdcError.is(error, 'HTTP_REFUSED') && error.details.status === 401 && error.details.serverCode === 'JWT_EXPIRED';
}

/** Step: log in as the run's operator. A refused login is SIM_REAL_SETUP_FAILED. */
export async function logInOperator(login: OperatorLogin): Promise<OperatorApi> {
  const apiUrl = new URL(login.url);
  let token = '';
  let tokenAtMs = 0;
  let expired = 0;
  const passwordLogin = async () => (await httpsJson<{ token: string }>({ method: 'POST', url: new URL('/v1/auth/login', apiUrl), caPem: login.caPem, body: { name: login.admin, password: login.password } })).body.token;
  const logIn = async () => {
    try {
      token = login.tokenSource === undefined ? await passwordLogin() : await login.tokenSource(passwordLogin);
      tokenAtMs = systemClock.nowMs();
    } catch (error) {
      throw new SdcError('SIM_REAL_SETUP_FAILED', `login as ${login.admin} at ${apiUrl.origin} failed: ${(error as Error).message}`, {}, { cause: error });
    }
  };
  await logIn();
  return {
    apiUrl, caPem: login.caPem, token: () => token, expiredRefusals: () => expired, logInAgain: logIn,
    async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
      if (systemClock.nowMs() - tokenAtMs > tokenRefreshMs) await logIn();
      const send = async () => (await httpsJson<T>({ method, url: new URL(path, apiUrl), caPem: login.caPem, token, ...(body === undefined ? {} : { body }) })).body;
      try {
        return await send();
      } catch (error) {
        if (!tokenExpired(error)) throw error;
        expired += 1;
        await logIn();
        return send();
      }
    },
  };
}
