// What a hostile gateway can make the agent's update path do with OTA_NOTICE frames
// (agent/ota/update-runner.ts; docs/security/threat-model.md). The notice's artifact URL is not
// signed: the runner fetches only https on a trusted origin, refuses anything else before any
// connection (AGENT_OTA_URL_REFUSED), and reports a failed download by its code, never the
// transport's words. Notices that do not authenticate a new execution cost no journal write and
// no report; notices waiting behind a running step are bounded (updateNoticeLimits.pendingMax).
// Counts, not timing: connections a local server accepted, journal saves, reports.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SdcError, errorRegistry } from '../../core/errors/index.js';
import type { FetchOutcome } from '../../core/tuf/updater.js';
import { UpdateRunner, artifactUrlRefusalReported, checkArtifactUrl, reportedOriginCharsMax, updateNoticeLimits, updateRunnerDefaults, type UpdateRunnerOptions } from '../../agent/ota/update-runner.js';
import { memoryUpdateJournal, type UpdateJournal, type UpdateJournalState } from '../../agent/ota/update-journal.js';
import type { KernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import type { KernelServiceStatus } from '../../kernel/payloads.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createNodeTufCrypto } from '../../runtime/tuf-crypto-node.js';
import { systemRandom, systemScheduler } from '../../runtime/system.js';
import { sqlJsTarget } from '../../server/control-plane/test-support.js';
import type { RolloutService } from '../../server/ota/rollouts.js';
import { memoryStore, openRolloutWorld, singleDeviceRollouts, type Notice, type OtaHarness, type Report } from './support/ota-rollout-driver.js';

/** A kernel that answers at once and records its calls. */
function recordingKernel(calls: string[]): KernelBridge {
  let current = '1.0.0';
  return {
    backend: 'mock',
    stageUpdate: async (args) => { calls.push('stage'); return { version: args.version, sizeBytes: 0n, sha256: args.sha256 }; },
    commitUpdate: async (version) => { calls.push('commit'); current = version; return { currentVersion: current, previousVersion: '1.0.0' }; },
    rollbackUpdate: async () => { calls.push('rollback'); return { currentVersion: current, previousVersion: '' }; },
    getStatus: async () => ({ currentVersion: current, previousVersion: '', stagedVersion: '' }) as KernelServiceStatus,
  } as KernelBridge;
}

/** A journal that counts its saves and records which execution each was for. */
function countingJournal(): UpdateJournal & { saves: string[] } {
  const inner = memoryUpdateJournal();
  const saves: string[] = [];
  return { saves, load: () => inner.load(), save: async (state: UpdateJournalState) => { saves.push(state.current?.executionId ?? ''); await inner.save(state); } };
}

/** A logger that keeps the fields of each warning, to read the codes it logged. */
function warningsLogger(): { warnings: Array<Record<string, unknown>>; logger: { debug(): void; info(): void; error(): void; warn(fields: unknown): void } } {
  const warnings: Array<Record<string, unknown>> = [];
  return { warnings, logger: { debug() {}, info() {}, error() {}, warn(fields) { warnings.push(fields as Record<string, unknown>); } } };
}

describe('OTA notices from a hostile gateway', () => {
  let h: OtaHarness;
  let service: RolloutService;
  let server: Server;
  let connections = 0;
  let requests = 0;
  let port = 0;
  let targetsDir: string;
  const provider = createNodeEd25519Provider();

  before(async () => {
    ({ h, service } = await openRolloutWorld(['nh-1', 'nh-2', 'nh-3', 'nh-4', 'nh-5', 'nh-6'], { id: 'nh-rel', artifact: new TextEncoder().encode('firmware 2.0.0 '.repeat(50)) }));
    // Stands for a service inside the device's network that the gateway wants probed.
    server = createServer((_request, response) => { requests += 1; response.writeHead(404).end('internal admin page'); });
    server.on('connection', () => { connections += 1; });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    targetsDir = await mkdtemp(join(tmpdir(), 'sdc-nh-'));
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    await h.close();
    await sqlJsTarget.cleanup();
    await rm(targetsDir, { recursive: true, force: true });
  });

  /** The TUF client's requests for targets (the route a refused artifact URL falls back to). */
  const tufTargetRequests: string[] = [];
  const fetcher = {
    async fetch(url: string): Promise<FetchOutcome> {
      if (url.includes('/v1/tuf/targets/')) tufTargetRequests.push(url);
      const answer = await h.cp.app.inject({ method: 'GET', url: new URL(url).pathname });
      if (answer.statusCode !== 200) return { ok: false, status: answer.statusCode, error: new SdcError('TUF_DOWNLOAD_FAILED', `${url}: ${answer.statusCode}`) };
      return { ok: true, bytes: new Uint8Array(answer.rawPayload) };
    },
  };
  const runnerFor = (deviceId: string, journal: UpdateJournal, sent: Report[], extra: Partial<UpdateRunnerOptions> & { artifactOrigins?: readonly string[] } = {}) => {
    const { artifactOrigins, ...rest } = extra;
    return new UpdateRunner({
      deviceId, platform: 'linux-x64', agentVersion: '0.1.0',
      resolveDirectorKey: (kid) => (kid === h.materials.commandSigner.kid ? h.materials.commandSigner.publicKey : undefined),
      kernel: recordingKernel([]), journal,
      source: {
        metadataBaseUrl: 'https://cp.test/v1/tuf/metadata/', targetBaseUrl: 'https://cp.test/v1/tuf/targets/', fetcher, metadata: memoryStore(), targets: memoryStore(),
        targetsDir: join(targetsDir, deviceId),
        // The default HTTP(S) fetcher: a request that is made reaches the server above.
        download: { scheduler: systemScheduler, retryDelayMs: 1, limits: { idleTimeoutMs: 10_000, totalTimeoutMs: 60_000, attemptsWithoutProgressMax: 2 }, ...(artifactOrigins === undefined ? {} : { artifactOrigins }) },
      },
      tufCrypto: createNodeTufCrypto(), ed25519: provider, clock: h.clock, random: systemRandom,
      send: (report) => { sent.push(report); return true; }, logger: { debug() {}, info() {}, warn() {}, error() {} }, ...rest,
    });
  };
  const { startFor, deliver } = singleDeviceRollouts(() => h, () => service, 'nh-rel');

  it('an http:// artifact URL and an https URL on another origin are refused (AGENT_OTA_URL_REFUSED) without a connection; the artifact comes by the TUF route', async () => {
    const { notice } = await startFor('nh-1');
    for (const url of [`http://127.0.0.1:${port}/internal/admin?x=1`, `https://127.0.0.1:${port}/internal/admin?x=1`]) {
      connections = 0;
      requests = 0;
      tufTargetRequests.length = 0;
      const sent: Report[] = [];
      const warnings: unknown[] = [];
      const runner = runnerFor('nh-1', memoryUpdateJournal(), sent, { logger: { debug() {}, info() {}, error() {}, warn(fields) { warnings.push(fields); } } });
      runner.onNotice({ ...notice, artifact_url: url });
      await runner.idle();
      assert.equal(connections, 0, `${url}: the device opened no connection`);
      assert.equal(requests, 0);
      assert.equal(runner.noticeCounts.urlsRefused, 1);
      assert.ok(warnings.some((fields) => (fields as { code?: string }).code === 'AGENT_OTA_URL_REFUSED'), `${url}: ${JSON.stringify(warnings)}`);
      assert.equal(tufTargetRequests.length, 1, 'downloaded from the control plane instead');
      assert.ok(sent.some((report) => report.event === 'download_complete'), `${url}: ${JSON.stringify(sent.map((report) => [report.event, report.error]))}`);
      assert.ok(!sent.some((report) => report.event === 'download_fail'));
    }
  });

  it('a refused artifact URL is reported with the download\'s step (its code and origin only): the control plane keeps the code on the execution and in the audit', async () => {
    const { view, notice } = await startFor('nh-6');
    const sent: Report[] = [];
    const runner = runnerFor('nh-6', memoryUpdateJournal(), sent);
    runner.onNotice({ ...notice, artifact_url: `https://127.0.0.1:${port}/internal/admin?X-Amz-Signature=secret` });
    await runner.idle();
    const completed = sent.find((report) => report.event === 'download_complete');
    assert.equal(completed?.error?.code, 'AGENT_OTA_URL_REFUSED', JSON.stringify(sent.map((report) => [report.event, report.error])));
    assert.match(completed!.error!.message, new RegExp(`origin https://127\\.0\\.0\\.1:${port} is not trusted`));
    assert.doesNotMatch(completed!.error!.message, /internal|admin|Signature|secret|cp\.test/, 'no path, no query, not the origins the agent trusts');
    await deliver('nh-6', sent);
    const execution = (await service.view(view.id)).executions[0]!;
    assert.notEqual(execution.state, 'failed', 'the update went on by the TUF route');
    assert.equal(execution.last_error_code, 'AGENT_OTA_URL_REFUSED');
    const audited = await h.db.query<{ payload_json: string }>("SELECT payload_json FROM audit_log WHERE kind = 'ota.execution.transition' AND subject = ?", ['device:nh-6']);
    const codes = audited.map((row) => JSON.parse(row.payload_json) as { event: string; code?: string }).filter((payload) => payload.code !== undefined);
    assert.deepEqual(codes.map((payload) => [payload.event, payload.code]), [['download_complete', 'AGENT_OTA_URL_REFUSED']]);
  });

  it('a reported URL refusal names at most reportedOriginCharsMax characters of the origin, and no origin for a URL without one', () => {
    const refusalOf = (url: string) => {
      try {
        checkArtifactUrl(url, ['https://cp.test']);
      } catch (error) {
        return artifactUrlRefusalReported(error);
      }
      throw new Error(`${url} was not refused`);
    };
    const long = refusalOf(`https://${'a'.repeat(60)}.${'b.'.repeat(1500)}example/x?sig=1`);
    assert.equal(long.code, 'AGENT_OTA_URL_REFUSED');
    assert.ok(long.message.length < reportedOriginCharsMax + 120, `${long.message.length}`);
    assert.equal(String(long.details?.['origin']).length, reportedOriginCharsMax + 3);
    const unparsed = refusalOf('https://[not-an-address/');
    assert.equal(unparsed.details?.['origin'], undefined);
    assert.doesNotMatch(unparsed.message, /not-an-address/);
  });

  it('a failed download on a trusted origin is reported by code and HTTP status, not the server\'s or the transport\'s words', async () => {
    const { notice } = await startFor('nh-2');
    const sent: Report[] = [];
    requests = 0;
    const runner = runnerFor('nh-2', memoryUpdateJournal(), sent, { artifactOrigins: [`http://127.0.0.1:${port}`] });
    runner.onNotice({ ...notice, artifact_url: `http://127.0.0.1:${port}/internal/admin?x=1` });
    await runner.idle();
    assert.ok(requests > 0, 'the trusted origin was asked');
    const failed = sent.find((report) => report.event === 'download_fail');
    assert.deepEqual(failed?.error, { code: 'OTA_DOWNLOAD_FAILED', message: `${errorRegistry.OTA_DOWNLOAD_FAILED.summary} (HTTP 404)` });
    // A port nothing listens on: the transport's error (ECONNREFUSED and the address) stays on the device.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const { notice: second } = await startFor('nh-3');
    const sentClosed: Report[] = [];
    const refusedRunner = runnerFor('nh-3', memoryUpdateJournal(), sentClosed, { artifactOrigins: [`http://127.0.0.1:${closedPort}`] });
    refusedRunner.onNotice({ ...second, artifact_url: `http://127.0.0.1:${closedPort}/a` });
    await refusedRunner.idle();
    const failedClosed = sentClosed.find((report) => report.event === 'download_fail');
    assert.equal(failedClosed?.error?.code, 'OTA_DOWNLOAD_FAILED');
    assert.doesNotMatch(failedClosed!.error!.message, /ECONNREFUSED|127\.0\.0\.1/);
  });

  it('notices that do not authenticate a new execution cost no journal write and no report', async () => {
    const { notice } = await startFor('nh-4');
    const journal = countingJournal();
    const sent: Report[] = [];
    const logged = warningsLogger();
    const runner = runnerFor('nh-4', journal, sent, { logger: logged.logger });
    const bogus = 200;
    const signature = notice.director.signature;
    for (let i = 0; i < bogus; i++) {
      // Half name an execution the signed document does not; half carry a signature that does not verify.
      const forged: Notice = i % 2 === 0
        ? { ...notice, execution_id: `x-bogus-${i}` }
        : { ...notice, execution_id: `x-bogus-${i}`, director: { ...notice.director, signature: { ...signature, sig: `${signature.sig.slice(0, 85)}${signature.sig.endsWith('A') ? 'B' : 'A'}` } } };
      runner.onNotice(forged);
      // In batches under the queue's bound, so each one is looked at (a flood beyond it is the next test's).
      if (i % 10 === 9) await runner.idle();
    }
    await runner.idle();
    assert.equal(journal.saves.length, 0, 'no journal write');
    assert.equal(sent.length, 0, 'no report');
    assert.equal(runner.noticeCounts.refused, bogus);
    // Logged with its code at the 1st, 2nd, 4th ... refusal (200 -> 8 lines), so a flood does not flood the log.
    assert.deepEqual(logged.warnings.filter((w) => w.code === 'AGENT_OTA_NOTICE_REFUSED').map((w) => w.refused), [1, 2, 4, 8, 16, 32, 64, 128]);
    // The genuine notice is still taken.
    runner.onNotice(notice);
    await runner.idle();
    assert.ok(journal.saves.length > 0 && journal.saves.every((id) => id === notice.execution_id), 'only the genuine execution was journaled');
    assert.equal(sent[0]?.event, 'accept');
    // Copies of the execution's own notice (it waits for its nonce) change nothing, so they write nothing.
    const savesBefore = journal.saves.length;
    const sentBefore = sent.length;
    const reportsHeld = runner.current?.reports.length ?? 0;
    assert.ok(reportsHeld > 0);
    for (let i = 0; i < 100; i++) {
      runner.onNotice(notice);
      if (i % 10 === 9) await runner.idle();
    }
    await runner.idle();
    assert.equal(runner.current?.state, 'health_checking');
    assert.equal(journal.saves.length, savesBefore, 'no journal write for 100 copies');
    // The copies are not authenticated: only the first one in a re-send interval sends the reports again (review h11, finding 10).
    assert.equal(sent.length - sentBefore, reportsHeld, 'the held reports once, not once per copy');
    assert.equal(runner.noticeCounts.reportResendsSkipped, 99);
    h.clock.advance(updateRunnerDefaults.reportResendIntervalMs);
    runner.onNotice(notice);
    runner.onNotice(notice);
    await runner.idle();
    assert.equal(sent.length - sentBefore, 2 * reportsHeld, 'once more after the interval');
    assert.equal(runner.noticeCounts.reportResendsSkipped, 100);
  });

  it('notices arriving while a step runs wait in a bounded queue, and only the genuine execution is journaled', async () => {
    const { notice } = await startFor('nh-5');
    const journal = countingJournal();
    const sent: Report[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    // Stands for a step that takes long (an hour's download): the first step waits here.
    const logged = warningsLogger();
    const runner = runnerFor('nh-5', journal, sent, { pace: () => gate, logger: logged.logger });
    runner.onNotice(notice);
    const flood = 10_000;
    for (let i = 0; i < flood; i++) runner.onNotice({ ...notice, execution_id: `x-flood-${i}` });
    assert.ok(runner.noticeCounts.pendingHighWater <= updateNoticeLimits.pendingMax, `at most ${updateNoticeLimits.pendingMax} waited, not ${runner.noticeCounts.pendingHighWater}`);
    assert.ok(runner.noticeCounts.dropped >= flood - updateNoticeLimits.pendingMax, `dropped ${runner.noticeCounts.dropped}`);
    // Logged with its code, at powers of two of the dropped count (a flood does not flood the log).
    assert.ok(logged.warnings.some((w) => w.code === 'AGENT_OTA_NOTICES_FULL'), 'the drop logged with its code');
    release();
    await runner.idle();
    assert.ok(journal.saves.every((id) => id === notice.execution_id), 'no flood notice was journaled');
    assert.equal(sent.filter((report) => report.execution_id !== notice.execution_id).length, 0, 'no report for a flood notice');
    assert.equal(runner.current?.executionId, notice.execution_id);
  });
});
