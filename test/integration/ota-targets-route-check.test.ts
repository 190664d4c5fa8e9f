// The TUF targets route's file checked against the director's target before it is staged (review
// h1 (OTA), finding 7). The presigned route checked the file it kept (fileMatches); the TUF route
// trusted the TUF client's check of the bytes it fetched, and looked the target's path up again in
// the notice. A targets store that keeps other bytes than it was given (a disk fault, another
// writer) then had the kernel stage them. Now the kept file is checked on both routes, at the runner.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { sqlJsTarget } from '../../server/control-plane/test-support.js';
import type { RolloutService } from '../../server/ota/rollouts.js';
import { controlPlaneFetcher, memoryStore, openRolloutWorld, singleDeviceRollouts, slotKernel, updateRunnerOn, type OtaHarness, type Report } from './support/ota-rollout-driver.js';

let h: OtaHarness;
let service: RolloutService;
before(async () => { ({ h, service } = await openRolloutWorld(['tr-1', 'tr-2'], { id: 'tr-rel', artifact: new TextEncoder().encode('firmware 2.0.0 '.repeat(50)) })); });
after(async () => { await h.close(); await sqlJsTarget.cleanup(); });

const run = async (deviceId: string, flip: boolean) => {
  const fetcher = controlPlaneFetcher(() => h);
  const { deliver, startFor, stateOf } = singleDeviceRollouts(() => h, () => service, 'tr-rel');
  const targets = memoryStore();
  // A store that keeps one byte other than it was given.
  const write = targets.write.bind(targets);
  targets.write = async (name, bytes) => { const kept = bytes.slice(); if (flip) kept[0] = kept[0]! ^ 1; await write(name, kept); };
  const calls: string[] = [];
  const sent: Report[] = [];
  const { view, notice } = await startFor(deviceId);
  const runner = updateRunnerOn(h, fetcher, sent, {
    deviceId, kernel: slotKernel(calls),
    source: { metadataBaseUrl: 'https://cp.test/v1/tuf/metadata/', targetBaseUrl: 'https://cp.test/v1/tuf/targets/', fetcher, metadata: memoryStore(), targets, targetsDir: '/nonexistent' },
  });
  runner.onNotice(notice);
  await runner.idle();
  const events = sent.map((report) => `${report.event}${report.error === undefined ? '' : `:${report.error.code}`}`);
  await deliver(deviceId, sent);
  return { events, calls, files: [...targets.files.keys()], state: await stateOf(view.id) };
};

it('a file kept with other bytes than the signed target is refused before STAGE, and removed', async () => {
  const bad = await run('tr-1', true);
  assert.deepEqual(bad.events, ['accept', 'precheck_pass', 'download_fail:OTA_DOWNLOAD_DIGEST_MISMATCH']);
  assert.deepEqual(bad.calls, []);
  assert.deepEqual(bad.files, []);
  assert.equal(bad.state, 'failed');
  const good = await run('tr-2', false);
  assert.deepEqual(good.calls, ['stage', 'commit']);
});
