import type { FastifyInstance } from 'fastify';
import { SdcError } from '../../core/errors/index.js';
import type { TimerHandle } from '../../core/ports/ports.js';
import type { VirtualTime } from '../../core/time/virtual-time.js';
import type { FetchOutcome } from '../../core/tuf/updater.js';
import type { ArtifactFetcher, ArtifactResponse } from '../../agent/ota/download-ports.js';
import type { TufFetcher } from '../../agent/tuf/http-fetcher.js';
import type { OtaObserver } from './ota-observer.js';

/**
 * The simulated devices' network to the control plane's OTA routes: the real agent's fetch ports
 * (TUF metadata, and the artifact with Range and If-Range) answered in process by the simulated
 * control plane's own routes (Fastify's inject: its TUF repository, and its embedded blob store
 * behind the presigned URL the notice carries, SigV4 checked), with no socket. The artifact's body
 * comes chunk by chunk on virtual time at the scenario's rate, and the scenario's download cuts
 * apply to it: within a cut window a body breaks once the device holds `cutAtPercent` of the
 * artifact, and a new request finds no server at all. Metadata requests are answered at once and
 * are not cut (the cuts are on the artifact path). Each request is held as real work, so virtual
 * time waits for the control plane's answer and runs stay deterministic.
 */
export interface CutWindow {
  readonly startMs: number;
  readonly endMs: number;
  readonly cutAtPercent: number;
}

export interface SimFetchOptions {
  readonly deviceId: string;
  /** The control plane's routes; undefined while it is down (a request then finds no server). */
  readonly app: () => FastifyInstance | undefined;
  readonly time: VirtualTime;
  readonly cuts: readonly CutWindow[];
  readonly rate: { readonly bytesPerSecond: number; readonly chunkBytes: number };
  readonly observer: OtaObserver;
  readonly trace: (kind: string, detail: string) => void;
  /** Virtual time waits for this work (sim/run.ts holdTime). */
  readonly hold: (work: Promise<unknown>) => void;
}

interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: Uint8Array;
}

export class SimFetch implements TufFetcher, ArtifactFetcher {
  readonly #o: SimFetchOptions;

  constructor(options: SimFetchOptions) {
    this.#o = options;
  }

  /** TUF metadata, and the artifact on the TUF targets route when the notice carries no artifact URL (not cut: the cuts are the presigned path's). */
  async fetch(url: string, limits: { readonly bytesMax: number }, what: string): Promise<FetchOutcome> {
    if (new URL(url).pathname.startsWith('/v1/tuf/targets/')) {
      this.#o.observer.targetFetched(this.#o.deviceId);
      this.#o.trace('ota.target_get', this.#o.deviceId);
    }
    const answer = await this.#inject(new URL(url), {});
    if (answer === undefined) return { ok: false, error: new SdcError('TUF_DOWNLOAD_FAILED', `${what}: the control plane is down`) };
    if (answer.status !== 200) return { ok: false, status: answer.status, error: new SdcError('TUF_DOWNLOAD_FAILED', `${what}: HTTP ${answer.status}`, { status: answer.status }) };
    if (answer.body.length > limits.bytesMax) {
      return { ok: false, error: new SdcError('TUF_TOO_LARGE', `${what} exceeds its limit of ${limits.bytesMax} bytes`, { bytesMax: limits.bytesMax }) };
    }
    return { ok: true, bytes: answer.body };
  }

  /** The artifact: one GET, its body delivered on virtual time. */
  async get(url: URL, headers: Readonly<Record<string, string>>, signal: AbortSignal): Promise<ArtifactResponse> {
    const { deviceId, observer, time, trace } = this.#o;
    const startOffset = Number(/^bytes=(\d+)-$/.exec(headers['range'] ?? '')?.[1] ?? 0);
    const window = this.#cutAt(time.nowMs());
    const answer = window === undefined ? await this.#inject(url, headers) : undefined;
    if (signal.aborted) throw new SdcError('OTA_DOWNLOAD_FAILED', 'the request was abandoned before an answer came');
    observer.attempt(deviceId, { startOffset, status: answer?.status ?? 'unreachable', atMs: time.nowMs() });
    trace('ota.get', `${deviceId} from ${startOffset} ${answer?.status ?? 'unreachable'}`);
    if (answer === undefined) throw new Error('no server answered');
    const range = /^bytes (\d+)-\d+\/(\d+)$/.exec(answer.headers['content-range'] ?? '');
    const first = answer.status === 206 && range !== null ? Number(range[1]) : 0;
    const total = range !== null ? Number(range[2]) : answer.body.length;
    const declared = Number(answer.headers['content-length']);
    return {
      status: answer.status, etag: answer.headers['etag'], contentRange: answer.headers['content-range'],
      contentLength: Number.isFinite(declared) ? declared : undefined,
      ...this.#body(answer.body, first, total),
    };
  }

  /** The body chunk by chunk at the scenario's rate; a cut window breaks it at its percentage of the whole artifact. */
  #body(body: Uint8Array, first: number, total: number): Pick<ArtifactResponse, 'next' | 'destroy'> {
    const { time, rate, deviceId, observer, trace } = this.#o;
    const chunkMs = Math.max(1, Math.ceil((rate.chunkBytes * 1_000) / rate.bytesPerSecond));
    let delivered = 0;
    let ended: Error | undefined;
    let pending: { timer: TimerHandle; reject: (error: Error) => void } | undefined;
    return {
      next: () => {
        if (ended !== undefined) return Promise.reject(ended);
        if (delivered >= body.length) return Promise.resolve(undefined);
        return new Promise<Uint8Array | undefined>((resolve, reject) => {
          const timer = time.schedule(chunkMs, () => {
            pending = undefined;
            const position = first + delivered;
            const window = this.#cutAt(time.nowMs());
            // Cross-multiplied: integer percent without floats.
            if (window !== undefined && position * 100 >= window.cutAtPercent * total) {
              observer.cut(deviceId, position);
              trace('ota.cut', `${deviceId} at ${position}`);
              ended = new Error('the connection was cut');
              reject(ended);
              return;
            }
            const chunk = body.subarray(delivered, Math.min(body.length, delivered + rate.chunkBytes));
            delivered += chunk.length;
            resolve(chunk);
          });
          pending = { timer, reject };
        });
      },
      destroy: (reason) => {
        ended ??= reason ?? new Error('the body was stopped');
        if (pending === undefined) return;
        time.cancel(pending.timer);
        pending.reject(ended);
        pending = undefined;
      },
    };
  }

  async #inject(url: URL, headers: Readonly<Record<string, string>>): Promise<Answer | undefined> {
    const app = this.#o.app();
    if (app === undefined) return undefined;
    // The presigned URL's signature covers the host: the request names the one it was signed for.
    const work = app.inject({ method: 'GET', url: `${url.pathname}${url.search}`, headers: { ...headers, host: url.host } });
    this.#o.hold(work);
    let response: Awaited<typeof work>;
    try {
      response = await work;
    } catch {
      return undefined; // the control plane closing under the request: no answer, as a dropped connection
    }
    const single = (value: string | string[] | number | undefined) => (value === undefined ? undefined : String(Array.isArray(value) ? value[0] : value));
    return {
      status: response.statusCode,
      headers: { etag: single(response.headers['etag']), 'content-range': single(response.headers['content-range']), 'content-length': single(response.headers['content-length']) },
      // A view, not a copy: the answer is only read (each chunk is copied into the staging store as it is written).
      body: new Uint8Array(response.rawPayload.buffer, response.rawPayload.byteOffset, response.rawPayload.byteLength),
    };
  }

  #cutAt(nowMs: number): CutWindow | undefined {
    return this.#o.cuts.find((window) => nowMs >= window.startMs && nowMs < window.endMs);
  }
}
