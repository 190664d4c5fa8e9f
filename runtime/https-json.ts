import { request } from 'node:https';
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
}

export interface HttpsJsonAnswer<T> {
  status: number;
  body: T;
}

/**
 * One HTTPS request with a JSON answer, TLS 1.3, trusting only `caPem`. A non-2xx answer with our
 * error body becomes HTTP_REFUSED carrying the server's status and code in `details`; transport
 * failures are HTTP_UNREACHABLE. Used by the agent's enrollment, the demo and the benchmarks.
 */
export async function httpsJson<T>(options: HttpsJsonRequest): Promise<HttpsJsonAnswer<T>> {
  const url = typeof options.url === 'string' ? new URL(options.url) : options.url;
  if (url.protocol !== 'https:') throw new SdcError('HTTP_UNREACHABLE', `${url.origin} is not https`);
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const timeoutMs = options.timeoutMs ?? 15_000;
  const answerBytesMax = options.answerBytesMax ?? 4 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: options.method, ca: options.caPem, minVersion: 'TLSv1.3', timeout: timeoutMs,
      headers: {
        accept: 'application/json',
        ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
        ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
        ...options.headers,
      },
      ...(options.clientCert ? { cert: options.clientCert.certPem, key: options.clientCert.keyPem } : {}),
    }, (res) => {
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
    req.on('error', (error) => reject(SdcError.is(error) ? error : new SdcError('HTTP_UNREACHABLE', `${url.origin}: ${error.message}`, {}, { cause: error })));
    req.end(payload);
  });
}
