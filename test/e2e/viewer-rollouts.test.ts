// The console's rollouts view against a real rollout (issue 13): a control plane with an image
// repository (what `sdc ota init` writes), a release published with two release signers, and a
// rollout in two waves to three real agents (runAgent, mock kernels, the real update path) over a
// real gateway. In Debian's Chromium, trusting the serving CA in the profile's NSS database (no
// certificate error ignored): the release listed, the rollout's waves and each device's state
// moving as the agents update, Pause and Resume pressed in the page (the API agrees each time),
// and the rollout reaching completed with every device succeeded. Then a rollout the policy lets
// its creator start only with an admin's approval: the page shows what it waits for and what is
// signed, the admin registers a signing key in the Approvals view and approves it from its card
// (signed in the page), and it starts; another is rejected with a reason from its card and ends
// rejected with nothing sent. The Approvals inbox lists a waiting rollout beside a waiting command
// (what it is, who asked, approvals so far of how many, until when) and approves it; a server
// refusal (the admin's key replaced meanwhile: APPROVAL_KEY_UNKNOWN) shows with its code in the
// inbox and in the card, and the rollout stays waiting. A rollout stopped on its error threshold:
// a requester the policy lets resume only with approvals sees Request resume instead of Resume and
// asks with a reason; the admin approves the request in the inbox (signed in the page) and it
// resumes (decision 0019). Screenshots in .tmp/viewer-e2e/.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { runAgent } from '../../agent/agent-runtime.js';
import { generateRepositoryKeys, initialMetadata, writeRepositoryFiles, type RepositoryKeys } from '../../server/ota/repository-init.js';
import type { RolloutView } from '../../server/ota/rollouts.js';
import { publishTestRelease } from '../../server/ota/test-support.js';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { agentDir, e2eWaitMsMin, eventually, startE2e, waitOnline, type E2eSystem } from './support/e2e-harness.js';

const chromiumPath = '/usr/bin/chromium';
const certutilPath = '/usr/bin/certutil';
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const screenshotDir = join(repoRoot, '.tmp', 'viewer-e2e');
const skip = !existsSync(chromiumPath) ? `${chromiumPath} is absent: apt-get install chromium (.ci/run does)`
  : !existsSync(certutilPath) ? `${certutilPath} is absent: apt-get install libnss3-tools (.ci/run does)` : false;

describe('the console\'s rollouts view in Chromium against a real rollout to real agents', { skip }, () => {
  let system: E2eSystem;
  let keys: RepositoryKeys;
  let browser: Browser;
  let page: Page;
  let browserHome: string;
  let viewerDir: string;
  let previousViewerDir: string | undefined;
  const devices: string[] = [];
  const pageProblems: string[] = [];
  const admin = { name: 'rollout-admin', password: 'correct horse battery staple' };
  const requester = { name: 'rollout-requester', password: 'another horse battery staple' };
  const releaseId = 'console-rollout-2-0-0';
  let rolloutId = '';
  // The first device's post-commit health check waits for the test, so the page is sure to show it
  // before it succeeded (its update took less time than the page's login once, and the order flipped).
  let releaseFirstHealthCheck = (): void => undefined;
  const firstHealthCheck = new Promise<void>((resolve) => { releaseFirstHealthCheck = resolve; });

  before(async () => {
    viewerDir = join(await mkdtemp(join(tmpdir(), 'sdc-viewer-rollouts-')), 'viewer');
    const built = spawnSync(process.execPath, [join(repoRoot, 'scripts/build-viewer.mjs'), '--out-dir', viewerDir], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(built.status, 0, built.stderr);
    previousViewerDir = process.env.SDC_VIEWER_DIR;
    process.env.SDC_VIEWER_DIR = viewerDir;
    await mkdir(screenshotDir, { recursive: true });
    keys = generateRepositoryKeys();
    system = await startE2e({ target: { name: 'embedded' }, beforeStart: async (dataDir) => writeRepositoryFiles(dataDir, keys, initialMetadata(keys, systemClock.nowMs())) });
    await system.deployment.controlPlane!.auth.users.add({ ...admin, role: 'admin', nowMs: systemClock.nowMs() });
    await system.deployment.controlPlane!.auth.users.add({ ...requester, role: 'approver', nowMs: systemClock.nowMs() });
    for (let i = 0; i < 3; i++) devices.push(`console-ota-${system.tag}-${i}`);
    for (const deviceId of devices) {
      const { token } = await system.api<{ token: string }>('POST', `/v1/devices/${deviceId}/pairing-tokens`, {});
      const dir = agentDir(system, deviceId);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      system.agents.set(deviceId, await runAgent({
        dir, serverUrl: system.apiUrl, deviceId, pairingToken: token, caPem: system.materials.rootCaPem, kernel: 'mock', telemetryIntervalMs: 1_000,
        clock: systemClock, random: systemRandom, scheduler: systemScheduler,
        ota: {
          platform: 'linux-x64', mockInstalledVersion: '1.0.0',
          healthProbe: deviceId === devices[0] ? async () => { await firstHealthCheck; return true; } : async () => true,
        },
      }));
    }
    await waitOnline(system, devices);
    await publishTestRelease(system.deployment.controlPlane!.ota!, keys, { id: releaseId, version: '2.0.0', artifact: Buffer.from('sdc console e2e firmware 2.0.0\n'.repeat(256)) });
    assert.ok(system.materials.browserTls, 'a serving CA for the browser');
    browserHome = await mkdtemp(join(tmpdir(), 'sdc-viewer-rollouts-home-'));
    const nssDb = `sql:${join(browserHome, '.pki', 'nssdb')}`;
    await mkdir(join(browserHome, '.pki', 'nssdb'), { recursive: true });
    execFileSync(certutilPath, ['-N', '-d', nssDb, '--empty-password']);
    await writeFile(join(browserHome, 'serving-ca.pem'), system.materials.browserTls.servingCaPem);
    execFileSync(certutilPath, ['-A', '-d', nssDb, '-n', 'sdc-serving-ca', '-t', 'C,,', '-i', join(browserHome, 'serving-ca.pem')]);
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'], env: { ...process.env, HOME: browserHome } });
    page = await (await browser.newContext({ ignoreHTTPSErrors: false, viewport: { width: 1280, height: 900 } })).newPage();
    page.setDefaultTimeout(e2eWaitMsMin);
    page.on('console', (message) => { if (message.type() === 'error') pageProblems.push(`${message.text()} ${message.location().url}`); });
    page.on('pageerror', (error) => pageProblems.push(error.message));
  });

  after(async () => {
    releaseFirstHealthCheck();
    await browser?.close();
    if (browserHome !== undefined) await rm(browserHome, { recursive: true, force: true });
    await system?.stop();
    if (previousViewerDir === undefined) delete process.env.SDC_VIEWER_DIR;
    else process.env.SDC_VIEWER_DIR = previousViewerDir;
    if (viewerDir !== undefined) await rm(join(viewerDir, '..'), { recursive: true, force: true });
  });

  const card = () => page.locator(`article[data-rollout="${rolloutId}"]`);
  const deviceState = (deviceId: string) => card().locator(`[data-testid="rollout-devices"] tr[data-device="${deviceId}"] .state`);

  it('lists the published release, then shows the rollout\'s first wave and its device moving to succeeded', async () => {
    await page.goto(`${system.apiUrl}/#/releases`);
    await page.getByLabel('Name').fill(admin.name);
    await page.getByLabel('Password').fill(admin.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText(releaseId).first().waitFor();
    // Wave 1: one device, then a soak long enough to press Pause and Resume before wave 2.
    const started = await system.api<RolloutView>('POST', '/v1/rollouts', {
      release_id: releaseId, platform: 'linux-x64', device_ids: devices, devices_per_minute_max: 100,
      waves: [
        { device_ids: [devices[0]], success_threshold: { succeeded_min: 1, succeeded_percent_min: 100, soak_ms: 4_000 }, error_threshold: { executed_min: 1, failed_percent_max: 0 } },
        { device_ids: [devices[1], devices[2]], success_threshold: { succeeded_min: 0, succeeded_percent_min: 0, soak_ms: 0 }, error_threshold: { executed_min: 1, failed_percent_max: 50 } },
      ],
    });
    rolloutId = started.id;
    assert.equal(started.status, 'running');
    // The view was open before the rollout existed: shown again, it reads the list.
    await page.getByRole('link', { name: 'Fleet' }).click();
    await page.getByRole('link', { name: 'Releases' }).click();
    await card().waitFor();
    await card().getByTestId('rollout-status').filter({ hasText: 'running' }).waitFor();
    await card().locator('summary').click();
    const waves = card().locator('[data-testid="rollout-waves"] tbody tr');
    assert.equal(await waves.count(), 2);
    assert.match(await waves.nth(0).textContent() ?? '', /1 \(current\)/);
    const firstSeen = await deviceState(devices[0]!).textContent();
    await shot('rollout-wave-1-started');
    releaseFirstHealthCheck();
    // The page reads the rollout again on its own while it runs: the device's state moves on screen.
    await deviceState(devices[0]!).filter({ hasText: /^succeeded$/ }).waitFor();
    assert.notEqual(firstSeen, 'succeeded', 'seen before it succeeded, then moving to it');
    assert.equal(await card().locator(`[data-testid="rollout-devices"] tr[data-device="${devices[1]}"]`).count(), 0, 'wave 2 not notified yet');
    await shot('rollout-wave-1-succeeded');
  });

  it('pauses and resumes from the page (the API agrees), then wave 2 runs and the rollout completes', async () => {
    await card().getByRole('button', { name: `Pause rollout ${rolloutId}` }).click();
    await card().getByTestId('rollout-status').filter({ hasText: 'paused' }).waitFor();
    assert.equal((await system.api<RolloutView>('GET', `/v1/rollouts/${rolloutId}`)).status, 'paused');
    await shot('rollout-paused');
    await card().getByRole('button', { name: `Resume rollout ${rolloutId}` }).click();
    await card().getByTestId('rollout-status').filter({ hasText: /^running$|^completed$/ }).waitFor();
    assert.notEqual((await system.api<RolloutView>('GET', `/v1/rollouts/${rolloutId}`)).status, 'paused');
    for (const deviceId of devices.slice(1)) await deviceState(deviceId).filter({ hasText: /^succeeded$/ }).waitFor({ timeout: Math.max(e2eWaitMsMin, 60_000) });
    await card().getByTestId('rollout-status').filter({ hasText: 'completed' }).waitFor({ timeout: Math.max(e2eWaitMsMin, 60_000) });
    const waves = card().locator('[data-testid="rollout-waves"] tbody tr');
    assert.match(await waves.nth(1).textContent() ?? '', /2\s*2\s*2\s*0\s*2/, 'wave 2: 2 devices, 2 started, 2 succeeded, 0 failed, 2 finished');
    const stored = await eventually('the API to say completed', async () => {
      const view = await system.api<RolloutView>('GET', `/v1/rollouts/${rolloutId}`);
      return view.status === 'completed' ? view : undefined;
    });
    assert.deepEqual(Object.fromEntries(stored.executions.map((e) => [e.device_id, e.state])), Object.fromEntries(devices.map((id) => [id, 'succeeded'])));
    for (const deviceId of devices) assert.equal((await system.agents.get(deviceId)!.kernel.getStatus()).currentVersion, '2.0.0', deviceId);
    await shot('rollout-completed');
    assert.deepEqual(pageProblems, []);
  });

  it('approves from the page a rollout that waits for an admin\'s approval, signed in the page; it starts', async () => {
    // Admins may do anything; an approver's updates need one admin's approval (docs/ota.md "Rollouts that need approvals").
    const cp = system.deployment.controlPlane!;
    await cp.policy.set({
      document: {
        version: 1,
        rules: [
          { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
          { id: 'updates-with-admin', effect: 'allow', roles: ['approver'], opcodes: ['EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE'], devices: '*', conditions: { approval: { count: 1, roles: ['admin'] } } },
        ],
      },
      expectedRevision: (await cp.policy.current()).revision, actor: 'user:test',
    });
    const nextRelease = 'console-rollout-3-0-0';
    await publishTestRelease(cp.ota!, keys, { id: nextRelease, version: '3.0.0', artifact: Buffer.from('sdc console e2e firmware 3.0.0\n'.repeat(256)) });
    const { token } = await system.api<{ token: string }>('POST', '/v1/auth/login', requester, { token: null });
    const waiting = await system.api<RolloutView & { approval: { subject_sha256: string } | null }>('POST', '/v1/rollouts', {
      release_id: nextRelease, platform: 'linux-x64', device_ids: [devices[1]], devices_per_minute_max: 100, approval_window_ms: 3_600_000,
      waves: [{ device_ids: [devices[1]], success_threshold: { succeeded_min: 0, succeeded_percent_min: 0, soak_ms: 0 }, error_threshold: { executed_min: 1, failed_percent_max: 100 } }],
    }, { token });
    assert.equal(waiting.status, 'pending_approval');
    rolloutId = waiting.id;

    // The key first, in the Approvals view (it needs the account's password), held by the page for the other views.
    await page.getByRole('link', { name: 'Approvals', exact: true }).click();
    await page.getByTestId('approval-key-password').fill(admin.password);
    await page.getByRole('button', { name: 'Create a signing key' }).click();
    await page.getByTestId('approval-key').waitFor();

    await page.getByRole('link', { name: 'Releases' }).click();
    await card().getByTestId('rollout-status').filter({ hasText: 'pending_approval' }).waitFor();
    const panel = card().getByTestId('rollout-approval');
    assert.equal(await panel.getByTestId('rollout-approval-needs').textContent(), 'needs 1 approval from admin (rule updates-with-admin, policy revision ' + (await cp.policy.current()).revision + ')');
    assert.equal(await panel.getByTestId('rollout-approval-count').textContent(), '0 of 1');
    assert.equal((await panel.getByTestId('rollout-approval-decisions').textContent())?.trim(), 'none yet');
    const shown = (await panel.textContent() ?? '').replace(/\s+/g, ' ');
    assert.ok(shown.includes(`release ${nextRelease} 3.0.0`), shown);
    assert.ok(shown.includes(`1 device in 1 wave, at most 100/min, asked by ${requester.name}`), shown);
    assert.ok(shown.includes(waiting.approval!.subject_sha256), shown);
    await shot('rollout-pending-approval');

    await panel.getByRole('button', { name: `Approve rollout ${rolloutId}` }).click();
    await panel.getByTestId('rollout-approval-result').filter({ hasText: `Approved rollout ${rolloutId}: started, its first devices notified.` }).waitFor();
    await card().getByTestId('rollout-status').filter({ hasText: /^running$|^paused$|^completed$/ }).waitFor();
    assert.match(await panel.getByTestId('rollout-approval-outcome').textContent() ?? '', new RegExp(`^started at .*, released by ${admin.name} with the approvals of ${admin.name}$`));
    // The server checked the page's signature against the admin's registered key and started the rollout.
    const stored = await system.api<RolloutView & { approval: { outcome: { state: string; approvers?: string[] } | null; decisions: Array<{ approver: string; decision: string }> } }>('GET', `/v1/rollouts/${rolloutId}`);
    assert.notEqual(stored.status, 'pending_approval');
    assert.deepEqual(stored.approval.outcome?.approvers, [admin.name]);
    assert.deepEqual(stored.approval.decisions.map((d) => [d.approver, d.decision]), [[admin.name, 'approve']]);
    assert.deepEqual(stored.executions.map((e) => e.device_id), [devices[1]]);
    await shot('rollout-approved');
    assert.deepEqual(pageProblems, []);
  });

  it('rejects a waiting rollout from the page with a reason, signed in the page; it ends rejected, nothing sent', async () => {
    const { token } = await system.api<{ token: string }>('POST', '/v1/auth/login', requester, { token: null });
    const waiting = await system.api<RolloutView>('POST', '/v1/rollouts', {
      release_id: 'console-rollout-3-0-0', platform: 'linux-x64', device_ids: [devices[2]], devices_per_minute_max: 100,
      waves: [{ device_ids: [devices[2]], success_threshold: { succeeded_min: 0, succeeded_percent_min: 0, soak_ms: 0 }, error_threshold: { executed_min: 1, failed_percent_max: 100 } }],
    }, { token });
    assert.equal(waiting.status, 'pending_approval');
    rolloutId = waiting.id;
    // The view was open before the rollout existed: shown again, it reads the list (the key stays in the page).
    await page.getByRole('link', { name: 'Fleet' }).click();
    await page.getByRole('link', { name: 'Releases' }).click();
    const panel = card().getByTestId('rollout-approval');
    await panel.getByLabel(`Reason to reject rollout ${rolloutId}`).fill('change freeze');
    await panel.getByRole('button', { name: `Reject rollout ${rolloutId}` }).click();
    await panel.getByTestId('rollout-approval-result').filter({ hasText: `Rejected rollout ${rolloutId}: nothing sent.` }).waitFor();
    await card().getByTestId('rollout-status').filter({ hasText: 'rejected' }).waitFor();
    assert.match(await panel.getByTestId('rollout-approval-outcome').textContent() ?? '', new RegExp(`^rejected at .* by ${admin.name} \\(OTA_ROLLOUT_APPROVAL_REJECTED\\); nothing was sent$`));
    assert.match(await panel.getByTestId('rollout-approval-decisions').textContent() ?? '', new RegExp(`reject by ${admin.name} \\(admin\\) at .*: change freeze`));
    const stored = await system.api<RolloutView & { approval: { outcome: { state: string; code?: string } | null } }>('GET', `/v1/rollouts/${rolloutId}`);
    assert.equal(stored.status, 'rejected');
    assert.deepEqual(stored.approval.outcome && [stored.approval.outcome.state, stored.approval.outcome.code], ['rejected', 'OTA_ROLLOUT_APPROVAL_REJECTED']);
    assert.deepEqual(stored.executions, []);
    await shot('rollout-rejected');
    assert.deepEqual(pageProblems, []);
  });

  // The Approvals inbox (docs/viewer.md "Approvals"): everything waiting on the approver, commands
  // and rollouts, each rollout in the same approval panel as its card (GET /v1/approvals/rollouts).
  const inboxItem = () => page.locator(`[data-testid="approvals-rollouts"] li[data-rollout="${rolloutId}"]`);
  const startWaiting = async (deviceId: string) => {
    const { token } = await system.api<{ token: string }>('POST', '/v1/auth/login', requester, { token: null });
    const waiting = await system.api<RolloutView & { approval: { subject_sha256: string; expires_at_ms: number } | null }>('POST', '/v1/rollouts', {
      release_id: 'console-rollout-3-0-0', platform: 'linux-x64', device_ids: [deviceId], devices_per_minute_max: 100, approval_window_ms: 3_600_000,
      waves: [{ device_ids: [deviceId], success_threshold: { succeeded_min: 0, succeeded_percent_min: 0, soak_ms: 0 }, error_threshold: { executed_min: 1, failed_percent_max: 100 } }],
    }, { token });
    assert.equal(waiting.status, 'pending_approval');
    return { waiting, token };
  };

  it('the Approvals inbox lists a waiting rollout beside a waiting command and approves it, signed in the page; it starts', async () => {
    // A command that also waits for an admin's approval, so the inbox holds both kinds.
    const cp = system.deployment.controlPlane!;
    const current = await cp.policy.current();
    await cp.policy.set({
      document: {
        version: 1,
        rules: [
          { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
          { id: 'updates-with-admin', effect: 'allow', roles: ['approver'], opcodes: ['EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE'], devices: '*', conditions: { approval: { count: 1, roles: ['admin'] } } },
          { id: 'lock-with-admin', effect: 'allow', roles: ['approver'], opcodes: ['EXEC_LOCK_SCREEN'], devices: '*', conditions: { approval: { count: 1, roles: ['admin'] } } },
        ],
      },
      expectedRevision: current.revision, actor: 'user:test',
    });
    const { waiting, token } = await startWaiting(devices[2]!);
    rolloutId = waiting.id;
    const command = await system.api<{ id: string; state: string }>('POST', '/v1/commands', { device_id: devices[2], opcode: 'EXEC_LOCK_SCREEN', args: {} },
      { token, headers: { 'idempotency-key': `console-inbox-${system.tag}` } });
    assert.equal(command.state, 'pending_approval');

    await page.getByRole('link', { name: 'Approvals', exact: true }).click();
    await inboxItem().waitFor();
    await page.locator(`li[data-command="${command.id}"]`).waitFor();
    const item = inboxItem();
    const shown = (await item.textContent() ?? '').replace(/\s+/g, ' ');
    assert.ok(shown.includes('Rollout of console-rollout-3-0-0 to 1 device in 1 wave'), shown);
    assert.equal(await item.getByTestId('approvals-rollout-requester').textContent(), requester.name);
    assert.match(await item.getByTestId('rollout-approval-needs').textContent() ?? '', /^needs 1 approval from admin \(rule updates-with-admin, policy revision \d+\)$/);
    assert.equal(await item.getByTestId('rollout-approval-count').textContent(), '0 of 1');
    assert.ok((await item.getByTestId('rollout-approval-expires').textContent() ?? '').trim() !== '', 'the window\'s end is shown');
    assert.ok(shown.includes(waiting.approval!.subject_sha256), shown);
    await shot('inbox-rollout-waiting');

    await item.getByRole('button', { name: `Approve rollout ${rolloutId}` }).click();
    await page.getByTestId('approval-outcome').filter({ hasText: `Approved rollout ${rolloutId}: started, its first devices notified.` }).waitFor();
    // Decided, it leaves this approver's inbox; the command still waits there.
    await inboxItem().waitFor({ state: 'detached' });
    assert.equal(await page.locator(`li[data-command="${command.id}"]`).count(), 1);
    const stored = await system.api<RolloutView & { approval: { outcome: { state: string; approvers?: string[] } | null } }>('GET', `/v1/rollouts/${rolloutId}`);
    assert.notEqual(stored.status, 'pending_approval');
    assert.deepEqual(stored.approval.outcome?.approvers, [admin.name]);
    assert.deepEqual(stored.executions.map((e) => e.device_id), [devices[2]]);
    await shot('inbox-rollout-approved');
    await system.api('POST', `/v1/commands/${command.id}/cancel`, {}, { token });
    assert.deepEqual(pageProblems, []);
  });

  it('a server refusal shows with its code in the inbox and in the card, and the rollout stays waiting', async () => {
    const { waiting } = await startWaiting(devices[0]!);
    rolloutId = waiting.id;
    await page.getByRole('link', { name: 'Releases' }).click();
    await page.getByRole('link', { name: 'Approvals', exact: true }).click();
    await inboxItem().waitFor();
    // Meanwhile the admin registers another signing key (as `sdc` would, with the password): the
    // page's key is retired, and the server refuses what the page signs with it.
    const cp = system.deployment.controlPlane!;
    const { createNodeEd25519Provider } = await import('../../runtime/ed25519-node.js');
    const { base64urlFromBytes } = await import('../../core/crypto/bytes.js');
    const seed = new Uint8Array(32).fill(7);
    await cp.signingKeys.register({ userName: admin.name, publicKeyText: base64urlFromBytes(createNodeEd25519Provider().publicKeyFromSeed(seed)), nowMs: systemClock.nowMs(), proof: 'password' });

    const item = inboxItem();
    await item.getByRole('button', { name: `Approve rollout ${rolloutId}` }).click();
    const refusal = item.getByTestId('rollout-approval-refusal');
    await refusal.waitFor();
    assert.match(await refusal.locator('code').first().textContent() ?? '', /^APPROVAL_KEY_UNKNOWN$/);
    assert.equal(await page.getByTestId('approval-outcome').count(), 0, 'no success said');
    assert.equal((await system.api<RolloutView>('GET', `/v1/rollouts/${rolloutId}`)).status, 'pending_approval');
    // Read again (the inbox polls), it is still there, waiting, the refusal still shown.
    await page.waitForResponse((response) => response.url().includes('/v1/approvals/rollouts'));
    await item.getByTestId('rollout-approval-count').filter({ hasText: '0 of 1' }).waitFor();
    assert.equal(await refusal.count(), 1);
    await shot('inbox-rollout-refused');

    // The rollout's card in Releases says the same.
    await page.getByRole('link', { name: 'Releases' }).click();
    const panel = card().getByTestId('rollout-approval');
    await panel.getByRole('button', { name: `Approve rollout ${rolloutId}` }).click();
    await panel.getByTestId('rollout-approval-refusal').waitFor();
    assert.equal(await panel.getByTestId('rollout-approval-refusal').locator('code').first().textContent(), 'APPROVAL_KEY_UNKNOWN');
    assert.equal(await card().getByTestId('rollout-status').textContent(), 'pending_approval');
    const stored = await system.api<RolloutView & { approval: { decisions: unknown[] } }>('GET', `/v1/rollouts/${rolloutId}`);
    assert.equal(stored.status, 'pending_approval');
    assert.deepEqual(stored.approval.decisions, [], 'refusals count for nothing');
    assert.deepEqual(stored.executions, []);
    await shot('card-rollout-refused');
    await system.api('POST', `/v1/rollouts/${rolloutId}/abort`, {});
    // The page logged the refused requests (409/403) as console errors; nothing else.
    assert.deepEqual(pageProblems.filter((p) => !/status of 4\d\d/.test(p)), []);
  });

  it('an inbox card stays with its rollout when another leaves the list: a half-typed reason is not carried to the next rollout', async () => {
    const { waiting: older } = await startWaiting(devices[0]!);
    const { waiting: newer } = await startWaiting(devices[1]!);
    await page.getByRole('link', { name: 'Releases' }).click();
    await page.getByRole('link', { name: 'Approvals', exact: true }).click();
    const itemOf = (id: string) => page.locator(`[data-testid="approvals-rollouts"] li[data-rollout="${id}"]`);
    await itemOf(older.id).waitFor();
    await itemOf(newer.id).waitFor();
    // Newest first: the newer rollout's card comes first, so the older one would move into its place.
    await itemOf(newer.id).getByRole('textbox', { name: `Reason to reject rollout ${newer.id}` }).fill('meant for the newer rollout');
    await system.api('POST', `/v1/rollouts/${newer.id}/abort`, {});
    await itemOf(newer.id).waitFor({ state: 'detached' });
    assert.equal(await itemOf(older.id).getByRole('textbox', { name: `Reason to reject rollout ${older.id}` }).inputValue(), '');
    await system.api('POST', `/v1/rollouts/${older.id}/abort`, {});
    assert.deepEqual(pageProblems.filter((p) => !/status of 4\d\d/.test(p)), []);
  });

  it('a resume past a safety stop that needs approvals: the requester sees no Resume but Request resume, asks with a reason; the admin approves it in the inbox, signed in the page; it resumes', async () => {
    // The approver-role requester may update only with an admin's approval (the policy of the tests above).
    // The admin rolls out a release for two platforms naming the one the devices are not: the first device
    // refuses it (OTA_PLATFORM_MISMATCH), whatever the earlier tests left it running, and the wave stops.
    const cp = system.deployment.controlPlane!;
    await cp.policy.set({
      document: {
        version: 1,
        rules: [
          { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
          { id: 'updates-with-admin', effect: 'allow', roles: ['approver'], opcodes: ['EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE'], devices: '*', conditions: { approval: { count: 1, roles: ['admin'] } } },
        ],
      },
      expectedRevision: (await cp.policy.current()).revision, actor: 'user:test',
    });
    const armRelease = 'console-rollout-4-0-0';
    await publishTestRelease(cp.ota!, keys, { id: armRelease, version: '4.0.0', platforms: ['linux-x64', 'linux-arm64'], artifact: Buffer.from('sdc console e2e firmware 4.0.0\n'.repeat(256)) });
    const strict = (deviceId: string) => ({ device_ids: [deviceId], success_threshold: { succeeded_min: 0, succeeded_percent_min: 0, soak_ms: 0 }, error_threshold: { executed_min: 1, failed_percent_max: 0 } });
    const started = await system.api<RolloutView>('POST', '/v1/rollouts', {
      release_id: armRelease, platform: 'linux-arm64', device_ids: [devices[1], devices[0]], devices_per_minute_max: 100, waves: [strict(devices[1]!), strict(devices[0]!)],
    });
    rolloutId = started.id;
    await eventually('the rollout to stop on its error threshold', async () => {
      const view = await system.api<RolloutView>('GET', `/v1/rollouts/${rolloutId}`);
      return view.status === 'paused' && view.pause_reason === 'error_threshold' ? view : undefined;
    });

    // The requester, in a page of their own: no Resume button (the server would refuse it), Request resume instead.
    const context = await browser.newContext({ ignoreHTTPSErrors: false, viewport: { width: 1280, height: 900 } });
    try {
      const asker = await context.newPage();
      asker.setDefaultTimeout(e2eWaitMsMin);
      const askerProblems: string[] = [];
      asker.on('pageerror', (error) => askerProblems.push(error.message));
      await asker.goto(`${system.apiUrl}/#/releases`);
      await asker.getByLabel('Name').fill(requester.name);
      await asker.getByLabel('Password').fill(requester.password);
      await asker.getByRole('button', { name: 'Log in' }).click();
      const askerCard = asker.locator(`article[data-rollout="${rolloutId}"]`);
      assert.match(await askerCard.getByTestId('rollout-resume-needs-approval').textContent() ?? '', /only with approvals \(rule updates-with-admin\)/);
      assert.equal(await askerCard.getByRole('button', { name: `Resume rollout ${rolloutId}` }).count(), 0, 'no Resume for an operator the policy does not let resume');
      await askerCard.getByRole('button', { name: `Request resume of rollout ${rolloutId}` }).click();
      // A right-to-left override in the reason (U+202E) is shown as an escape, not obeyed (viewer/visible-text.ts);
      // the admin's approval below is signed over the raw reason all the same, and the server accepts it.
      await askerCard.getByLabel(`Reason to resume rollout ${rolloutId}`).fill('the refusal is the downgrade, \u202Eexpected on that device');
      await askerCard.getByRole('button', { name: 'Send resume request' }).click();
      const asked = askerCard.getByTestId('rollout-resume');
      await asked.getByTestId('rollout-resume-stop').filter({ hasText: 'wave 1: its error threshold was crossed (1 of 1 executed failed, 0 of 1 succeeded; at most 0% failed of at least 1)' }).waitFor();
      assert.match(await asked.getByTestId('rollout-resume-requester').textContent() ?? '', new RegExp(`^${requester.name} at .*: the refusal is the downgrade, \\\\u202eexpected on that device$`));
      assert.equal(await asked.getByTestId('rollout-resume-why').textContent(), 'You asked for this resume; another approver decides.');
      assert.equal(await askerCard.getByRole('button', { name: `Request resume of rollout ${rolloutId}` }).count(), 0, 'one request at a time');
      await asker.screenshot({ path: join(screenshotDir, 'resume-requested.png'), fullPage: true });
      assert.deepEqual(askerProblems, []);
    } finally {
      await context.close();
    }

    // The admin finds it in the inbox and approves it, with a new signing key made in the page (the
    // test above replaced the page's key with one made outside it; a reload forgets key and token).
    await page.reload();
    await page.getByLabel('Name').fill(admin.name);
    await page.getByLabel('Password').fill(admin.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Approvals', exact: true }).click();
    await page.getByTestId('approval-key-password').fill(admin.password);
    await page.getByRole('button', { name: 'Create a signing key' }).click();
    await page.getByTestId('approval-key').waitFor();
    const item = page.locator(`[data-testid="approvals-rollouts"] li[data-rollout="${rolloutId}"][data-resume-request]`);
    await item.waitFor();
    assert.equal(await item.getByTestId('approvals-resume-requester').textContent(), requester.name);
    await shot('inbox-resume-waiting');
    await item.getByRole('button', { name: `Approve resuming rollout ${rolloutId}` }).click();
    await page.getByTestId('approval-outcome').filter({ hasText: `Approved the resume of rollout ${rolloutId}: it runs again.` }).waitFor();
    await item.waitFor({ state: 'detached' });
    const stored = await system.api<RolloutView & { resume_request: { waiting: boolean; outcome: { state: string; approvers?: string[] } | null } }>('GET', `/v1/rollouts/${rolloutId}`);
    assert.deepEqual([stored.resume_request.waiting, stored.resume_request.outcome?.state, stored.resume_request.outcome?.approvers], [false, 'resumed', [admin.name]]);
    assert.ok(stored.executions.some((e) => e.device_id === devices[0]), 'the second wave was notified');
    await system.api('POST', `/v1/rollouts/${rolloutId}/abort`, {});
    assert.deepEqual(pageProblems.filter((p) => !/status of 4\d\d/.test(p)), []);
  });

  const shot = (name: string) => page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: true });
});
