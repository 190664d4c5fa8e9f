import { Agent, request } from 'node:https';
import { SdcError } from '../core/errors/index.js';

export interface HttpsJsonRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string | URL;
  /** The only CA trusted for this call: the deployment's root (never the system store). */
  caPem: string;
  body?: unknown;
  /** Bearer token for the Authorization header. */
  token?: string;
  headers?: Readonly<Record<string, string>>;
  clientCert?: { certPem: string; keyPem: string };
  timeoutMs?: number;
  /** Answers above this size are refused while they stream in (default 4 MiB). */
  answerBytesMax?: number;
  /**
   * A connection of its own, closed after the answer, instead of one from the kept-alive pool: what
   * a device that calls once (enrollment) costs the server, which `sdc bench enroll` measures.
   */
  newConnection?: boolean;
  /** The pool the request's connection comes from (see keptAliveAgent); Node's global agent when absent. */
  agent?: Agent;
}

export interface HttpsJsonAnswer<T> {
  status: number;
  body: T;
}

export interface KeptAliveAgentOptions {
  /** Connections open at once to one origin; requests beyond wait in the agent for a free one. */
  readonly socketsMax: number;
  /** How long an idle connection is kept for the next request. */
  readonly idleTimeoutMs: number;
}

/**
 * A pool of kept-alive connections for a client that calls one API many times and waits between
 * its calls: Node 20's global agent closes a connection idle for 5 s and keeps at most 256 idle
 * ones, so a caller that waits longer (the bench's operator waits for each command's terminal
 * event, 10 s and more at 1,000 agents under load) or runs more at once pays a new TLS handshake
 * per request, on both ends: in `sdc bench roundtrip`, inside the services' own process (issue 17).
 * Every connection the pool may open may also stay idle (an idle cap below `socketsMax` would close
 * the surplus after each burst). Node shortens `idleTimeoutMs` to a second less than the server's
 * `Keep-Alive: timeout` hint, so the server does not close a connection just as a request reuses it.
 */
export function keptAliveAgent(options: KeptAliveAgentOptions): Agent {
  const { socketsMax, idleTimeoutMs } = options;
  if (!Number.isSafeInteger(socketsMax) || socketsMax < 1) throw new SdcError('PROTO_INVALID_ARGUMENT', 'socketsMax must be a positive integer');
  if (!Number.isSafeInteger(idleTimeoutMs) || idleTimeoutMs < 1) throw new SdcError('PROTO_INVALID_ARGUMENT', 'idleTimeoutMs must be a positive integer');
  return new Agent({ keepAlive: true, maxSockets: socketsMax, maxFreeSockets: socketsMax, timeout: idleTimeoutMs, scheduling: 'lifo' });
}

/**
 * Times a request is sent again after the kept-alive connection it went out on was reset before
 * any answer. Each try takes another pooled connection or a new one, so a few stale connections
 * in the pool are used up at most this many times; a fresh connection's reset is never retried.
 */
const staleConnectionRetriesMax = 3;

/** Transport errors of a kept-alive connection the server had already closed (Node: "socket hang up" is ECONNRESET too). */
const staleConnectionCodes = new Set(['ECONNRESET', 'EPIPE']);

/**
 * Whether sending the request twice does nothing more than sending it once (RFC 9110, 9.2.2): GET,
 * PUT and DELETE are; a POST only with an Idempotency-Key, which the API answers from its record.
 */
function repeatable(options: HttpsJsonRequest): boolean {
  if (options.method !== 'POST') return true;
  return Object.keys(options.headers ?? {}).some((name) => name.toLowerCase() === 'idempotency-key');
}

/**
 * One HTTPS request with a JSON answer, TLS 1.3, trusting only `caPem`. A non-2xx answer with our
 * error body becomes HTTP_REFUSED carrying the server's status and code in `details`; transport
 * failures are HTTP_UNREACHABLE. Used by the agent's enrollment, the demo and the benchmarks.
 *
 * A repeatable request (see `repeatable`) that fails with a reset on a reused keep-alive
 * connection, before any answer came, is sent again: the server closed that idle connection just
 * as the request went out (Node's documented race, `reusedSocket`), and a repeatable request may be
 * sent again whether or not the server saw it.
 * (`sdc bench roundtrip` at 500 agents ended on a `read ECONNRESET` from the API: issue 17.)
 */
export async function httpsJson<T>(options: HttpsJsonRequest): Promise<HttpsJsonAnswer<T>> {
  for (let retry = 0; ; retry += 1) {
    try {
      return await httpsJsonOnce<T>(options);
    } catch (error) {
      const stale = error instanceof StaleConnectionError;
      if (stale && retry < staleConnectionRetriesMax && repeatable(options)) continue;
      throw stale ? error.refusal : error;
    }
  }
}

/** A reset on a reused connection before any answer: `refusal` is what the caller gets when it is not sent again. */
class StaleConnectionError extends Error {
  constructor(readonly refusal: SdcError) {
    super(refusal.message);
  }
}

async function httpsJsonOnce<T>(options: HttpsJsonRequest): Promise<HttpsJsonAnswer<T>> {
  const url = typeof options.url === 'string' ? new URL(options.url) : options.url;
  if (url.protocol !== 'https:') throw new SdcError('HTTP_UNREACHABLE', `${url.origin} is not https`);
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const timeoutMs = options.timeoutMs ?? 15_000;
  const answerBytesMax = options.answerBytesMax ?? 4 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(url, {
      method: options.method, ca: options.caPem, minVersion: 'TLSv1.3', timeout: timeoutMs,
      headers: {
        accept: 'application/json',
        ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
        ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
        ...options.headers,
      },
      ...(options.clientCert ? { cert: options.clientCert.certPem, key: options.clientCert.keyPem } : {}),
      ...(options.newConnection === true ? { agent: false } : options.agent === undefined ? {} : { agent: options.agent }),
    }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > answerBytesMax) {
          req.destroy(new SdcError('HTTP_ANSWER_TOO_LARGE', `answer from ${url.pathname} exceeds ${answerBytesMax} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = text.length === 0 ? undefined : JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        if (status >= 200 && status < 300) {
          if (parsed === undefined && text.length > 0 && !/^text\//.test(String(res.headers['content-type']))) {
            reject(new SdcError('HTTP_ANSWER_INVALID', `${url.pathname} answered ${status} with a body that is not JSON`));
            return;
          }
          resolve({ status, body: (parsed ?? text) as T });
          return;
        }
        const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
        const code = typeof error?.code === 'string' ? error.code : `HTTP_${status}`;
        const message = typeof error?.message === 'string' ? error.message : 'no error body';
        reject(new SdcError('HTTP_REFUSED', `${options.method} ${url.pathname} refused with ${code}: ${message}`, { status, serverCode: code }));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new SdcError('HTTP_UNREACHABLE', `no answer from ${url.origin} within ${timeoutMs} ms`)));
    req.on('error', (error) => {
      if (SdcError.is(error)) {
        reject(error);
        return;
      }
      const refusal = new SdcError('HTTP_UNREACHABLE', `${url.origin}: ${error.message}`, {}, { cause: error });
      const code = (error as NodeJS.ErrnoException).code;
      reject(req.reusedSocket && !answered && code !== undefined && staleConnectionCodes.has(code) ? new StaleConnectionError(refusal) : refusal);
    });
    req.end(payload);
  });
}
