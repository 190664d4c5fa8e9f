import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { main } from '../../cli/main.js';
import type { CliIo } from '../../cli/command.js';
import { sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';
import { makeOtaHarness } from '../../server/ota/test-support.js';
import type { OtaServices } from '../../server/ota/ota-service.js';

/**
 * Signed releases end to end with the real tools: `sdc ota init` creates the repository in a
 * control plane's data directory, an operator creates and uploads a release with `sdc release`
 * over HTTPS, two release signers sign it with their own encrypted key files (one is refused as
 * under threshold first), it is published, and our TUF client (`sdc tuf-client`, the agent's
 * workflow) refreshes against the running control plane, then downloads and verifies the target.
 * A re-signed timestamp is picked up by the next refresh; a revoked release can no longer be
 * downloaded. The TUF client fetches over plain HTTP here (it has no option for our private CA
 * yet); TUF's trust is in the signatures, which is what this test exercises.
 */

const password = 'operator password 1';
const passphrase = 'release signer passphrase 1';

function cli(env: Record<string, string>, stdin = '') {
  return async (...argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIo = { stdout: (t) => out.push(t), stderr: (t) => err.push(t), readStdin: async () => stdin, env: { SDC_LOG_LEVEL: 'silent', ...env } };
    const code = await main(argv, io);
    return { code, out: out.join(''), err: err.join('') };
  };
}

describe('signed release, published by the control plane, verified by the TUF client', () => {
  let h: Harness;
  let work: string;
  let ota: OtaServices;
  let httpServer: Server;
  let tufUrl: string;
  let run: ReturnType<typeof cli>;
  let apiUrl: string;
  const artifact = new Uint8Array(Buffer.from('sdc agent 2.4.0\n'.repeat(4096)));

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'sdc-ota-e2e-'));
    const passphraseFile = join(work, 'passphrase');
    await writeFile(passphraseFile, `${passphrase}\n`, { mode: 0o600 });
    run = cli({ XDG_CONFIG_HOME: join(work, 'config') }, `${password}\n`);
    // sdc ota init into the data directory before the control plane starts, as an operator does before sdc serve.
    const harness = await makeOtaHarness(sqlJsTarget, {
      createRepository: async (dataDir) => {
        const init = await run('ota', 'init', '--dir', dataDir, '--keys-out', join(work, 'keys'), '--passphrase-file', passphraseFile);
        assert.equal(init.code, 0, init.err);
      },
    });
    h = harness;
    ota = harness.ota;
    await h.cp.auth.users.add({ name: 'olga', role: 'operator', password, nowMs: h.clock.nowMs() });
    const { url } = await h.cp.listen({ host: '127.0.0.1', port: 0, tls: true });
    apiUrl = url;
    await writeFile(join(work, 'root-ca.pem'), h.materials.rootCaPem);
    const login = await run('login', '--server', url, '--name', 'olga', '--ca', join(work, 'root-ca.pem'), '--password-stdin');
    assert.equal(login.code, 0, login.err);
    httpServer = createServer((request, response) => h.cp.app.routing(request, response));
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    tufUrl = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}/v1/tuf`;
  });

  after(async () => {
    await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    await h.close();
    await rm(work, { recursive: true, force: true });
  });

  it('publishes with two of three release signers and the TUF client downloads and verifies the target', async () => {
    const created = await run('release', 'create', '--id', 'rel-2-4-0', '--version', '2.4.0', '--artifact-name', 'agent.bin', '--platform', 'linux-x64',
      '--min-agent-version', '1.0.0', '--reboot', '--probe', 'agent_online', '--json');
    assert.equal(created.code, 0, created.err);
    await writeFile(join(work, 'agent.bin'), artifact);
    const uploaded = await run('release', 'upload', 'rel-2-4-0', '--file', join(work, 'agent.bin'), '--json');
    assert.equal(uploaded.code, 0, uploaded.err);
    assert.equal(JSON.parse(uploaded.out).state, 'verified');

    const passphraseFile = join(work, 'passphrase');
    const first = await run('release', 'sign', 'rel-2-4-0', '--key', join(work, 'keys', 'targets-1.pem'), '--passphrase-file', passphraseFile);
    assert.equal(first.code, 0, first.err);
    assert.match(first.out, /1 key signature\(s\) sent by 1 user\(s\), 2 of each needed; release rel-2-4-0 is verified/);
    const rootKey = await run('release', 'sign', 'rel-2-4-0', '--key', join(work, 'keys', 'root-1.pem'), '--passphrase-file', passphraseFile);
    assert.notEqual(rootKey.code, 0, 'a root key is not a release signer');
    assert.match(rootKey.err, /not a targets key/);
    const early = await run('release', 'publish', 'rel-2-4-0');
    assert.notEqual(early.code, 0);
    assert.match(early.err, /OTA_RELEASE_UNDER_THRESHOLD/);
    // The second release signer is another person with another login.
    await h.cp.auth.users.add({ name: 'sam', role: 'operator', password: 'operator password 2', nowMs: h.clock.nowMs() });
    const runAsSam = cli({ XDG_CONFIG_HOME: join(work, 'config-sam') }, 'operator password 2\n');
    const samLogin = await runAsSam('login', '--server', apiUrl, '--name', 'sam', '--ca', join(work, 'root-ca.pem'), '--password-stdin');
    assert.equal(samLogin.code, 0, samLogin.err);
    const second = await runAsSam('release', 'sign', 'rel-2-4-0', '--key', join(work, 'keys', 'targets-3.pem'), '--passphrase-file', passphraseFile);
    assert.equal(second.code, 0, second.err);
    assert.match(second.out, /release rel-2-4-0 is signed/);
    const published = await run('release', 'publish', 'rel-2-4-0', '--json');
    assert.equal(published.code, 0, published.err);
    assert.equal(JSON.parse(published.out).state, 'published');

    // The device side: a trusted root obtained out of band, then the TUF client workflow.
    const rootFile = join(work, 'trusted-root.json');
    await writeFile(rootFile, await readFile(join(h.dir, 'tuf', 'metadata', '1.root.json')));
    const metadataDir = join(work, 'device', 'metadata');
    const targetDir = join(work, 'device', 'targets');
    assert.equal((await run('tuf-client', '--metadata-dir', metadataDir, 'init', rootFile)).code, 0);
    const refreshed = await run('tuf-client', '--metadata-dir', metadataDir, '--metadata-url', `${tufUrl}/metadata`, 'refresh');
    assert.equal(refreshed.code, 0, refreshed.err);
    const downloaded = await run('tuf-client', '--metadata-dir', metadataDir, '--metadata-url', `${tufUrl}/metadata`, '--target-name', 'rel-2-4-0/agent.bin',
      '--target-base-url', `${tufUrl}/targets`, '--target-dir', targetDir, 'download');
    assert.equal(downloaded.code, 0, downloaded.err);
    assert.match(downloaded.out, /downloaded and verified/);
    const stored = await readFile(join(targetDir, encodeURIComponent('rel-2-4-0/agent.bin')));
    assert.equal(createHash('sha256').update(stored).digest('hex'), createHash('sha256').update(artifact).digest('hex'));
    const targets = JSON.parse(await readFile(join(metadataDir, 'targets.json'), 'utf8'));
    assert.equal(targets.signed.targets['rel-2-4-0/agent.bin'].custom.sdc.release_counter, 1);
    assert.equal(targets.signatures.length, 2);
  });

  it('sdc release upload --presigned PUTs straight to the blob store (the length signed) and the server verifies what arrived', async () => {
    const created = await run('release', 'create', '--id', 'rel-2-5-0', '--version', '2.5.0', '--artifact-name', 'agent.bin', '--platform', 'linux-x64',
      '--min-agent-version', '1.0.0', '--json');
    assert.equal(created.code, 0, created.err);
    const uploaded = await run('release', 'upload', 'rel-2-5-0', '--file', join(work, 'agent.bin'), '--presigned', '--json');
    assert.equal(uploaded.code, 0, uploaded.err);
    const release = JSON.parse(uploaded.out) as { state: string; artifact: { length: number } };
    assert.deepEqual([release.state, release.artifact.length], ['verified', artifact.length]);
    // The presigned path, not the API upload: a URL was issued, and the pending object is gone after the check.
    const kinds = await h.db.query<{ kind: string }>("SELECT kind FROM audit_log WHERE subject = 'release:rel-2-5-0' ORDER BY seq");
    assert.deepEqual(kinds.map((row) => row.kind), ['ota.release.created', 'ota.release.upload_url_issued', 'ota.release.uploaded']);
  });

  it('a re-signed timestamp reaches the client; a revoked release is no longer downloadable', async () => {
    const metadataDir = join(work, 'device', 'metadata');
    // Revoked first: the operator's token lives an hour of the harness's clock, which moves a day below.
    const revoked = await run('release', 'revoke', 'rel-2-4-0', '--reason', 'test');
    assert.equal(revoked.code, 0, revoked.err);
    const download = await run('tuf-client', '--metadata-dir', metadataDir, '--metadata-url', `${tufUrl}/metadata`, '--target-name', 'rel-2-4-0/agent.bin',
      '--target-base-url', `${tufUrl}/targets`, '--target-dir', join(work, 'device', 'other-targets'), 'download');
    assert.equal(download.code, 1);
    assert.match(download.err, /TUF_DOWNLOAD_FAILED/);

    h.clock.advance(25 * 3_600_000);
    assert.deepEqual(await ota.repository.resignDue(), ['timestamp']);
    const refreshed = await run('tuf-client', '--metadata-dir', metadataDir, '--metadata-url', `${tufUrl}/metadata`, 'refresh');
    assert.equal(refreshed.code, 0, refreshed.err);
    assert.match(refreshed.out, /timestamp version 3/, 'version 1 at start, 2 at publish, 3 re-signed');
  });
});
