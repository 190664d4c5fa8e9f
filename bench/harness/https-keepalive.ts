import { Agent, request } from 'node:https';
import { SdcError } from '../../core/errors/index.js';

/**
 * HTTPS JSON requests over kept-alive connections, as k6 reuses a VU's connections: without it
 * every poll of the API scenario pays a TLS handshake, and at 10 commands a second the harness's
 * own handshakes become most of the server's load. TLS 1.3, trusting only the deployment's CA.
 */
export interface KeepAliveClient {
  json<T>(method: 'GET' | 'POST', url: URL, options: { token: string; body?: unknown; headers?: Record<string, string>; timeoutMs: number }): Promise<T>;
  close(): void;
}

/** Answers bigger than this are refused while they stream in: a command view is a few KiB. */
const answerBytesMax = 4 * 1024 * 1024;

export function keepAliveClient(options: { caPem: string; maxSockets: number }): KeepAliveClient {
  const agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets, ca: options.caPem, minVersion: 'TLSv1.3' });
  return {
    json: <T>(method: 'GET' | 'POST', url: URL, call: { token: string; body?: unknown; headers?: Record<string, string>; timeoutMs: number }) => new Promise<T>((resolve, reject) => {
      const payload = call.body === undefined ? undefined : JSON.stringify(call.body);
      const req = request(url, {
        method, agent, timeout: call.timeoutMs,
        headers: { accept: 'application/json', authorization: `Bearer ${call.token}`, ...(payload === undefined ? {} : { 'content-type': 'application/json' }), ...call.headers },
      }, (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > answerBytesMax) req.destroy(new SdcError('HTTP_ANSWER_TOO_LARGE', `answer from ${url.pathname} exceeds ${answerBytesMax} bytes`));
          else chunks.push(chunk);
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          let parsed: unknown;
          try { parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { parsed = undefined; }
          if (status >= 200 && status < 300 && parsed !== undefined) { resolve(parsed as T); return; }
          const code = (parsed as { error?: { code?: unknown } } | undefined)?.error?.code;
          reject(new SdcError('HTTP_REFUSED', `${method} ${url.pathname} answered ${status}`, { status, serverCode: typeof code === 'string' ? code : `HTTP_${status}` }));
        });
      });
      req.on('timeout', () => req.destroy(new SdcError('HTTP_UNREACHABLE', `${method} ${url.pathname}: no answer in ${call.timeoutMs} ms`)));
      req.on('error', (error) => reject(SdcError.is(error) ? error : new SdcError('HTTP_UNREACHABLE', `${method} ${url.pathname}: ${error.message}`)));
      req.end(payload);
    }),
    close: () => agent.destroy(),
  };
}
