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
}

/** The control plane's HTTPS API as the run's operator: logs in again before the token expires. */
export interface OperatorApi {
  readonly apiUrl: URL;
  readonly caPem: string;
  /** The current token (for the live stream's query string). */
  token(): string;
  call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T>;
}

/** Step: log in as the run's operator. A refused login is SIM_REAL_SETUP_FAILED. */
export async function logInOperator(login: OperatorLogin): Promise<OperatorApi> {
  const apiUrl = new URL(login.url);
  let token = '';
  let tokenAtMs = 0;
  const logIn = async () => {
    try {
      token = (await httpsJson<{ token: string }>({ method: 'POST', url: new URL('/v1/auth/login', apiUrl), caPem: login.caPem, body: { name: login.admin, password: login.password } })).body.token;
      tokenAtMs = systemClock.nowMs();
    } catch (error) {
      throw new SdcError('SIM_REAL_SETUP_FAILED', `login as ${login.admin} at ${apiUrl.origin} failed: ${(error as Error).message}`, {}, { cause: error });
    }
  };
  await logIn();
  return {
    apiUrl, caPem: login.caPem, token: () => token,
    async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
      if (systemClock.nowMs() - tokenAtMs > tokenRefreshMs) await logIn();
      return (await httpsJson<T>({ method, url: new URL(path, apiUrl), caPem: login.caPem, token, ...(body === undefined ? {} : { body }) })).body;
    },
  };
}
