import { createHash } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';
import type { Clock, Scheduler, TimerHandle } from '../../core/ports/ports.js';
import type { ArtifactFetcher, ArtifactResponse, StagingStore } from './download-ports.js';
import { createNodeArtifactFetcher, nodeStagingStore } from './node-download-adapters.js';

/**
 * A download that survives cut connections (issue 10, "Downloads resume"), for artifacts whose
 * length and SHA-256 are known in advance (from signed TUF metadata). The bytes go to
 * `<destination>.part`, with `<destination>.part.json` recording the expected digest and the
 * server's ETag; the file appears at `destination` only when whole and verified.
 *
 * Per attempt, with a partial file of N bytes and an ETag: `Range: bytes=N-` and `If-Range: <ETag>`.
 * - 206 continues only if Content-Range is exactly `bytes N-(L-1)/L` for the expected length L and
 *   the ETag is unchanged; anything else (another range, `/*`, a 206 to a request without Range)
 *   drops the partial, and the next attempt starts again from zero: a lying server never gets its
 *   bytes spliced in, and a proxy or CDN that answers a range oddly once does not fail the update.
 * - 200 means the server sends the whole object (it ignored the range, or If-Range saw a changed
 *   object): start again from zero, so a changed object is never spliced onto the old bytes.
 * - 416 means the partial no longer fits the object: drop it and start again from zero.
 * A cut connection or a stall (idle limit) keeps the partial and tries again. Only attempts that
 * brought no new bytes count against `attemptsWithoutProgressMax`, and one that did resets the
 * wait: a link that cuts every connection after a few KB (a proxy's limit_data, a flaky mobile
 * network) still delivers an artifact of any size, at its pace, within `totalTimeoutMs`. Counting
 * every attempt (as before) made an artifact over about 20 cuts' worth impossible on such a link,
 * and the doubling wait made each later piece slower (issue 11's OTA-cut scenario found it). New
 * bytes means past the furthest point any earlier attempt reached, so a server that restarts
 * every answer from zero (200) and cuts it again is not progress.
 * Never more than L bytes are written (OTA_DOWNLOAD_TOO_LARGE on the first byte beyond: an endless
 * response costs nothing — the failure mender #1632 describes), and the whole download has a total
 * deadline. At the end, length and SHA-256 are checked (OTA_DOWNLOAD_DIGEST_MISMATCH, partial dropped).
 * A mismatch in a file that was resumed (bytes of two responses, or a partial left by an earlier
 * run whose last writes a power loss undid before they were synced) is not proof the object is
 * wrong: the partial is dropped and the object fetched again from zero. A mismatch in a file that
 * one response brought whole is the failure. Each such restart from zero (a range anomaly, a 416, a
 * resumed mismatch) counts against `attemptsWithoutProgressMax` (restartsFromZero below), so an
 * object that never verifies, or a server that answers every range oddly, ends the download.
 * The GETs and the files go through ports (download-ports.ts): HTTP and files by default, the
 * simulator's in-process server and memory on virtual time.
 */
export interface ResumableDownloadOptions {
  readonly url: string;
  readonly destination: string;
  readonly expected: { readonly length: number; readonly sha256: string };
  readonly limits: {
    readonly idleTimeoutMs: number;
    readonly totalTimeoutMs: number;
    /** Requests in a row that brought no new bytes (the first included); one that did starts the count again. */
    readonly attemptsWithoutProgressMax: number;
  };
  readonly scheduler: Scheduler;
  readonly clock: Clock;
  /** Wait before the next attempt after a cut (doubles after each attempt without progress, at most 30 s; back to this after progress). */
  readonly retryDelayMs?: number;
  /** For the default fetcher (HTTPS with the pinned CA); ignored when `fetcher` is given. */
  readonly caPem?: string;
  /** The GETs; default node's http/https client. */
  readonly fetcher?: ArtifactFetcher;
  /** The partial, its state file and the finished artifact; default files. */
  readonly staging?: StagingStore;
  /** Aborts the download (e.g. the rollout was cancelled): the partial is kept for a later try. */
  readonly signal?: AbortSignal;
}

export interface ResumableDownloadResult {
  readonly length: number;
  readonly sha256: string;
  /** Requests made; the offsets each one started from (0 for a fresh start). */
  readonly attempts: number;
  readonly startOffsets: readonly number[];
}

interface PartState {
  readonly sha256: string;
  readonly length: number;
  readonly etag: string | undefined;
}

interface DownloadIo {
  readonly fetcher: ArtifactFetcher;
  readonly staging: StagingStore;
}

/** What one attempt ended with: done (all bytes on disk), or a retryable interruption. */
type AttemptEnd =
  | { kind: 'complete'; writeFrom: number }
  | { kind: 'interrupted'; error: SdcError }
  /** The partial was dropped (the answer did not fit it): the next attempt starts from zero. */
  | { kind: 'restart'; error: SdcError };

export async function downloadResumable(options: ResumableDownloadOptions): Promise<ResumableDownloadResult> {
  const expectedSha = options.expected.sha256.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(expectedSha) || !Number.isSafeInteger(options.expected.length) || options.expected.length < 0) {
    throw new SdcError('OTA_DOWNLOAD_FAILED', 'the expected length and SHA-256 must be given before a download starts');
  }
  const url = parseUrl(options.url);
  const io: DownloadIo = { fetcher: options.fetcher ?? createNodeArtifactFetcher(options.caPem === undefined ? {} : { caPem: options.caPem }), staging: options.staging ?? nodeStagingStore };
  const part = `${options.destination}.part`;
  const statePath = `${part}.json`;
  const deadlineMs = options.clock.nowMs() + options.limits.totalTimeoutMs;
  const startOffsets: number[] = [];
  let state = await readState(io.staging, statePath, options.expected.length, expectedSha);
  if (state === undefined) await dropPartial(io.staging, part, statePath);
  let lastError: SdcError | undefined;
  const firstDelayMs = options.retryDelayMs ?? 500;
  let delayMs = firstDelayMs;
  /** The furthest the partial has reached in this call: progress is passing it. */
  let furthestBytes = state === undefined ? 0 : await io.staging.size(part);
  let withoutProgress = 0;
  /** Partials dropped to start again from zero; unlike withoutProgress, progress does not reset it. */
  let restartsFromZero = 0;
  let sha256: string | undefined;
  for (;;) {
    if (options.signal?.aborted) throw cancelledError();
    let offset = state === undefined ? 0 : await io.staging.size(part);
    // Without an ETag a resumed range could splice two versions: only resume what If-Range can guard.
    if (state?.etag === undefined && offset > 0) {
      await dropPartial(io.staging, part, statePath);
      state = undefined;
      offset = 0;
    }
    let end: AttemptEnd;
    if (offset === options.expected.length && state !== undefined && offset > 0) {
      end = { kind: 'complete', writeFrom: offset };
    } else {
      startOffsets.push(offset);
      end = await attemptOnce(io, url, options, part, statePath, offset, state, deadlineMs, expectedSha);
    }
    if (end.kind === 'complete') {
      state = await readState(io.staging, statePath, options.expected.length, expectedSha);
      if (state === undefined || (await io.staging.size(part)) !== options.expected.length) break;
      sha256 = await hashFile(io.staging, part);
      if (sha256 === expectedSha) break;
      const mismatch = new SdcError('OTA_DOWNLOAD_DIGEST_MISMATCH', `the downloaded artifact's SHA-256 is ${sha256}, not ${expectedSha}`, { expected: expectedSha, actual: sha256 });
      await dropPartial(io.staging, part, statePath);
      // One response brought the file whole: the object itself is not the one signed. Otherwise
      // (writeFrom > 0: bytes of two responses, or of an earlier run) it may be the splice.
      if (end.writeFrom === 0) throw mismatch;
      end = { kind: 'restart', error: mismatch };
      sha256 = undefined;
    }
    lastError = end.error;
    if (end.kind === 'restart') {
      restartsFromZero += 1;
      if (restartsFromZero >= options.limits.attemptsWithoutProgressMax) throw end.error;
      // The dropped bytes are no floor: the fresh start's bytes are progress again.
      furthestBytes = 0;
    }
    state = await readState(io.staging, statePath, options.expected.length, expectedSha);
    const reachedBytes = state === undefined ? 0 : await io.staging.size(part);
    if (reachedBytes > furthestBytes) {
      furthestBytes = reachedBytes;
      withoutProgress = 0;
      delayMs = firstDelayMs;
    } else {
      withoutProgress += 1;
      if (withoutProgress >= options.limits.attemptsWithoutProgressMax) break;
    }
    await sleep(options.scheduler, Math.min(delayMs, Math.max(0, deadlineMs - options.clock.nowMs())), options.signal);
    if (options.signal?.aborted) throw cancelledError();
    if (withoutProgress > 0) delayMs = Math.min(delayMs * 2, 30_000);
    if (options.clock.nowMs() >= deadlineMs) throw new SdcError('OTA_DOWNLOAD_TIMEOUT', `the download did not finish within ${options.limits.totalTimeoutMs} ms`, { limitMs: options.limits.totalTimeoutMs });
  }
  // sha256 is set only when the whole file was there and matched.
  if (sha256 === undefined) {
    throw lastError ?? new SdcError('OTA_DOWNLOAD_FAILED', `the download brought no new bytes in ${options.limits.attemptsWithoutProgressMax} attempts in a row`);
  }
  await io.staging.rename(part, options.destination);
  await io.staging.remove(statePath);
  return { length: options.expected.length, sha256, attempts: startOffsets.length, startOffsets };
}

function parseUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SdcError('OTA_DOWNLOAD_FAILED', 'not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new SdcError('OTA_DOWNLOAD_FAILED', `only http and https URLs are fetched, not ${url.protocol}`);
  return url;
}

async function attemptOnce(io: DownloadIo, url: URL, options: ResumableDownloadOptions, part: string, statePath: string, offset: number, state: PartState | undefined, deadlineMs: number, expectedSha: string): Promise<AttemptEnd> {
  const length = options.expected.length;
  const headers: Record<string, string> = {};
  if (offset > 0 && state?.etag !== undefined) {
    headers.range = `bytes=${offset}-`;
    headers['if-range'] = state.etag;
  }
  let response: ArtifactResponse;
  try {
    response = await startRequest(io.fetcher, url, headers, options, deadlineMs);
  } catch (error) {
    if (options.signal?.aborted) throw cancelledError();
    return interruptedOrThrow(error);
  }
  const status = response.status;
  const etag = strongEtag(response.etag);
  let writeFrom: number;
  if (status === 206) {
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(response.contentRange ?? ''));
    const [first, last, total] = range === null ? [NaN, NaN, NaN] : [Number(range[1]), Number(range[2]), Number(range[3])];
    if (offset === 0 || first !== offset || last !== length - 1 || total !== length || etag !== state?.etag) {
      response.destroy();
      await dropPartial(io.staging, part, statePath);
      const asked = offset === 0 ? 'the whole object (no Range)' : `bytes ${offset}-${length - 1}/${length} of ${state?.etag ?? 'the object'}`;
      return { kind: 'restart', error: new SdcError('OTA_DOWNLOAD_RANGE_INVALID', `asked for ${asked}, got 206 with Content-Range "${String(response.contentRange ?? '')}" and ETag ${etag ?? 'none'}: the partial file was dropped`, { offset, length }) };
    }
    writeFrom = offset;
  } else if (status === 200) {
    writeFrom = 0;
  } else if (status === 416) {
    response.destroy();
    await dropPartial(io.staging, part, statePath);
    return { kind: 'restart', error: new SdcError('OTA_DOWNLOAD_RANGE_INVALID', `the server answered 416 to bytes=${offset}-: the partial file was dropped`, { offset, length }) };
  } else {
    response.destroy();
    const error = new SdcError('OTA_DOWNLOAD_FAILED', `HTTP ${status}`, { status });
    // Server trouble may pass; a refusal (an expired or wrong URL, a missing object) will not.
    if (status >= 500) return { kind: 'interrupted', error };
    throw error;
  }
  const declared = response.contentLength;
  if (declared !== undefined && declared > length - writeFrom) {
    response.destroy();
    throw new SdcError('OTA_DOWNLOAD_TOO_LARGE', `the server declares ${declared} bytes where at most ${length - writeFrom} remain`, { bytesMax: length });
  }
  await io.staging.writeText(statePath, JSON.stringify({ sha256: expectedSha, length, etag } satisfies PartState));
  const file = await io.staging.open(part, { truncate: writeFrom === 0 });
  try {
    let position = writeFrom;
    const ended = await readBody(response, options, deadlineMs, async (chunk) => {
      if (position + chunk.length > length) {
        throw new SdcError('OTA_DOWNLOAD_TOO_LARGE', `the response runs past the expected ${length} bytes`, { bytesMax: length });
      }
      await file.write(chunk, position);
      position += chunk.length;
    });
    await file.sync();
    if (ended.kind === 'interrupted') return ended;
    if (position !== length) return { kind: 'interrupted', error: new SdcError('OTA_DOWNLOAD_FAILED', `the response ended after ${position} of ${length} bytes`) };
    return { kind: 'complete', writeFrom };
  } finally {
    await file.close();
  }
}

function interruptedOrThrow(error: unknown): AttemptEnd {
  if (error instanceof SdcError && error.code === 'OTA_DOWNLOAD_TIMEOUT' && error.details?.total === true) throw error;
  if (error instanceof SdcError) return { kind: 'interrupted', error };
  return { kind: 'interrupted', error: new SdcError('OTA_DOWNLOAD_FAILED', (error as Error).message) };
}

/**
 * The response's headers, or a rejection; waiting for them counts against the idle limit (and the
 * total deadline). A cancel aborts the request at once: a server that never answers must not hold
 * a cancelled rollout for the idle limit (review h1 of the OTA path, finding 10).
 */
async function startRequest(fetcher: ArtifactFetcher, url: URL, headers: Record<string, string>, options: ResumableDownloadOptions, deadlineMs: number): Promise<ArtifactResponse> {
  if (options.signal?.aborted) throw cancelledError();
  const abort = new AbortController();
  let timedOut = false;
  const waitMs = Math.min(options.limits.idleTimeoutMs, Math.max(0, deadlineMs - options.clock.nowMs()));
  const timer = options.scheduler.schedule(waitMs, () => {
    timedOut = true;
    abort.abort();
  });
  const onCancel = () => abort.abort();
  options.signal?.addEventListener('abort', onCancel, { once: true });
  try {
    const response = await fetcher.get(url, headers, abort.signal);
    // Headers that came in the same turn as the cancel: the body is not read.
    if (options.signal?.aborted) {
      response.destroy();
      throw cancelledError();
    }
    return response;
  } catch (error) {
    if (options.signal?.aborted) throw cancelledError();
    if (timedOut) throw timeoutError(options, deadlineMs);
    throw error instanceof SdcError ? error : new SdcError('OTA_DOWNLOAD_FAILED', (error as Error).message);
  } finally {
    options.scheduler.cancel(timer);
    options.signal?.removeEventListener('abort', onCancel);
  }
}

function cancelledError(): SdcError {
  return new SdcError('OTA_DOWNLOAD_FAILED', 'the download was cancelled; the partial file is kept', { cancelled: true });
}

function timeoutError(options: ResumableDownloadOptions, deadlineMs: number): SdcError {
  const total = options.clock.nowMs() >= deadlineMs;
  return total
    ? new SdcError('OTA_DOWNLOAD_TIMEOUT', `the download did not finish within ${options.limits.totalTimeoutMs} ms`, { limitMs: options.limits.totalTimeoutMs, total: true })
    : new SdcError('OTA_DOWNLOAD_TIMEOUT', `no byte for ${options.limits.idleTimeoutMs} ms`, { limitMs: options.limits.idleTimeoutMs, total: false });
}

/**
 * Writes the body chunk by chunk (the next chunk waits for the write) under the idle and total
 * limits. A cut or a stall ends the attempt as interrupted, after every byte received before it
 * was written; a refusal from `write` (too many bytes) or the total deadline is thrown and stops
 * the download.
 */
async function readBody(response: ArtifactResponse, options: ResumableDownloadOptions, deadlineMs: number, write: (chunk: Uint8Array) => Promise<void>): Promise<{ kind: 'complete' } | { kind: 'interrupted'; error: SdcError }> {
  let timer: TimerHandle | undefined;
  let stalled: SdcError | undefined;
  const arm = () => {
    if (timer !== undefined) options.scheduler.cancel(timer);
    const waitMs = Math.min(options.limits.idleTimeoutMs, Math.max(0, deadlineMs - options.clock.nowMs()));
    timer = options.scheduler.schedule(waitMs, () => {
      stalled = timeoutError(options, deadlineMs);
      response.destroy(stalled);
    });
  };
  const onAbort = () => response.destroy(cancelledError());
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  try {
    arm();
    for (let chunk = await response.next(); chunk !== undefined; chunk = await response.next()) {
      await write(chunk);
      arm();
    }
    return { kind: 'complete' };
  } catch (error) {
    response.destroy();
    if (stalled !== undefined) {
      if (stalled.details?.total === true) throw stalled;
      return { kind: 'interrupted', error: stalled };
    }
    if (error instanceof SdcError) throw error;
    return { kind: 'interrupted', error: new SdcError('OTA_DOWNLOAD_FAILED', `the connection broke: ${(error as Error).message}`) };
  } finally {
    if (timer !== undefined) options.scheduler.cancel(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

function strongEtag(value: string | undefined): string | undefined {
  // A weak ETag cannot guard a byte range (RFC 9110 §13.1.5).
  return value === undefined || value.startsWith('W/') ? undefined : value;
}

async function readState(staging: StagingStore, path: string, length: number, sha256: string): Promise<PartState | undefined> {
  try {
    const text = await staging.readText(path);
    if (text === undefined) return undefined;
    const state = JSON.parse(text) as PartState;
    // A partial of another artifact (or another version of this one) is never continued.
    return state.sha256 === sha256 && state.length === length ? state : undefined;
  } catch {
    return undefined;
  }
}

async function dropPartial(staging: StagingStore, part: string, statePath: string): Promise<void> {
  await staging.remove(part);
  await staging.remove(statePath);
}

async function hashFile(staging: StagingStore, path: string): Promise<string> {
  const hash = createHash('sha256');
  const chunks = await staging.chunks(path);
  for await (const chunk of chunks ?? []) hash.update(chunk);
  return hash.digest('hex');
}

/** Waits `delayMs`, or less: a cancel wakes it at once (the wait before a retry can be 30 s). */
function sleep(scheduler: Scheduler, delayMs: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const wake = () => {
      scheduler.cancel(timer);
      resolve();
    };
    const timer = scheduler.schedule(delayMs, () => {
      signal?.removeEventListener('abort', wake);
      resolve();
    });
    signal?.addEventListener('abort', wake, { once: true });
  });
}
