import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { SdcError } from '../../core/errors/index.js';
import type { ArtifactFetcher, ArtifactResponse, StagingStore } from './download-ports.js';

/**
 * The real agent's adapters of the download ports (download-ports.ts): GET over node's http and
 * https clients (no redirects followed, the pinned CA when given), and staging in files. What the
 * resumable downloader did itself before it took ports, unchanged.
 */
export function createNodeArtifactFetcher(options: { readonly caPem?: string } = {}): ArtifactFetcher {
  return {
    get: (url, headers, signal) => new Promise((resolve, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const request = send(url, { method: 'GET', headers: { ...headers }, ...(options.caPem === undefined ? {} : { ca: options.caPem }) }, (response) => {
        signal.removeEventListener('abort', onAbort);
        // Taken at once, in the same turn as the headers: see BodyQueue for why.
        resolve(nodeResponse(response, new BodyQueue(response)));
      });
      const onAbort = () => {
        request.destroy();
        reject(new SdcError('OTA_DOWNLOAD_FAILED', 'the request was abandoned before an answer came'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      request.on('error', (error) => {
        signal.removeEventListener('abort', onAbort);
        reject(new SdcError('OTA_DOWNLOAD_FAILED', error.message));
      });
      request.end();
    }),
  };
}

function nodeResponse(response: IncomingMessage, body: BodyQueue): ArtifactResponse {
  const declared = Number(response.headers['content-length']);
  return {
    status: response.statusCode ?? 0,
    etag: response.headers.etag,
    contentRange: response.headers['content-range'],
    contentLength: Number.isFinite(declared) ? declared : undefined,
    next: () => body.next(),
    destroy: (reason) => response.destroy(reason),
  };
}

/**
 * The body's bytes, taken from the socket as they arrive and held (bounded) until written.
 *
 * Why not `for await (const chunk of response)` after the headers: when a connection is closed
 * mid-body (a proxy's cut, a server's crash), node destroys the response with "aborted", and
 * destroying a stream discards what it had buffered but not yet handed out. A small body cut
 * arrives whole, with the close, while the caller is still writing the `.part.json` and opening
 * the file; the iterator then threw at once and every received byte was lost, so each retry
 * started from 0 again (docs/chaos.md, "Finding, the OTA cut"). Here a `data` listener is attached
 * in the same turn as the headers, so every byte node parsed is in this queue before the close is
 * seen, and the queue hands out all of it before it reports the interruption.
 * Backpressure: past `highWaterBytes` queued, the response is paused (what node then holds in its
 * own buffer may still be lost to a cut; it is downloaded again).
 */
class BodyQueue {
  static readonly highWaterBytes = 1024 * 1024;
  readonly #response: IncomingMessage;
  readonly #chunks: Buffer[] = [];
  #queuedBytes = 0;
  #end: 'complete' | Error | undefined;
  #wake: (() => void) | undefined;

  constructor(response: IncomingMessage) {
    this.#response = response;
    response.on('data', (chunk: Buffer) => {
      this.#chunks.push(chunk);
      this.#queuedBytes += chunk.length;
      if (this.#queuedBytes > BodyQueue.highWaterBytes) response.pause();
      this.#signal();
    });
    response.on('end', () => this.#finish('complete'));
    response.on('error', (error) => this.#finish(error));
    // A close without 'end' is a cut even where node reports no error.
    response.on('close', () => this.#finish(new Error('the connection closed before the end of the body')));
  }

  /** The next chunk; undefined at the end of a whole body; throws the interruption once every received byte was handed out. */
  async next(): Promise<Buffer | undefined> {
    for (;;) {
      const chunk = this.#chunks.shift();
      if (chunk !== undefined) {
        this.#queuedBytes -= chunk.length;
        if (this.#response.isPaused() && this.#queuedBytes <= BodyQueue.highWaterBytes / 2) this.#response.resume();
        return chunk;
      }
      if (this.#end === 'complete') return undefined;
      if (this.#end !== undefined) throw this.#end;
      await new Promise<void>((resolve) => { this.#wake = resolve; });
    }
  }

  #finish(end: 'complete' | Error): void {
    this.#end ??= end;
    this.#signal();
  }

  #signal(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** Staging in files, owner-only (0600), as the downloader always wrote them. */
export const nodeStagingStore: StagingStore = {
  async readText(path) {
    try {
      return await readFile(path, 'utf8');
    } catch {
      return undefined;
    }
  },
  async writeText(path, text) {
    await writeFile(path, text, { mode: 0o600 });
  },
  async size(path) {
    try {
      return (await stat(path)).size;
    } catch {
      return 0;
    }
  },
  async open(path, options) {
    const file = await open(path, options.truncate ? 'w' : 'r+', 0o600);
    if (options.truncate) await file.truncate(0);
    return {
      write: async (chunk, position) => { await file.write(chunk, 0, chunk.length, position); },
      sync: () => file.sync(),
      close: () => file.close(),
    };
  },
  async chunks(path) {
    try {
      await stat(path);
    } catch {
      return undefined;
    }
    return createReadStream(path) as AsyncIterable<Uint8Array>;
  },
  async rename(from, to) {
    await rename(from, to);
  },
  async remove(path) {
    await unlink(path).catch(() => undefined);
  },
  async ensureDirectory(path) {
    await mkdir(path, { recursive: true, mode: 0o700 });
  },
};
