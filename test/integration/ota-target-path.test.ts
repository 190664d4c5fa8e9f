// A signed target path that names no file of its own (review h16, finding 2): the agent kept a
// target in `join(targetsDir, encodeURIComponent(path))`, and quoting leaves `.` and `..` as they
// are, so a target `..` named the download directory's parent (the update then failed with a raw
// EISDIR, or on a store without folders staged whatever sat there). The image repository and the
// director agreeing on such a path is still no licence to pick the file: the update runner refuses
// it OTA_TARGET_PATH_INVALID before anything is downloaded, and reports it like any refused target.
// The control plane never names such a path (`<release id>/<artifact name>`), so the repository here
// is a test one that lists the release's own artifact under the bad path, with the director's
// document signed again by the control plane's command key.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { directorSignedJson, directorSigningBytes, parseDirectorSigned } from '../../core/ota/director.js';
import type { TufJsonObject } from '../../core/tuf/olpc-json.js';
import type { FetchOutcome } from '../../core/tuf/updater.js';
import { targetFileIn } from '../../agent/ota/update-runner.js';
import { memoryStore as memoryTufStore, TestTufRepository } from '../../agent/tuf/testing/tuf-repository.js';
import type { TufFetcher } from '../../agent/tuf/http-fetcher.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { sqlJsTarget } from '../../server/control-plane/test-support.js';
import type { RolloutService } from '../../server/ota/rollouts.js';
import { openRolloutWorld, singleDeviceRollouts, slotKernel, updateRunnerOn, type Notice, type OtaHarness, type Report } from './support/ota-rollout-driver.js';

const provider = createNodeEd25519Provider();
const repoUrl = 'https://repo.test/';
const targetsDir = '/device/ota/targets';
const releaseId = 'tp-rel';
const artifact = new TextEncoder().encode('firmware 2.0.0 '.repeat(30));

describe('a signed target path that names no file of its own', () => {
  let h: OtaHarness;
  let service: RolloutService;

  before(async () => {
    ({ h, service } = await openRolloutWorld(['tp-1', 'tp-2', 'tp-3'], { id: releaseId, artifact }));
  });
  after(async () => { await h.close(); await sqlJsTarget.cleanup(); });

  const { deliver, startFor, stateOf } = singleDeviceRollouts(() => h, () => service, releaseId);

  /** The control plane's published entry for the release (length, hashes, custom data), read as a device would. */
  const publishedEntry = async (): Promise<TufJsonObject> => {
    const get = async (name: string) => (JSON.parse((await h.cp.app.inject({ method: 'GET', url: `/v1/tuf/metadata/${name}` })).body) as { signed: TufJsonObject }).signed;
    const timestamp = await get('timestamp.json');
    const snapshot = await get(`${((timestamp['meta'] as TufJsonObject)['snapshot.json'] as TufJsonObject)['version']}.snapshot.json`);
    const targets = await get(`${((snapshot['meta'] as TufJsonObject)['targets.json'] as TufJsonObject)['version']}.targets.json`);
    return (targets['targets'] as TufJsonObject)[`${releaseId}/agent.bin`] as TufJsonObject;
  };

  /** A repository listing the release's artifact under `path`, and the notice's director document naming `path`, signed again. */
  const worldFor = async (notice: Notice, path: string): Promise<{ fetcher: TufFetcher; notice: Notice; repo: TestTufRepository }> => {
    const entry = await publishedEntry();
    const repo = new TestTufRepository({ nowMs: h.clock.nowMs() });
    repo.addTarget('targets', path, artifact, { hashes: entry['hashes']!, custom: entry['custom']! });
    repo.release();
    const fetcher: TufFetcher = {
      async fetch(url: string): Promise<FetchOutcome> {
        const served = repo.serve(url.slice(repoUrl.length));
        if (served.bytes !== undefined) return { ok: true, bytes: served.bytes };
        return { ok: false, status: served.status, error: new SdcError('TUF_DOWNLOAD_FAILED', `${url}: ${served.status}`) };
      },
    };
    const doc = parseDirectorSigned(notice.director.signed);
    const moved = { ...doc, target: { ...doc.target, path } };
    const sig = base64urlFromBytes(provider.sign(h.materials.commandSigner.seed, directorSigningBytes(moved)));
    const director = { signed: directorSignedJson(moved), signature: { key_id: notice.director.signature.key_id, sig } };
    // The TUF route: no presigned URL, so the target would come through the repository above.
    const { artifact_url: _ignored, ...rest } = notice;
    return { fetcher, notice: { ...rest, director }, repo };
  };

  for (const [deviceId, path] of [['tp-1', '..'], ['tp-2', '.']] as const) {
    it(`a target path ${path} is refused OTA_TARGET_PATH_INVALID before any download, and the control plane records it`, async () => {
      const { view, notice } = await startFor(deviceId);
      const world = await worldFor(notice, path);
      const calls: string[] = [];
      const sent: Report[] = [];
      const targets = memoryTufStore();
      const runner = updateRunnerOn(h, world.fetcher, sent, {
        deviceId, kernel: slotKernel(calls),
        source: { metadataBaseUrl: `${repoUrl}metadata/`, targetBaseUrl: `${repoUrl}targets/`, fetcher: world.fetcher, metadata: memoryTufStore(), targets, targetsDir },
      });
      runner.onNotice(world.notice);
      await runner.idle();
      assert.equal(runner.current?.state, 'rejected');
      assert.deepEqual([sent[0]?.event, sent[0]?.error?.code], ['refuse', 'OTA_TARGET_PATH_INVALID']);
      assert.deepEqual(calls, [], 'nothing reaches the kernel');
      assert.deepEqual([...targets.files.keys()], [], 'nothing was stored');
      assert.ok(!world.repo.requests.some((p) => p.startsWith('targets/')), 'the artifact was never asked for');
      await deliver(deviceId, sent);
      assert.equal(await stateOf(view.id), 'rejected');
      assert.equal((await service.view(view.id)).executions[0]!.last_error_code, 'OTA_TARGET_PATH_INVALID');
    });
  }

  it('the same repository and director with an ordinary path update the device (the refusal is the path\'s)', async () => {
    const { notice } = await startFor('tp-3');
    const world = await worldFor(notice, 'releases/agent (2).bin');
    const calls: string[] = [];
    const sent: Report[] = [];
    const targets = memoryTufStore();
    const runner = updateRunnerOn(h, world.fetcher, sent, {
      deviceId: 'tp-3', kernel: slotKernel(calls),
      source: { metadataBaseUrl: `${repoUrl}metadata/`, targetBaseUrl: `${repoUrl}targets/`, fetcher: world.fetcher, metadata: memoryTufStore(), targets, targetsDir },
    });
    runner.onNotice(world.notice);
    await runner.idle();
    assert.deepEqual(calls, ['stage', 'commit']);
    assert.equal(runner.current?.state, 'health_checking');
    // The file the kernel is told to stage is the one the TUF client wrote (both quote the path alike).
    assert.deepEqual([...targets.files.keys()], ['releases%2Fagent%20%282%29.bin']);
    assert.equal(targetFileIn(targetsDir, 'releases/agent (2).bin'), `${targetsDir}/releases%2Fagent%20%282%29.bin`);
  });
});

describe('targetFileIn', () => {
  it('keeps every target directly in the download directory', () => {
    assert.equal(targetFileIn('/d/targets/', 'a/../../b'), '/d/targets/a%2F..%2F..%2Fb');
    for (const path of ['.', '..']) assert.throws(() => targetFileIn('/d/targets', path), (e) => SdcError.is(e, 'OTA_TARGET_PATH_INVALID'));
  });
});
