import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { SdcError } from '../../core/errors/index.js';
import { systemClock, systemScheduler } from '../../runtime/system.js';
import { downloadResumable, type ResumableDownloadOptions } from './resumable-download.js';

type Handler = (request: IncomingMessage, response: ServerResponse, index: number) => void;

/** A server whose n-th request is answered by handlers[n] (the last one repeats); it records each request's Range and If-Range. */
async function withServer(handlers: Handler[], run: (url: string, seen: Array<{ range?: string; ifRange?: string }>) => Promise<void>): Promise<void> {
  const seen: Array<{ range?: string; ifRange?: string }> = [];
  const server = createServer((request, response) => {
    const index = seen.length;
    seen.push({ ...(request.headers.range === undefined ? {} : { range: request.headers.range }), ...(request.headers['if-range'] === undefined ? {} : { ifRange: request.headers['if-range'] as string }) });
    handlers[Math.min(index, handlers.length - 1)]!(request, response, index);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}/artifact.bin`, seen);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const etagOf = (bytes: Buffer) => `"${sha(bytes)}"`;

/** Honest serving of `bytes` (Range + If-Range), optionally cutting the connection after `cutAfter` body bytes. */
function serve(bytes: Buffer, cutAfter?: number): Handler {
  return (request, response) => {
    const etag = etagOf(bytes);
    const match = /^bytes=(\d+)-$/.exec(request.headers.range ?? '');
    const ranged = match !== null && (request.headers['if-range'] === undefined || request.headers['if-range'] === etag);
    const start = ranged ? Number(match![1]) : 0;
    const body = bytes.subarray(start);
    response.writeHead(ranged ? 206 : 200, { etag, 'content-length': String(body.length), ...(ranged ? { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}) });
    if (cutAfter === undefined) return void response.end(body);
    // Flush part of the body, then drop the socket mid-body.
    response.write(body.subarray(0, cutAfter), () => setImmediate(() => response.socket?.destroy()));
  };
}

async function inTemp(run: (directory: string) => Promise<void>): Promise<void> {
  const directory = await mkdtemp(join(tmpdir(), 'sdc-resume-'));
  try { await run(directory); } finally { await rm(directory, { recursive: true, force: true }); }
}

function options(url: string, destination: string, bytes: Buffer, extra: Partial<ResumableDownloadOptions['limits']> = {}): ResumableDownloadOptions {
  return { url, destination, expected: { length: bytes.length, sha256: sha(bytes) }, limits: { idleTimeoutMs: 5_000, totalTimeoutMs: 60_000, attemptsWithoutProgressMax: 5, ...extra }, scheduler: systemScheduler, clock: systemClock, retryDelayMs: 1 };
}

async function refusedWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => error instanceof SdcError && error.code === code);
}

test('a connection cut mid-body twice resumes with Range + If-Range to a correct file', async () => {
  const bytes = randomBytes(300_000);
  await inTemp(async (directory) => withServer([serve(bytes, 100_000), serve(bytes, 50_000), serve(bytes)], async (url, seen) => {
    const destination = join(directory, 'a.bin');
    const result = await downloadResumable(options(url, destination, bytes));
    assert.deepEqual(await readFile(destination), bytes);
    assert.equal(result.attempts, 3);
    assert.equal(result.startOffsets[0], 0);
    // How much of a cut body reaches the disk depends on timing (node drops what is buffered when the socket dies); what matters is that it resumes from what is there.
    assert.ok(result.startOffsets[1]! > 0 && result.startOffsets[2]! >= result.startOffsets[1]!, `offsets ${result.startOffsets}`);
    assert.deepEqual(seen.slice(1).map((request) => request.ifRange), [etagOf(bytes), etagOf(bytes)]);
    assert.equal(seen[2]!.range, `bytes=${result.startOffsets[2]}-`);
    await assert.rejects(stat(`${destination}.part`), 'the partial file is gone');
  }));
});

test('a body cut by a clean close that arrives with its last bytes keeps every byte received (the OTA-cut finding)', async () => {
  const bytes = randomBytes(96 * 1024);
  // What a proxy's limit_data toxic does: the first 20,000 body bytes, then FIN at once, so the
  // cut body and the close reach the client together, before it has started reading the body.
  const cutCleanly: Handler = (_request, response) => {
    response.writeHead(200, { etag: etagOf(bytes), 'content-length': String(bytes.length) });
    response.flushHeaders();
    response.socket!.end(bytes.subarray(0, 20_000));
  };
  await inTemp(async (directory) => withServer([cutCleanly, serve(bytes)], async (url, seen) => {
    const destination = join(directory, 'cut.bin');
    const result = await downloadResumable(options(url, destination, bytes));
    assert.deepEqual(await readFile(destination), bytes);
    // Exactly: TCP delivers every byte sent before the FIN, and none of them may be lost.
    assert.deepEqual(result.startOffsets, [0, 20_000]);
    assert.deepEqual(seen[1], { range: 'bytes=20000-', ifRange: etagOf(bytes) });
  }));
});

test('an object changed between attempts is fetched whole again (200 after If-Range), never spliced', async () => {
  const before = randomBytes(200_000);
  const after = randomBytes(200_000);
  await inTemp(async (directory) => withServer([serve(before, 120_000), serve(after)], async (url, seen) => {
    // The signed metadata now names the new object: a splice of the two would not match it.
    const destination = join(directory, 'b.bin');
    const result = await downloadResumable({ ...options(url, destination, after), expected: { length: after.length, sha256: sha(after) } });
    assert.deepEqual(await readFile(destination), after);
    assert.equal(result.attempts, 2);
    assert.equal(seen[1]!.ifRange, etagOf(before), 'it asked to resume the old object; the server said it changed (200)');
  }));
  await inTemp(async (directory) => withServer([serve(before, 120_000), serve(after)], async (url, seen) => {
    // The metadata names the old object; the server changed under it: the new bytes fail the digest.
    const destination = join(directory, 'c.bin');
    await refusedWith(downloadResumable(options(url, destination, before)), 'OTA_DOWNLOAD_DIGEST_MISMATCH');
    assert.equal(seen[1]!.ifRange, etagOf(before));
    await assert.rejects(stat(destination));
    await assert.rejects(stat(`${destination}.part`));
  }));
});

test('a server that answers 206 for a changed object (ignoring If-Range) never gets its bytes spliced: the partial is dropped, each fresh start too, then refused', async () => {
  const before = randomBytes(100_000);
  const after = randomBytes(100_000);
  const brokenRange: Handler = (request, response) => {
    const start = Number(/^bytes=(\d+)-$/.exec(request.headers.range ?? '')?.[1] ?? 0);
    response.writeHead(206, { etag: etagOf(after), 'content-range': `bytes ${start}-${after.length - 1}/${after.length}` });
    response.end(after.subarray(start));
  };
  await inTemp(async (directory) => withServer([serve(before, 40_000), brokenRange], async (url, seen) => {
    const destination = join(directory, 'd.bin');
    await refusedWith(downloadResumable(options(url, destination, before)), 'OTA_DOWNLOAD_RANGE_INVALID');
    await assert.rejects(stat(`${destination}.part`), 'the partial is dropped');
    // Asked to resume, then from zero (no Range) after each odd 206, until attemptsWithoutProgressMax (5) restarts.
    assert.equal(seen.length, 6);
    assert.deepEqual(seen.slice(2).map((request) => request.range), [undefined, undefined, undefined, undefined]);
  }));
});

test('a lying Content-Range (not the offset asked for), every time, ends OTA_DOWNLOAD_RANGE_INVALID', async () => {
  const bytes = randomBytes(100_000);
  const lying: Handler = (_request, response) => {
    response.writeHead(206, { etag: etagOf(bytes), 'content-range': `bytes 0-${bytes.length - 1}/${bytes.length}` });
    response.end(bytes);
  };
  const wrongTotal: Handler = (request, response) => {
    const start = Number(/^bytes=(\d+)-$/.exec(request.headers.range ?? '')?.[1] ?? 0);
    response.writeHead(206, { etag: etagOf(bytes), 'content-range': `bytes ${start}-${bytes.length * 2 - 1}/${bytes.length * 2}` });
    response.end(bytes.subarray(start));
  };
  for (const liar of [lying, wrongTotal]) {
    await inTemp(async (directory) => withServer([serve(bytes, 30_000), liar], async (url) => {
      await refusedWith(downloadResumable(options(url, join(directory, 'e.bin'), bytes)), 'OTA_DOWNLOAD_RANGE_INVALID');
    }));
  }
});

test('416 drops the partial and starts again from zero', async () => {
  const bytes = randomBytes(50_000);
  const unsatisfiable: Handler = (_request, response) => {
    response.writeHead(416, { 'content-range': `bytes */${bytes.length}` });
    response.end();
  };
  await inTemp(async (directory) => withServer([serve(bytes, 20_000), unsatisfiable, serve(bytes)], async (url, seen) => {
    const destination = join(directory, 'f.bin');
    const result = await downloadResumable(options(url, destination, bytes));
    assert.deepEqual(await readFile(destination), bytes);
    assert.equal(result.startOffsets[2], 0);
    assert.equal(seen[2]!.range, undefined);
  }));
});

test('an endless body is cut at the expected length: OTA_DOWNLOAD_TOO_LARGE (mender #1632), and a declared length too large is refused before reading', async () => {
  const bytes = randomBytes(10_000);
  let written = 0;
  const endless: Handler = (_request, response) => {
    response.writeHead(200, { etag: etagOf(bytes) });
    const pump = () => {
      while (!response.destroyed && response.write(randomBytes(16_384))) written += 16_384;
      if (!response.destroyed) response.once('drain', pump);
    };
    pump();
  };
  await inTemp(async (directory) => withServer([endless], async (url, seen) => {
    await refusedWith(downloadResumable(options(url, join(directory, 'g.bin'), bytes)), 'OTA_DOWNLOAD_TOO_LARGE');
    assert.equal(seen.length, 1, 'not retried');
  }));
  assert.ok(written < 50 * 1024 * 1024, 'the client stopped reading');
  const declared: Handler = (_request, response) => {
    response.writeHead(200, { etag: etagOf(bytes), 'content-length': String(bytes.length + 1) });
    response.end(Buffer.concat([bytes, Buffer.from('x')]));
  };
  await inTemp(async (directory) => withServer([declared], async (url) => {
    await refusedWith(downloadResumable(options(url, join(directory, 'h.bin'), bytes)), 'OTA_DOWNLOAD_TOO_LARGE');
  }));
});

test('a tampered artifact (right length, wrong bytes) is OTA_DOWNLOAD_DIGEST_MISMATCH and nothing is left', async () => {
  const bytes = randomBytes(20_000);
  const tampered = Buffer.from(bytes);
  tampered[1234] = tampered[1234]! ^ 0xff;
  await inTemp(async (directory) => withServer([serve(tampered)], async (url) => {
    const destination = join(directory, 'i.bin');
    await refusedWith(downloadResumable(options(url, destination, bytes)), 'OTA_DOWNLOAD_DIGEST_MISMATCH');
    await assert.rejects(stat(destination));
    await assert.rejects(stat(`${destination}.part`));
  }));
});

test('a stalled body is an interruption: resumed on the next attempt; stalling every time ends OTA_DOWNLOAD_TIMEOUT', async () => {
  const bytes = randomBytes(40_000);
  const stall: Handler = (_request, response) => {
    response.writeHead(200, { etag: etagOf(bytes), 'content-length': String(bytes.length) });
    response.write(bytes.subarray(0, 10_000));
  };
  await inTemp(async (directory) => withServer([stall, serve(bytes)], async (url, seen) => {
    const destination = join(directory, 'j.bin');
    await downloadResumable(options(url, destination, bytes, { idleTimeoutMs: 200 }));
    assert.deepEqual(await readFile(destination), bytes);
    assert.equal(seen[1]!.range, 'bytes=10000-');
  }));
  await inTemp(async (directory) => withServer([stall], async (url, seen) => {
    await refusedWith(downloadResumable(options(url, join(directory, 'k.bin'), bytes, { idleTimeoutMs: 100, attemptsWithoutProgressMax: 3 })), 'OTA_DOWNLOAD_TIMEOUT');
    // The first stall brought 10,000 bytes (progress); each later one restarts at 0 (a 200) and brings none beyond them.
    assert.equal(seen.length, 4);
  }));
});

test('a refusal (403, 404) is not retried; a partial of another artifact is not continued', async () => {
  const bytes = randomBytes(5_000);
  const forbidden: Handler = (_request, response) => { response.writeHead(403, { 'content-type': 'application/xml' }); response.end('<Error><Code>AccessDenied</Code></Error>'); };
  await inTemp(async (directory) => withServer([forbidden], async (url, seen) => {
    await refusedWith(downloadResumable(options(url, join(directory, 'l.bin'), bytes)), 'OTA_DOWNLOAD_FAILED');
    assert.equal(seen.length, 1);
  }));
  await inTemp(async (directory) => withServer([serve(bytes)], async (url, seen) => {
    const destination = join(directory, 'm.bin');
    await writeFile(`${destination}.part`, randomBytes(100));
    await writeFile(`${destination}.part.json`, JSON.stringify({ sha256: '0'.repeat(64), length: bytes.length, etag: etagOf(bytes) }));
    await downloadResumable(options(url, destination, bytes));
    assert.deepEqual(await readFile(destination), bytes);
    assert.equal(seen[0]!.range, undefined);
  }));
});
