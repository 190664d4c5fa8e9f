import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { SdcError } from '../../core/errors/index.js';
import type { Scheduler } from '../../core/ports/ports.js';
import type { FetchOutcome } from '../../core/tuf/updater.js';
import { readBoundedBody, type BodyLimits } from './bounded-body.js';

/** Fetches one URL for the TUF workflow; the driver passes the limits of each step. */
export interface TufFetcher {
  fetch(url: string, limits: BodyLimits, what: string): Promise<FetchOutcome>;
}

export interface HttpFetcherOptions {
  readonly scheduler: Scheduler;
  /** Extra CA certificates (PEM) for https repositories, beside the system ones. */
  readonly caPem?: string;
}

/**
 * GET over http or https with node's client: one request, no redirects followed (a redirect is
 * an answer we did not ask for, refused as TUF_DOWNLOAD_FAILED with its status), a declared
 * Content-Length above the limit refused before reading a byte, the body read by readBoundedBody.
 * Never rejects: every failure is a FetchOutcome with a typed error.
 */
export function createHttpFetcher(options: HttpFetcherOptions): TufFetcher {
  return {
    async fetch(url, limits, what) {
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        return failed(new SdcError('TUF_DOWNLOAD_FAILED', `${what}: not a URL: ${url}`));
      }
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
        return failed(new SdcError('TUF_DOWNLOAD_FAILED', `${what}: only http and https URLs are fetched, not ${parsed.protocol}`));
      }
      try {
        const response = await startRequest(parsed, limits, options, what);
        return await readResponse(response, limits, options.scheduler, what);
      } catch (error) {
        if (error instanceof SdcError) return failed(error);
        return failed(new SdcError('TUF_DOWNLOAD_FAILED', `${what}: ${(error as Error).message}`));
      }
    },
  };
}

function failed(error: SdcError, status?: number): FetchOutcome {
  return status === undefined ? { ok: false, error } : { ok: false, status, error };
}

/** Resolves with the response headers, or rejects; waiting for them counts against the idle limit. */
function startRequest(url: URL, limits: BodyLimits, options: HttpFetcherOptions, what: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const request = send(url, { method: 'GET', ...(options.caPem === undefined ? {} : { ca: options.caPem }) }, (response) => {
      options.scheduler.cancel(headerTimer);
      resolve(response);
    });
    const headerTimer = options.scheduler.schedule(limits.idleTimeoutMs, () => {
      request.destroy();
      reject(new SdcError('TUF_DOWNLOAD_TIMEOUT', `${what}: no response within ${limits.idleTimeoutMs} ms`, { limitMs: limits.idleTimeoutMs }));
    });
    request.on('error', (error) => {
      options.scheduler.cancel(headerTimer);
      reject(new SdcError('TUF_DOWNLOAD_FAILED', `${what}: ${error.message}`));
    });
    request.end();
  });
}

async function readResponse(response: IncomingMessage, limits: BodyLimits, scheduler: Scheduler, what: string): Promise<FetchOutcome> {
  const status = response.statusCode ?? 0;
  if (status !== 200) {
    response.destroy();
    return failed(new SdcError('TUF_DOWNLOAD_FAILED', `${what}: HTTP ${status}`, { status }), status);
  }
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > limits.bytesMax) {
    response.destroy();
    return failed(new SdcError('TUF_TOO_LARGE', `${what} declares ${declared} bytes, above its limit of ${limits.bytesMax}`,
      { bytesMax: limits.bytesMax, declared }));
  }
  return { ok: true, bytes: await readBoundedBody(response, limits, scheduler, what) };
}
