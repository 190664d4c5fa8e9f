import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { removeRedisKeys, runIngestBench } from './ingest.js';

// A smoke run of the bench's own accounting, not a measurement: every stored sample came from a
// telemetry INSERT, and each INSERT is one of the statements counted.
test('ingest reports SQL statements per sample and rows per telemetry INSERT from the same tally as the samples stored', async () => {
  const { rows } = await runIngestBench({ connections: 2, durationMs: 300, warmupMs: 200, modes: ['session-mac'], scrapeIntervalMs: 0 });
  const [row] = rows;
  assert.ok(row !== undefined && row.samples_stored > 0);
  assert.ok(row.rows_per_telemetry_insert >= 1, `rows per INSERT ${row.rows_per_telemetry_insert}`);
  // At least the INSERTs themselves: one statement per rows_per_telemetry_insert samples.
  assert.ok(row.sql_statements_per_sample >= 1 / row.rows_per_telemetry_insert - 1e-9, `statements per sample ${row.sql_statements_per_sample}`);
  assert.ok(Number.isInteger(Math.round(row.samples_stored / row.rows_per_telemetry_insert)));
  // Two connections cannot hold the default window of 2,000: 128 each, half the gateway's per-session work bound.
  assert.equal(row.window_frames, 256);
});

// Decision 0004, "Batches": K samples per frame (TELEMETRY_BATCH) in the same run as K = 1, each row
// labelled with its K; the window is in samples, a session's bound in frames (so K times as many samples).
test('ingest at K samples per frame: one session-mac row per K, samples stored in whole frames, frames/s = samples/s / K', async () => {
  const { rows } = await runIngestBench({ connections: 2, durationMs: 300, warmupMs: 200, modes: ['session-mac', 'ed25519'], scrapeIntervalMs: 0, samplesPerFrame: [1, 4] });
  assert.deepEqual(rows.map((r) => [r.mode, r.samples_per_frame]), [['session-mac', 1], ['session-mac', 4], ['ed25519', 1]]);
  const batched = rows[1]!;
  assert.ok(batched.samples_stored > 0 && batched.samples_stored % 4 === 0, `stored ${batched.samples_stored}`);
  assert.equal(batched.frames_per_s, batched.samples_per_s / 4);
  assert.equal(rows[0]!.frames_per_s, rows[0]!.samples_per_s);
  assert.ok(batched.rows_per_telemetry_insert >= 4, `rows per INSERT ${batched.rows_per_telemetry_insert}`);
  assert.equal(batched.window_frames, 1_024, 'two sessions of 128 frames of 4 samples');
  await assert.rejects(runIngestBench({ connections: 2, durationMs: 100, warmupMs: 0, modes: ['session-mac'], scrapeIntervalMs: 0, samplesPerFrame: [65] }), { code: 'BENCH_FAILED' });
});

const redisUrl = process.env['REDIS_URL'];

// Skipped without REDIS_URL: the embedded stores leave nothing behind (they live in the process).
test('a run on Redis leaves none of its keys behind, and the cleanup removes only its own prefix', { skip: redisUrl === undefined || redisUrl === '' ? 'REDIS_URL is not set' : false }, async () => {
  const client = new Redis(redisUrl!);
  try {
    const scanAll = async (pattern: string) => {
      const found: string[] = [];
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1_000);
        found.push(...keys);
        cursor = next;
      } while (cursor !== '0');
      return found;
    };
    await runIngestBench({ connections: 20, durationMs: 500, warmupMs: 500, modes: ['session-mac'], scrapeIntervalMs: 0, redisUrl: redisUrl! });
    assert.deepEqual(await scanAll('sdc-bench-ingest-*'), [], 'the run\'s streams and key/value entries are gone');
    const tag = `h1-cleanup-${process.pid}`;
    await client.set(`${tag}-a:x`, '1');
    await client.xadd(`${tag}-a:stream`, '*', 'f', 'v');
    await client.set(`${tag}-b:x`, '1');
    assert.equal(await removeRedisKeys(redisUrl!, `${tag}-a:`), 2);
    assert.deepEqual(await scanAll(`${tag}-*`), [`${tag}-b:x`]);
    await client.del(`${tag}-b:x`);
  } finally {
    client.disconnect();
  }
});

// Skipped without REDIS_URL. With two connections the default window put 1,000 samples in flight on
// each session; on Redis (appends take a round trip) each session's queued work passed the gateway's
// bound, the gateway closed both GATEWAY_OVERLOADED, and the run stored nothing.
test('a run with two connections on Redis stores telemetry, its window held to what a session may queue', { skip: redisUrl === undefined || redisUrl === '' ? 'REDIS_URL is not set' : false }, async () => {
  const { rows } = await runIngestBench({ connections: 2, durationMs: 500, warmupMs: 300, modes: ['session-mac'], scrapeIntervalMs: 0, redisUrl: redisUrl! });
  const [row] = rows;
  assert.ok(row !== undefined && row.samples_stored > 0, `stored ${row?.samples_stored}`);
  assert.equal(row.window_frames, 256);
});
