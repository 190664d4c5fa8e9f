// The agent's artifact download over the control plane's presigned URL (issue 10, "Artifacts and
// downloads"), in one process on real sockets: a control plane listening on HTTP with an image
// repository and its embedded blob store, the rollout coordinator's notice carrying a presigned
// GET, and the agent's update runner (agent/ota/update-runner.ts) downloading it with the
// resumable downloader. The control plane runs on a ManualClock, which also dates and checks the
// presigned URLs, so a URL is made to expire by moving that clock. What is tested:
// - the artifact comes from /v1/blobs by presigned GET, never from the TUF targets route;
// - a download cut half way whose URL has meanwhile expired asks for a new URL (the
//   `artifact_url_expired` report), gets it in the next notice, and resumes from the cut with
//   Range + If-Range: nothing downloaded twice, the execution never failed;
// - URLs refused every time end in download_fail after a bounded number of renewals;
// - with the blob store in S3 (s3rver), the upload lands in the bucket and the notice's URL is S3's.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import type { FetchOutcome } from '../../core/tuf/updater.js';
import { updateDownloadDefaults, UpdateRunner } from '../../agent/ota/update-runner.js';
import { memoryUpdateJournal } from '../../agent/ota/update-journal.js';
import type { TufFileStore } from '../../agent/tuf/driver.js';
import type { KernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import type { KernelServiceStatus } from '../../kernel/payloads.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createNodeTufCrypto } from '../../runtime/tuf-crypto-node.js';
import { systemRandom, systemScheduler } from '../../runtime/system.js';
import { otaKeys } from '../../server/bus-contract/ota-keys.js';
import { sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';
import type { OtaServices } from '../../server/ota/ota-service.js';
import type { RepositoryKeys } from '../../server/ota/repository-init.js';
import { RolloutService } from '../../server/ota/rollouts.js';
import { makeOtaHarness, publishTestRelease, rolloutPolicyOf } from '../../server/ota/test-support.js';
import { s3, type BlobFixture } from '../../server/ota/blob-store-test-support.js';

type Notice = MessageBody<'OTA_NOTICE'>;
type Report = MessageBody<'OTA_REPORT'>;

/** What the blob route saw: each request's Range and the status it was answered with. */
interface BlobRequest { readonly range: string | undefined; status: number }

function memoryStore(): TufFileStore {
  const files = new Map<string, Uint8Array>();
  return { async read(name) { return files.get(name); }, async write(name, bytes) { files.set(name, bytes); }, async delete(name) { files.delete(name); } };
}

/** A kernel that records STAGE and COMMIT (the download is what is tested here). */
function recordingKernel(calls: string[]): KernelBridge {
  let current = '1.0.0';
  let previous = '';
  let staged = '';
  return {
    backend: 'mock',
    stageUpdate: async (args: { version: string; sha256: Uint8Array }) => { calls.push('stage'); staged = args.version; return { version: args.version, sizeBytes: 0n, sha256: args.sha256 }; },
    commitUpdate: async (version: string) => { calls.push('commit'); previous = current; current = version; staged = ''; return { currentVersion: current, previousVersion: previous }; },
    rollbackUpdate: async () => { calls.push('rollback'); current = previous; return { currentVersion: current, previousVersion: '' }; },
    getStatus: async () => ({ currentVersion: current, previousVersion: previous, stagedVersion: staged }) as KernelServiceStatus,
  } as unknown as KernelBridge;
}

/** After `bytesMax` body bytes, the connection is destroyed (a cut half way), and `onCut` runs. */
function cutAfter(response: ServerResponse, bytesMax: number, onCut: () => void): void {
  const write = response.write.bind(response) as (chunk: Buffer) => boolean;
  let sent = 0;
  response.write = ((chunk: Buffer | string) => {
    const bytes = Buffer.from(chunk);
    if (sent >= bytesMax) return false;
    const part = bytes.subarray(0, bytesMax - sent);
    sent += part.length;
    write(part);
    if (sent >= bytesMax) {
      onCut();
      setImmediate(() => response.socket?.destroy());
    }
    return true;
  }) as typeof response.write;
}

async function waitFor(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 3_000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(condition(), `${what}: not reached`);
}

describe('the agent downloads its artifact by presigned URL, resumes it, and asks again when the URL expired', () => {
  let h: Harness & { ota: OtaServices; keys: RepositoryKeys | undefined };
  let service: RolloutService;
  let targetsDir: string;
  const artifact = randomBytes(300_000);
  const provider = createNodeEd25519Provider();
  const blobRequests: BlobRequest[] = [];
  const tufTargetRequests: string[] = [];
  /** The next blob GET is cut after this many bytes, and then the clock moves past the URL's expiry. */
  let cut: { bytes: number; advanceMs: number } | undefined;
  /** The control plane's plain-HTTP origin, where its blob store's presigned URLs point: trusted explicitly (the default is the https metadata origin). */
  let blobOrigin = '';

  before(async () => {
    h = await makeOtaHarness(sqlJsTarget);
    targetsDir = await mkdtemp(join(tmpdir(), 'sdc-ota-presigned-'));
    for (const id of ['pd-1', 'pd-2', 'pd-3']) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [id, h.clock.nowMs()]);
    h.cp.app.addHook('onRequest', async (request, reply) => {
      if (!request.url.startsWith('/v1/blobs/')) return;
      const seen: BlobRequest = { range: request.headers.range, status: 0 };
      blobRequests.push(seen);
      const writeHead = reply.raw.writeHead.bind(reply.raw) as (...args: unknown[]) => ServerResponse;
      reply.raw.writeHead = ((status: number, ...rest: unknown[]) => { seen.status = status; return writeHead(status, ...rest); }) as typeof reply.raw.writeHead;
      if (cut !== undefined && request.method === 'GET') {
        const { bytes, advanceMs } = cut;
        cut = undefined;
        cutAfter(reply.raw, bytes, () => h.clock.advance(advanceMs));
      }
    });
    // Plain HTTP on loopback: the embedded store's presigned URLs now name this address.
    blobOrigin = new URL((await h.cp.listen({ host: '127.0.0.1', port: 0, tls: false })).url).origin;
    await publishTestRelease(h.ota, h.keys!, { id: 'pd-rel', version: '2.0.0', artifact });
    service = new RolloutService({
      context: h.cp.context, releases: h.ota.releases, signer: h.materials.commandSigner, policy: rolloutPolicyOf(h.cp), artifactUrlExpirySeconds: 60,
      verifyReportFrame: async (_deviceId, frame) => JSON.parse(frame) as Report,
    });
  });
  after(async () => {
    await h.close();
    await sqlJsTarget.cleanup();
    await rm(targetsDir, { recursive: true, force: true });
  });

  /** TUF metadata from the control plane's app; a request for a target is recorded (it must not happen). */
  const fetcher = {
    async fetch(url: string): Promise<FetchOutcome> {
      if (url.includes('/v1/tuf/targets/')) tufTargetRequests.push(url);
      const answer = await h.cp.app.inject({ method: 'GET', url: new URL(url).pathname });
      if (answer.statusCode !== 200) return { ok: false, status: answer.statusCode, error: new SdcError('TUF_DOWNLOAD_FAILED', `${url}: ${answer.statusCode}`) };
      return { ok: true, bytes: new Uint8Array(answer.rawPayload) };
    },
  };
  const runnerFor = (deviceId: string, calls: string[], sent: Report[], logs: string[]) => new UpdateRunner({
    deviceId, platform: 'linux-x64', agentVersion: '0.1.0',
    resolveDirectorKey: (kid) => (kid === h.materials.commandSigner.kid ? h.materials.commandSigner.publicKey : undefined),
    kernel: recordingKernel(calls), journal: memoryUpdateJournal(),
    source: {
      metadataBaseUrl: 'https://cp.test/v1/tuf/metadata/', targetBaseUrl: 'https://cp.test/v1/tuf/targets/', fetcher, metadata: memoryStore(), targets: memoryStore(),
      targetsDir: join(targetsDir, deviceId), download: { scheduler: systemScheduler, retryDelayMs: 1, limits: { idleTimeoutMs: 10_000, totalTimeoutMs: 120_000, attemptsWithoutProgressMax: 5 }, artifactOrigins: [blobOrigin] },
    },
    tufCrypto: createNodeTufCrypto(), ed25519: provider, clock: h.clock, random: systemRandom,
    send: (report) => { sent.push(report); return true; },
    logger: { debug() {}, info(_fields, message) { logs.push(message); }, warn(_fields, message) { logs.push(message); }, error(_fields, message) { logs.push(message); } },
  });
  const noticeOf = async (deviceId: string): Promise<Notice> => JSON.parse((await h.cp.context.kv.get(otaKeys.notice(deviceId)))!) as Notice;
  const deliver = async (deviceId: string, reports: Report[]) => {
    for (const report of reports.splice(0)) await service.onReport({ device_id: deviceId, gateway_id: 'gw-1', at_ms: h.clock.nowMs(), frame: JSON.stringify(report) });
  };
  const startFor = async (deviceId: string) => service.start({
    releaseId: 'pd-rel', platform: 'linux-x64', deviceIds: [deviceId],
    plan: { waves: [{ selector: { percent: 100 }, successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs: 0 }, errorThreshold: { executedMin: 1, failedPercentMax: 0 } }], devicesPerMinuteMax: 10 },
  }, 'olga');
  const stateOf = async (rolloutId: string) => (await service.view(rolloutId)).executions[0]!.state;
  const sha256 = createHash('sha256').update(artifact).digest('hex');

  it('a cut download whose URL expired asks for a new URL and resumes from the cut with it', async () => {
    const calls: string[] = [];
    const sent: Report[] = [];
    const logs: string[] = [];
    const view = await startFor('pd-1');
    const first = await noticeOf('pd-1');
    assert.match(first.artifact_url ?? '', new RegExp(`^http://127\\.0\\.0\\.1:\\d+/v1/blobs/sdc/ota/artifacts/${sha256}\\?X-Amz-Algorithm=AWS4-HMAC-SHA256&`));
    assert.match(first.artifact_url!, /X-Amz-Expires=60&/);
    blobRequests.length = 0;
    // Cut after 100,000 bytes; the clock then passes the URL's 60 s, so the resumed request is refused.
    cut = { bytes: 100_000, advanceMs: 61_000 };
    const runner = runnerFor('pd-1', calls, sent, logs);
    runner.onNotice(first);
    await waitFor('the request for a new URL', () => sent.some((report) => report.event === 'artifact_url_expired'));
    await runner.idle();
    assert.equal(runner.current?.state, 'downloading', 'it waits for a new URL; the download did not fail');
    assert.deepEqual(blobRequests.map((request) => [request.range, request.status]), [[undefined, 200], ['bytes=100000-', 403]]);
    await deliver('pd-1', sent);
    assert.equal(await stateOf(view.id), 'downloading');
    const second = await noticeOf('pd-1');
    assert.notEqual(second.artifact_url, first.artifact_url, 'the control plane presigned a new URL, dated now');
    runner.onNotice(second);
    await runner.idle();
    assert.deepEqual(blobRequests.map((request) => [request.range, request.status]), [[undefined, 200], ['bytes=100000-', 403], ['bytes=100000-', 206]],
      'resumed from the cut with the new URL: nothing downloaded twice');
    assert.deepEqual(tufTargetRequests, [], 'never from the TUF targets route');
    assert.ok(logs.includes('artifact downloaded from its presigned URL'));
    assert.deepEqual(calls, ['stage', 'commit'], 'STAGE took the verified artifact');
    assert.equal(runner.current?.state, 'health_checking');
    await deliver('pd-1', sent);
    assert.equal(await stateOf(view.id), 'health_checking');
  });

  it('a stored notice whose URL expired while the device was away gets a new URL before any request is made', async () => {
    const calls: string[] = [];
    const sent: Report[] = [];
    const view = await startFor('pd-3');
    const stored = await noticeOf('pd-3');
    // The device reconnects after the URL's 60 s: the gateway re-sends the stored notice as it is.
    h.clock.advance(61_000);
    blobRequests.length = 0;
    const runner = runnerFor('pd-3', calls, sent, []);
    runner.onNotice(stored);
    await runner.idle();
    assert.deepEqual(sent.map((report) => report.event), ['accept', 'precheck_pass', 'artifact_url_expired']);
    assert.equal(blobRequests.length, 0, 'no request with the expired URL');
    await deliver('pd-3', sent);
    runner.onNotice(await noticeOf('pd-3'));
    await runner.idle();
    assert.deepEqual(blobRequests.map((request) => [request.range, request.status]), [[undefined, 200]], 'one request in all');
    assert.deepEqual(calls, ['stage', 'commit']);
    await deliver('pd-3', sent);
    assert.equal(await stateOf(view.id), 'health_checking');
  });

  it('URLs refused every time end the download as failed after a bounded number of new URLs', async () => {
    const calls: string[] = [];
    const sent: Report[] = [];
    const view = await startFor('pd-2');
    const runner = runnerFor('pd-2', calls, sent, []);
    blobRequests.length = 0;
    // Every notice's URL is already past its 60 s when it is used: the clock moves after each presign.
    let notice = await noticeOf('pd-2');
    for (let round = 0; round <= updateDownloadDefaults.urlRenewalsMax; round++) {
      h.clock.advance(61_000);
      runner.onNotice(notice);
      await runner.idle();
      await deliver('pd-2', sent);
      notice = await noticeOf('pd-2').catch(() => notice);
    }
    assert.equal(runner.current?.state, 'failed');
    // The first URL is seen expired before use (no request); each later one is tried and refused.
    assert.equal(blobRequests.length, updateDownloadDefaults.urlRenewalsMax);
    assert.ok(blobRequests.every((request) => request.status === 403));
    assert.deepEqual(calls, [], 'nothing reached the kernel');
    assert.equal(await stateOf(view.id), 'failed');
  });
});

describe('with the blob store in S3 (s3rver), the release artifact is uploaded there and the agent downloads it by S3\'s presigned URL', () => {
  let fixture: BlobFixture;
  let h: Harness & { ota: OtaServices; keys: RepositoryKeys | undefined };
  let targetsDir: string;
  const artifact = randomBytes(120_000);

  before(async () => {
    fixture = await s3();
    h = await makeOtaHarness(sqlJsTarget, { otaBlobs: { s3: fixture.endpoint } });
    targetsDir = await mkdtemp(join(tmpdir(), 'sdc-ota-s3-'));
    await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", ['s3-1', h.clock.nowMs()]);
    await publishTestRelease(h.ota, h.keys!, { id: 's3-rel', version: '2.0.0', artifact });
  });
  after(async () => {
    await h.close();
    await sqlJsTarget.cleanup();
    await fixture.close();
    await rm(targetsDir, { recursive: true, force: true });
  });

  it('notice, presigned GET from the bucket, verified, staged', async () => {
    const sha256 = createHash('sha256').update(artifact).digest('hex');
    assert.equal((await fixture.store.head(`ota/artifacts/${sha256}`))?.length, artifact.length, 'the upload went to the bucket');
    const service = new RolloutService({
      context: h.cp.context, releases: h.ota.releases, signer: h.materials.commandSigner, policy: rolloutPolicyOf(h.cp),
      verifyReportFrame: async (_deviceId, frame) => JSON.parse(frame) as Report,
    });
    await service.start({
      releaseId: 's3-rel', platform: 'linux-x64', deviceIds: ['s3-1'],
      plan: { waves: [{ selector: { percent: 100 }, successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs: 0 }, errorThreshold: { executedMin: 1, failedPercentMax: 0 } }], devicesPerMinuteMax: 10 },
    }, 'olga');
    const notice = JSON.parse((await h.cp.context.kv.get(otaKeys.notice('s3-1')))!) as Notice;
    assert.ok(notice.artifact_url?.startsWith(`${fixture.endpoint.endpoint}/sdc/ota/artifacts/${sha256}?`), notice.artifact_url);
    const tufTargetRequests: string[] = [];
    const calls: string[] = [];
    const logs: string[] = [];
    const runner = new UpdateRunner({
      deviceId: 's3-1', platform: 'linux-x64', agentVersion: '0.1.0',
      resolveDirectorKey: (kid) => (kid === h.materials.commandSigner.kid ? h.materials.commandSigner.publicKey : undefined),
      kernel: recordingKernel(calls), journal: memoryUpdateJournal(),
      source: {
        metadataBaseUrl: 'https://cp.test/v1/tuf/metadata/', targetBaseUrl: 'https://cp.test/v1/tuf/targets/', metadata: memoryStore(), targets: memoryStore(),
        fetcher: {
          async fetch(url: string): Promise<FetchOutcome> {
            if (url.includes('/v1/tuf/targets/')) tufTargetRequests.push(url);
            const answer = await h.cp.app.inject({ method: 'GET', url: new URL(url).pathname });
            return answer.statusCode === 200 ? { ok: true, bytes: new Uint8Array(answer.rawPayload) } : { ok: false, status: answer.statusCode, error: new SdcError('TUF_DOWNLOAD_FAILED', url) };
          },
        },
        targetsDir, download: { scheduler: systemScheduler, retryDelayMs: 1, limits: { idleTimeoutMs: 10_000, totalTimeoutMs: 120_000, attemptsWithoutProgressMax: 5 }, artifactOrigins: [new URL(fixture.endpoint.endpoint).origin] },
      },
      tufCrypto: createNodeTufCrypto(), ed25519: createNodeEd25519Provider(), clock: h.clock, random: systemRandom, send: () => true,
      logger: { debug() {}, info(_fields, message) { logs.push(message); }, warn(_fields, message) { logs.push(message); }, error(_fields, message) { logs.push(message); } },
    });
    runner.onNotice(notice);
    await runner.idle();
    assert.equal(runner.current?.state, 'health_checking', JSON.stringify(logs));
    assert.ok(logs.includes('artifact downloaded from its presigned URL'));
    assert.deepEqual(tufTargetRequests, []);
    assert.deepEqual(calls, ['stage', 'commit']);
  });
});
