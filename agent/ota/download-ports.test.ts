import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import type { ArtifactFetcher, ArtifactResponse } from './download-ports.js';
import { MemoryStagingStore } from './memory-staging-store.js';
import { onVirtualTime } from './testing/on-virtual-time.js';
import { downloadResumable } from './resumable-download.js';

// The resumable downloader on its ports with no socket and no file (what the simulator's devices
// run): a fetcher that answers Range and If-Range from memory and cuts a body once, the staging
// store in memory, time virtual. The HTTP and file adapters keep their own tests
// (resumable-download.test.ts, against a real server and real files).

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

interface Seen { readonly range: string | undefined; readonly ifRange: string | undefined }

/**
 * Serves `bytes` with a strong ETag; the first body (every body with `cutEvery`) is cut after
 * `cutAfter` bytes (delivered in 1 KiB chunks, one per virtual ms). `ignoreRange`: every answer is
 * a 200 from byte 0, as a server without Range support gives.
 */
function memoryServer(time: VirtualTime, bytes: Uint8Array, cutAfter: number, behaviour: { cutEvery?: boolean; ignoreRange?: boolean } = {}): ArtifactFetcher & { seen: Seen[] } {
  const seen: Seen[] = [];
  const etag = `"${sha(bytes)}"`;
  return {
    seen,
    async get(_url, headers) {
      seen.push({ range: headers['range'], ifRange: headers['if-range'] });
      const match = /^bytes=(\d+)-$/.exec(headers['range'] ?? '');
      const ranged = match !== null && headers['if-range'] === etag && behaviour.ignoreRange !== true;
      const first = ranged ? Number(match![1]) : 0;
      const body = bytes.subarray(first);
      const cutAt = seen.length === 1 || behaviour.cutEvery === true ? cutAfter : Number.POSITIVE_INFINITY;
      let delivered = 0;
      let ended: Error | undefined;
      const response: ArtifactResponse = {
        status: ranged ? 206 : 200, etag, contentLength: body.length,
        contentRange: ranged ? `bytes ${first}-${bytes.length - 1}/${bytes.length}` : undefined,
        next: () => new Promise((resolve, reject) => {
          time.schedule(1, () => {
            if (ended !== undefined) return reject(ended);
            if (delivered >= cutAt) return reject(new Error('cut'));
            if (delivered >= body.length) return resolve(undefined);
            const chunk = body.subarray(delivered, Math.min(body.length, delivered + 1024, cutAt));
            delivered += chunk.length;
            resolve(chunk);
          });
        }),
        destroy: (reason) => { ended ??= reason ?? new Error('destroyed'); },
      };
      return response;
    },
  };
}


const artifact = Uint8Array.from({ length: 10_000 }, (_, i) => (i * 7) & 0xff);

test('a download cut half way resumes from its offset through the ports: Range and If-Range, 206, the staged file whole and checked', async () => {
  const time = new VirtualTime(1_000_000);
  const staging = new MemoryStagingStore();
  const server = memoryServer(time, artifact, 5_120);
  const result = await onVirtualTime(time, downloadResumable({
    url: 'https://cp.test/v1/blobs/a.bin', destination: '/targets/a.bin', expected: { length: artifact.length, sha256: sha(artifact) },
    limits: { idleTimeoutMs: 5_000, totalTimeoutMs: 60_000, attemptsWithoutProgressMax: 3 }, scheduler: time, clock: time, retryDelayMs: 10, fetcher: server, staging,
  }));
  assert.deepEqual(result.startOffsets, [0, 5_120]);
  assert.deepEqual(server.seen, [{ range: undefined, ifRange: undefined }, { range: 'bytes=5120-', ifRange: `"${sha(artifact)}"` }]);
  assert.equal(sha(staging.read('/targets/a.bin')!), sha(artifact));
  assert.equal(await staging.size('/targets/a.bin.part'), 0, 'the partial became the artifact');
  assert.equal(await staging.readText('/targets/a.bin.part.json'), undefined, 'its state file is gone');
});

// Found by issue 11's OTA-cut scenario: every attempt counted against the limit and each wait
// doubled, so a link that cuts every connection after a few KB could never deliver an artifact of
// more than about attemptsMax cuts' worth, and later pieces waited seconds each.
test('a link that cuts every connection delivers the whole artifact: only attempts without new bytes count, and progress resets the wait', async () => {
  const time = new VirtualTime(1_000_000);
  const startMs = time.nowMs();
  const server = memoryServer(time, artifact, 1_000, { cutEvery: true });
  const staging = new MemoryStagingStore();
  const result = await onVirtualTime(time, downloadResumable({
    url: 'https://cp.test/v1/blobs/a.bin', destination: '/targets/a.bin', expected: { length: artifact.length, sha256: sha(artifact) },
    limits: { idleTimeoutMs: 5_000, totalTimeoutMs: 60_000, attemptsWithoutProgressMax: 2 }, scheduler: time, clock: time, retryDelayMs: 10, fetcher: server, staging,
  }));
  assert.deepEqual(result.startOffsets, [0, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000, 8_000, 9_000], 'ten attempts with a limit of two without progress');
  assert.equal(sha(staging.read('/targets/a.bin')!), sha(artifact));
  // Nine waits of 10 ms and a few ms of transfer each; doubling waits would be 10 + 20 + ... + 2,560 = 5,110 ms.
  assert.ok(time.nowMs() - startMs < 200, `${time.nowMs() - startMs} virtual ms`);
});

test('a server that restarts every answer from byte 0 and cuts it again is not progress: refused after attemptsWithoutProgressMax', async () => {
  const time = new VirtualTime(1_000_000);
  const server = memoryServer(time, artifact, 1_000, { cutEvery: true, ignoreRange: true });
  await assert.rejects(onVirtualTime(time, downloadResumable({
    url: 'https://cp.test/v1/blobs/a.bin', destination: '/targets/a.bin', expected: { length: artifact.length, sha256: sha(artifact) },
    limits: { idleTimeoutMs: 5_000, totalTimeoutMs: 60_000, attemptsWithoutProgressMax: 3 }, scheduler: time, clock: time, retryDelayMs: 10, fetcher: server, staging: new MemoryStagingStore(),
  })), (error: unknown) => error instanceof SdcError);
  assert.equal(server.seen.length, 4, 'the first attempt brought 1,000 bytes; three more brought none beyond them');
});

test('bytes that do not match the signed digest are refused and nothing is kept', async () => {
  const time = new VirtualTime(1_000_000);
  const staging = new MemoryStagingStore();
  const other = artifact.map((byte) => byte ^ 1);
  await assert.rejects(onVirtualTime(time, downloadResumable({
    url: 'https://cp.test/a.bin', destination: '/t/a.bin', expected: { length: artifact.length, sha256: sha(artifact) },
    limits: { idleTimeoutMs: 5_000, totalTimeoutMs: 60_000, attemptsWithoutProgressMax: 3 }, scheduler: time, clock: time, retryDelayMs: 10, fetcher: memoryServer(time, other, Infinity), staging,
  })), (error: unknown) => SdcError.is(error, 'OTA_DOWNLOAD_DIGEST_MISMATCH'));
  assert.equal(staging.read('/t/a.bin'), undefined);
  assert.equal(staging.bytesHeld, 0);
});

test('the memory staging store: positioned writes, rename, limits, and the TUF view sharing its files', async () => {
  const staging = new MemoryStagingStore({ filesMax: 2, bytesMax: 64 * 1024 });
  const writer = await staging.open('/s/x', { truncate: true });
  await writer.write(Uint8Array.of(1, 2, 3), 0);
  await writer.write(Uint8Array.of(9), 1);
  await assert.rejects(writer.write(Uint8Array.of(5), 7), (error: unknown) => SdcError.is(error, 'TUF_LOCAL_STORE'), 'no hole: a download only continues its bytes');
  assert.deepEqual([...staging.read('/s/x')!], [1, 9, 3]);
  await staging.rename('/s/x', '/s/y');
  assert.equal(staging.read('/s/x'), undefined);
  assert.equal(await staging.size('/s/y'), 3);
  await staging.writeText('/s/z', 'state');
  await assert.rejects(staging.writeText('/s/w', 'one too many'), (error: unknown) => SdcError.is(error, 'TUF_LOCAL_STORE'));
  await assert.rejects((await staging.open('/s/z', { truncate: false })).write(new Uint8Array(64 * 1024), 5), (error: unknown) => SdcError.is(error, 'TUF_LOCAL_STORE'));
  const view = staging.tufView('/s');
  assert.deepEqual([...(await view.read('y'))!], [1, 9, 3], 'what the downloader staged, the TUF client sees');
  await view.delete('y');
  assert.equal(staging.read('/s/y'), undefined);
});
