import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { liveChannel } from '../server/bus-contract/streams.js';
import { systemClock } from '../runtime/system.js';
import { startBenchDeployment } from './roundtrip-deployment.js';
import { LiveTracker } from './roundtrip-live.js';
import { sleep } from './wall-time.js';

/** Polls `done` every 50 ms, at most `pollsMax` times: a bound on the wait, not a timing assertion. */
async function until(done: () => boolean, pollsMax: number): Promise<boolean> {
  for (let i = 0; i < pollsMax && !done(); i += 1) await sleep(50);
  return done();
}

/**
 * The N = 1,000 roundtrip (2026-12-03) outlived its operator token: the hub closed the live
 * stream with `token_expired`, and the tracker reopened it with the same first token (accepted
 * within the verifier's clock skew and closed again at once, then refused), so every later
 * terminal event was lost: 1 of 3,000 commands seen. Here the token lives 3 s: the tracker must
 * see the drop, log in again, reopen the stream, and receive the next event live.
 */
test('the live tracker outlives its token: dropped for token_expired, reconnects with a renewed token, sees the next event live', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-rt-live-'));
  const bench = await startBenchDeployment({ dataDir: dir, logger: pino({ level: 'silent' }), tokenTtlMs: 3_000 });
  const live = await LiveTracker.open({ apiUrl: bench.apiUrl, caPem: bench.caPem, api: bench.api, currentToken: bench.currentToken, renewToken: bench.renewToken });
  try {
    const firstToken = bench.currentToken();
    assert.ok(await until(() => live.reconnects >= 1 && live.connected, 400), `reconnected: ${live.reconnects}, drops ${JSON.stringify(live.dropsByReason)}`);
    assert.ok((live.dropsByReason['token_expired'] ?? 0) >= 1, JSON.stringify(live.dropsByReason));
    assert.notEqual(bench.currentToken(), firstToken, 'the stream reopened with a renewed token');
    assert.equal(live.reconnectFailures, 0);

    const seen = live.waitTerminal('cmd-after-expiry', systemClock.nowMs() + 60_000);
    await bench.deployment.stores.kv.publish(liveChannel, JSON.stringify({ type: 'command', command_id: 'cmd-after-expiry', state: 'succeeded', at_ms: systemClock.nowMs() }));
    const result = await seen;
    assert.equal(result?.state, 'succeeded');
    assert.equal(typeof result?.atMs, 'number', 'seen on the live stream, not read back from the API');
  } finally {
    live.close();
    await bench.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
