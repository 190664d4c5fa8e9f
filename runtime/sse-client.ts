import { request } from 'node:https';
import type { ClientRequest } from 'node:http';
import { SdcError } from '../core/errors/index.js';
import { httpsJson } from './https-json.js';

export interface SseEvent {
  event: string;
  data: string;
}

/**
 * A minimal Server-Sent Events client over HTTPS with a pinned CA, for the demo and benchmarks
 * (the browser's EventSource does this for the viewer). Lines longer than `lineBytesMax` end
 * the stream: the control plane sends one compact JSON object per event.
 */
export function openSse(options: { url: string | URL; caPem: string; onEvent: (event: SseEvent) => void; onEnd?: (error?: Error) => void; lineBytesMax?: number }): Promise<{ close(): void }> {
  const lineBytesMax = options.lineBytesMax ?? 1024 * 1024;
  return new Promise((resolve, reject) => {
    let req: ClientRequest | undefined = undefined;
    req = request(options.url, { method: 'GET', ca: options.caPem, minVersion: 'TLSv1.3', headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new SdcError('HTTP_REFUSED', `live stream answered ${res.statusCode}`, { status: res.statusCode ?? 0 }));
        res.resume();
        return;
      }
      resolve({ close: () => req?.destroy() });
      let buffer = '';
      let event = 'message';
      let data: string[] = [];
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        if (buffer.length > lineBytesMax && !buffer.includes('\n')) {
          req?.destroy(new SdcError('HTTP_ANSWER_TOO_LARGE', `an event line exceeds ${lineBytesMax} bytes`));
          return;
        }
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, '');
          buffer = buffer.slice(newline + 1);
          if (line === '') {
            if (data.length > 0) options.onEvent({ event, data: data.join('\n') });
            event = 'message';
            data = [];
          } else if (line.startsWith('event:')) {
            event = line.slice(6).trim();
          } else if (line.startsWith('data:')) {
            data.push(line.slice(5).replace(/^ /, ''));
          }
        }
      });
      res.on('end', () => options.onEnd?.());
      res.on('error', (error) => options.onEnd?.(error));
    });
    req.on('error', (error) => {
      reject(error);
      options.onEnd?.(error);
    });
    req.end();
  });
}

export interface LiveStreamOptions {
  /** The control plane's API origin. */
  readonly apiUrl: string | URL;
  readonly caPem: string;
  /** The operator's JWT: sent in the Authorization header of the ticket request, never in a URL. */
  readonly token: string;
  readonly onEvent: (event: SseEvent) => void;
  readonly onEnd?: (error?: Error) => void;
}

/** How long the ticket request may take; the ticket itself is good for 30 s (liveTicketLimits). */
const liveTicketRequestTimeoutMs = 15_000;

/**
 * The control plane's live stream (`/v1/live`, docs/api.md "Live updates"), opened the one way
 * every client of ours opens it: a one-time ticket from `POST /v1/live/tickets` (the token in the
 * header), then `GET /v1/live?ticket=`. No token goes in a URL, where proxies and logs keep it
 * (docs/security/threat-model.md). A ticket opens one stream: a reconnect calls this again.
 */
export async function openLiveStream(options: LiveStreamOptions): Promise<{ close(): void }> {
  const issued = await httpsJson<{ ticket: string }>({
    method: 'POST', url: new URL('/v1/live/tickets', options.apiUrl), caPem: options.caPem, token: options.token, timeoutMs: liveTicketRequestTimeoutMs,
  });
  return openSse({
    url: new URL(`/v1/live?ticket=${encodeURIComponent(issued.body.ticket)}`, options.apiUrl), caPem: options.caPem,
    onEvent: options.onEvent, ...(options.onEnd === undefined ? {} : { onEnd: options.onEnd }),
  });
}
