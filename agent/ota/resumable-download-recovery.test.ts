import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import type { ArtifactFetcher, ArtifactResponse } from './download-ports.js';
import { MemoryStagingStore } from './memory-staging-store.js';
import { onVirtualTime } from './testing/on-virtual-time.js';
import { downloadResumable, type ResumableDownloadOptions } from './resumable-download.js';

// What the downloader does with answers that do not fit the partial it holds (review h1 of the
// OTA path, finding 8), and how fast a cancel stops it (finding 10). Scripted answers on the
// download ports, time virtual: no socket, no file, no real waiting.

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const artifact = Uint8Array.from({ length: 1_000 }, (_, i) => i % 251);
const etag = '"e1"';

interface Answer {
  readonly status: number;
  readonly contentRange?: string;
  readonly bytes: Uint8Array;
  /** The body breaks after its bytes (a cut connection) instead of ending. */
  readonly cut?: boolean;
}

interface Seen { readonly range: string | undefined }

/** A fetcher whose n-th GET gets script(range, n); the body comes as one chunk. */
function scripted(script: (range: string | undefined, index: number) => Answer): ArtifactFetcher & { seen: Seen[] } {
  const seen: Seen[] = [];
  return {
    seen,
    async get(_url, headers) {
      const answer = script(headers['range'], seen.length);
      seen.push({ range: headers['range'] });
      const chunks = [answer.bytes];
      let destroyed: Error | undefined;
      const response: ArtifactResponse = {
        status: answer.status, etag, contentRange: answer.contentRange, contentLength: undefined,
        next: async () => {
          if (destroyed !== undefined) throw destroyed;
          const chunk = chunks.shift();
          if (chunk !== undefined) return chunk;
          if (answer.cut === true) throw new Error('cut');
          return undefined;
        },
        destroy: (reason) => { destroyed ??= reason ?? new Error('destroyed'); },
      };
      return response;
    },
  };
}


function optionsFor(time: VirtualTime, fetcher: ArtifactFetcher, staging: MemoryStagingStore, attemptsWithoutProgressMax = 5): ResumableDownloadOptions {
  return {
    url: 'https://cp.test/a.bin', destination: '/t/a.bin', expected: { length: artifact.length, sha256: sha(artifact) },
    limits: { idleTimeoutMs: 5_000, totalTimeoutMs: 600_000, attemptsWithoutProgressMax }, scheduler: time, clock: time, retryDelayMs: 10, fetcher, staging,
  };
}

/** First answer: a 200 cut after 400 bytes; then `resumed` to the ranged request; then an honest 200 to one without Range. */
function cutThen(resumed: (range: string | undefined) => Answer): (range: string | undefined, index: number) => Answer {
  return (range, index) => {
    if (index === 0) return { status: 200, bytes: artifact.slice(0, 400), cut: true };
    if (range !== undefined) return resumed(range);
    return { status: 200, bytes: artifact };
  };
}

test('finding 8: a 206 whose Content-Range does not fit the partial drops it and starts again from zero; the download completes', async () => {
  const oddRanges: ReadonlyArray<readonly [string, Answer]> = [
    ['unknown total', { status: 206, contentRange: 'bytes 400-999/*', bytes: artifact.slice(400) }],
    ['another start', { status: 206, contentRange: 'bytes 0-999/1000', bytes: artifact }],
    ['another total', { status: 206, contentRange: 'bytes 400-1999/2000', bytes: artifact.slice(400) }],
    ['no Content-Range', { status: 206, bytes: artifact.slice(400) }],
  ];
  for (const [name, answer] of oddRanges) {
    const time = new VirtualTime(1_000_000);
    const staging = new MemoryStagingStore();
    const fetcher = scripted(cutThen(() => answer));
    const result = await onVirtualTime(time, downloadResumable(optionsFor(time, fetcher, staging)));
    assert.deepEqual(result.startOffsets, [0, 400, 0], name);
    assert.deepEqual(fetcher.seen.map((seen) => seen.range), [undefined, 'bytes=400-', undefined], name);
    assert.equal(sha(staging.read('/t/a.bin')!), sha(artifact), name);
  }
});

test('finding 8: a 206 to a request without Range is not written; the next request starts from zero again', async () => {
  const time = new VirtualTime(1_000_000);
  const staging = new MemoryStagingStore();
  const fetcher = scripted((_range, index) => index === 0
    ? { status: 206, contentRange: 'bytes 0-999/1000', bytes: artifact.map((byte) => byte ^ 1) }
    : { status: 200, bytes: artifact });
  const result = await onVirtualTime(time, downloadResumable(optionsFor(time, fetcher, staging)));
  assert.deepEqual(result.startOffsets, [0, 0]);
  assert.equal(sha(staging.read('/t/a.bin')!), sha(artifact));
});

test('finding 8: a server that answers every range oddly ends OTA_DOWNLOAD_RANGE_INVALID after attemptsWithoutProgressMax restarts from zero', async () => {
  const time = new VirtualTime(1_000_000);
  const staging = new MemoryStagingStore();
  // Every answer brings 400 good bytes and is cut; every resume is answered with the wrong range.
  const fetcher = scripted((range) => range === undefined
    ? { status: 200, bytes: artifact.slice(0, 400), cut: true }
    : { status: 206, contentRange: 'bytes 0-999/1000', bytes: artifact });
  await assert.rejects(onVirtualTime(time, downloadResumable(optionsFor(time, fetcher, staging, 3))), (error: unknown) => SdcError.is(error, 'OTA_DOWNLOAD_RANGE_INVALID'));
  assert.deepEqual(fetcher.seen.map((seen) => seen.range), [undefined, 'bytes=400-', undefined, 'bytes=400-', undefined, 'bytes=400-'], 'three restarts, then refused');
  assert.equal(staging.read('/t/a.bin'), undefined);
  assert.equal(staging.bytesHeld, 0, 'no partial kept');
});

test('finding 8: a digest mismatch in a resumed file (bytes lost before they were synced) drops it and fetches the whole object again', async () => {
  // The first 400 bytes on "disk" are not what the server sent (a power loss undid unsynced writes): the resumed file does not verify.
  const time = new VirtualTime(1_000_000);
  const staging = new MemoryStagingStore();
  const fetcher = scripted((_range, index) => [
    { status: 200, bytes: new Uint8Array(400), cut: true },
    { status: 206, contentRange: 'bytes 400-999/1000', bytes: artifact.slice(400) },
  ][index] ?? { status: 200, bytes: artifact });
  const result = await onVirtualTime(time, downloadResumable(optionsFor(time, fetcher, staging)));
  assert.deepEqual(result.startOffsets, [0, 400, 0]);
  assert.deepEqual(fetcher.seen.map((seen) => seen.range), [undefined, 'bytes=400-', undefined]);
  assert.equal(sha(staging.read('/t/a.bin')!), sha(artifact));
});

test('finding 8: a partial left by an earlier run that no longer verifies once complete is fetched again from zero', async () => {
  const time = new VirtualTime(1_000_000);
  const staging = new MemoryStagingStore();
  // An earlier run's partial: all 1,000 bytes and its state, but the last 100 zeros (never synced).
  const writer = await staging.open('/t/a.bin.part', { truncate: true });
  await writer.write(Uint8Array.from([...artifact.slice(0, 900), ...new Uint8Array(100)]), 0);
  await staging.writeText('/t/a.bin.part.json', JSON.stringify({ sha256: sha(artifact), length: artifact.length, etag }));
  const fetcher = scripted(() => ({ status: 200, bytes: artifact }));
  const result = await onVirtualTime(time, downloadResumable(optionsFor(time, fetcher, staging)));
  assert.deepEqual(result.startOffsets, [0]);
  assert.deepEqual(fetcher.seen.map((seen) => seen.range), [undefined]);
  assert.equal(sha(staging.read('/t/a.bin')!), sha(artifact));
});

test('finding 8: a mismatch in a file one response brought whole is still the failure, not retried', async () => {
  const time = new VirtualTime(1_000_000);
  const staging = new MemoryStagingStore();
  const fetcher = scripted(() => ({ status: 200, bytes: artifact.map((byte) => byte ^ 1) }));
  await assert.rejects(onVirtualTime(time, downloadResumable(optionsFor(time, fetcher, staging))), (error: unknown) => SdcError.is(error, 'OTA_DOWNLOAD_DIGEST_MISMATCH'));
  assert.equal(fetcher.seen.length, 1);
  assert.equal(staging.bytesHeld, 0);
});

test('finding 8: a resumed file that never verifies ends OTA_DOWNLOAD_DIGEST_MISMATCH after attemptsWithoutProgressMax restarts', async () => {
  const time = new VirtualTime(1_000_000);
  const staging = new MemoryStagingStore();
  // Every whole answer is cut after 400 bytes; every resume brings wrong bytes of the right length.
  const fetcher = scripted((range) => range === undefined
    ? { status: 200, bytes: artifact.slice(0, 400), cut: true }
    : { status: 206, contentRange: 'bytes 400-999/1000', bytes: artifact.slice(400).map((byte) => byte ^ 1) });
  await assert.rejects(onVirtualTime(time, downloadResumable(optionsFor(time, fetcher, staging, 2))), (error: unknown) => SdcError.is(error, 'OTA_DOWNLOAD_DIGEST_MISMATCH'));
  assert.equal(fetcher.seen.length, 4, 'two rounds of cut + resume');
  assert.equal(staging.bytesHeld, 0);
});

/** Lets promise work and immediates run without moving virtual time: what settles here settled without waiting for any timer. */
async function settleWithoutTime<T>(work: Promise<T>): Promise<{ settled: boolean; error?: unknown }> {
  let outcome: { settled: boolean; error?: unknown } = { settled: false };
  work.then(() => { outcome = { settled: true }; }, (error: unknown) => { outcome = { settled: true, error }; });
  for (let rounds = 0; rounds < 50 && !outcome.settled; rounds += 1) await new Promise<void>((resolve) => setImmediate(resolve));
  return outcome;
}

const isCancel = (error: unknown) => SdcError.is(error, 'OTA_DOWNLOAD_FAILED') && error.details?.['cancelled'] === true;

test('finding 10: a cancel while the server has not answered aborts the request at once, not after the idle limit', async () => {
  const time = new VirtualTime(1_000_000);
  const signals: AbortSignal[] = [];
  // A server that takes the request and never answers; the request ends only when its signal aborts.
  const silent: ArtifactFetcher = {
    get: (_url, _headers, signal) => new Promise((_resolve, reject) => {
      signals.push(signal);
      signal.addEventListener('abort', () => reject(new Error('request aborted')), { once: true });
    }),
  };
  const cancel = new AbortController();
  const work = downloadResumable({ ...optionsFor(time, silent, new MemoryStagingStore()), signal: cancel.signal });
  await settleWithoutTime(Promise.resolve());
  assert.equal(signals.length, 1, 'the request is out');
  cancel.abort();
  const outcome = await settleWithoutTime(work);
  assert.equal(outcome.settled, true, 'ended with no timer fired (the idle limit is 5,000 virtual ms)');
  assert.ok(isCancel(outcome.error), String(outcome.error));
  assert.equal(signals[0]!.aborted, true, 'the request itself was abandoned');
  assert.equal(time.pendingTimers, 0, 'no timer left behind');
});

test('finding 10: a cancel during the wait before a retry wakes it at once; no further request is made', async () => {
  const time = new VirtualTime(1_000_000);
  const fetcher = scripted(() => ({ status: 503, bytes: new Uint8Array(0) }));
  const cancel = new AbortController();
  const work = downloadResumable({ ...optionsFor(time, fetcher, new MemoryStagingStore()), retryDelayMs: 30_000, signal: cancel.signal });
  await settleWithoutTime(Promise.resolve());
  assert.equal(fetcher.seen.length, 1, 'the first attempt failed with 503 and the download waits 30,000 ms');
  assert.equal(time.pendingTimers, 1, 'the retry wait');
  cancel.abort();
  const outcome = await settleWithoutTime(work);
  assert.equal(outcome.settled, true, 'ended with no timer fired');
  assert.ok(isCancel(outcome.error), String(outcome.error));
  assert.equal(fetcher.seen.length, 1);
  assert.equal(time.pendingTimers, 0, 'the wait\'s timer was cancelled');
});

test('finding 10: a cancel while a body is read stops it, and the partial is kept for a later try', async () => {
  const time = new VirtualTime(1_000_000);
  const staging = new MemoryStagingStore();
  const cancel = new AbortController();
  let calls = 0;
  const slowBody: ArtifactFetcher = {
    async get() {
      let destroyed: Error | undefined;
      return {
        status: 200, etag, contentRange: undefined, contentLength: artifact.length,
        next: () => new Promise((resolve, reject) => {
          if (destroyed !== undefined) return reject(destroyed);
          calls += 1;
          if (calls === 1) return resolve(artifact.slice(0, 300));
          // The second chunk never comes unless destroyed.
          const poll = () => (destroyed !== undefined ? reject(destroyed) : setImmediate(poll));
          poll();
        }),
        destroy: (reason) => { destroyed ??= reason ?? new Error('destroyed'); },
      };
    },
  };
  const work = downloadResumable({ ...optionsFor(time, slowBody, staging), signal: cancel.signal });
  await settleWithoutTime(Promise.resolve());
  cancel.abort();
  const outcome = await settleWithoutTime(work);
  assert.equal(outcome.settled, true);
  assert.ok(isCancel(outcome.error), String(outcome.error));
  assert.equal(await staging.size('/t/a.bin.part'), 300, 'the partial is kept');
});
