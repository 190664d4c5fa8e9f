import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StepResult, TufStep, Workflow } from '../../core/tuf/updater.js';
import type { BodyLimits } from './bounded-body.js';
import { defaultTufTimeouts, memoryTufStore, runTufWorkflow, tufSlowestBytesPerSecond } from './driver.js';
import type { TufFetcher } from './http-fetcher.js';

// Review h1 of the OTA path, finding 4 (the part done): the whole-download limit of a fetch grows
// with the signed length of what it fetches; the idle limit does not.

function* fetches(bytesMaxes: readonly number[]): Workflow<void> {
  for (const bytesMax of bytesMaxes) {
    const step: TufStep = { kind: 'fetch', url: `https://repo.test/${bytesMax}`, bytesMax, purpose: `file of ${bytesMax}` };
    const outcome: StepResult = yield step;
    assert.ok(outcome !== undefined && !(outcome instanceof Uint8Array) && outcome.ok);
  }
}

test('a fetch of at most L bytes may take max(5 minutes, L at 32 KiB/s); the idle limit stays 30 s', async () => {
  const seen: BodyLimits[] = [];
  const fetcher: TufFetcher = { fetch: async (_url, limits) => { seen.push(limits); return { ok: true, bytes: new Uint8Array(0) }; } };
  const mib = 1024 * 1024;
  await runTufWorkflow(fetches([16_384, 5_000_000, 128 * mib]), { metadata: memoryTufStore(), fetcher, timeouts: defaultTufTimeouts });
  assert.equal(tufSlowestBytesPerSecond, 32 * 1024);
  assert.deepEqual(seen.map((limits) => limits.totalTimeoutMs), [300_000, 300_000, 4_096_000], 'metadata keeps 5 minutes; 128 MiB gets 4,096 s');
  assert.deepEqual(seen.map((limits) => limits.idleTimeoutMs), [30_000, 30_000, 30_000]);
  assert.deepEqual(seen.map((limits) => limits.bytesMax), [16_384, 5_000_000, 128 * mib]);
});
