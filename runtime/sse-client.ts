import { request } from 'node:https';
import type { ClientRequest } from 'node:http';
import { SdcError } from '../core/errors/index.js';

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
