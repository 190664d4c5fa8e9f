// The operator console end to end in Debian's Chromium (playwright-core drives /usr/bin/chromium;
// no browser is ever downloaded) against a real deployment on loopback TLS with real agents,
// reached directly on the API's port with the deployment's serving CA installed in the browser
// profile's NSS database (certutil) and certificate errors NOT ignored (decision 0006):
// log in, see the fleet online, send a command and watch it reach succeeded, see the result
// table, verify the audit chain in the browser, and see that check fail after an audit row is
// changed in the database. Screenshots go to .tmp/viewer-e2e/ (git-ignored).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { systemClock } from '../../runtime/system.js';
import { httpsJson } from '../../runtime/https-json.js';
import { servingCaPermittedNames } from '../../trust/server-certificate.js';
import { parsePolicy } from '../../core/protocol/policy.js';
import { actors } from '../../server/control-plane/context.js';
import { createCommand, e2eWaitMsMin, eventually, pairAgent, startE2e, waitOnline, waitTerminal, type E2eSystem } from './support/e2e-harness.js';

const chromiumPath = '/usr/bin/chromium';
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const screenshotDir = join(repoRoot, '.tmp', 'viewer-e2e');
const certutilPath = '/usr/bin/certutil';
const skip = !existsSync(chromiumPath) ? `${chromiumPath} is absent: apt-get install chromium (.ci/run does) to run the console in a browser`
  : !existsSync(certutilPath) ? `${certutilPath} is absent: apt-get install libnss3-tools (.ci/run does) to trust the serving CA in the browser profile` : false;

describe('the operator console in Chromium against a real deployment', { skip }, () => {
  let system: E2eSystem;
  let consoleUrl: string;
  let browserHome: string;
  let browser: Browser;
  let page: Page;
  let viewerDir: string;
  let previousViewerDir: string | undefined;
  const deviceIds: string[] = [];
  const pageProblems: string[] = [];
  /** Every URL the page opened /v1/live with: a one-time ticket each, never the token. */
  const liveUrls: string[] = [];
  const operator = { name: 'console-admin', password: 'correct horse battery staple' };
  const requester = { name: 'console-requester', password: 'another horse battery staple' };
  const consolePolicy = parsePolicy({
    version: 1,
    rules: [
      { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
      { id: 'lock-with-admin', effect: 'allow', roles: ['approver'], opcodes: ['EXEC_LOCK_SCREEN'], devices: '*', conditions: { approval: { count: 1, roles: ['admin'] } } },
    ],
  });
  let commandId = '';

  const shot = (name: string) => page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: true });

  before(async () => {
    viewerDir = join(await mkdtemp(join(tmpdir(), 'sdc-viewer-e2e-')), 'viewer');
    const built = spawnSync(process.execPath, [join(repoRoot, 'scripts/build-viewer.mjs'), '--out-dir', viewerDir], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(built.status, 0, built.stderr);
    previousViewerDir = process.env.SDC_VIEWER_DIR;
    process.env.SDC_VIEWER_DIR = viewerDir;
    await mkdir(screenshotDir, { recursive: true });
    system = await startE2e({ target: { name: 'embedded' } });
    await system.deployment.controlPlane!.auth.users.add({ ...operator, role: 'admin', nowMs: systemClock.nowMs() });
    // Admins may do anything; an approver's screen lock waits for one admin's approval, which the console gives.
    assert.equal(await system.deployment.controlPlane!.policy.seed(consolePolicy), true, 'a fresh database takes the policy');
    await system.deployment.controlPlane!.auth.users.add({ ...requester, role: 'approver', nowMs: systemClock.nowMs() });
    deviceIds.push(`console-${system.tag}-1`, `console-${system.tag}-2`);
    // A sample every 2 s: the chart and the risk-score view need a sample or two, not two a second
    // per device (each is signed, ingested, stored and pushed live to the page; 500 ms cost the
    // file about 4 s of CPU over its run).
    await Promise.all(deviceIds.map((id) => pairAgent(system, id, { telemetryIntervalMs: 2_000 })));
    await waitOnline(system, deviceIds);
    // The serving CA trusted the way a Linux browser trusts one: in the profile's NSS database.
    assert.ok(system.materials.browserTls, 'the deployment has a serving CA and an ECDSA certificate for browsers');
    // Name-constrained (decision 0006): Chromium loads the console through a CA that can sign only for localhost and loopback.
    assert.deepEqual(servingCaPermittedNames(system.materials.browserTls.servingCaPem), { hostnames: ['localhost'], ipRanges: ['127.0.0.1/32', '0:0:0:0:0:0:0:1/128'] });
    browserHome = await mkdtemp(join(tmpdir(), 'sdc-viewer-home-'));
    const nssDb = `sql:${join(browserHome, '.pki', 'nssdb')}`;
    await mkdir(join(browserHome, '.pki', 'nssdb'), { recursive: true });
    execFileSync(certutilPath, ['-N', '-d', nssDb, '--empty-password']);
    await writeFile(join(browserHome, 'serving-ca.pem'), system.materials.browserTls.servingCaPem);
    execFileSync(certutilPath, ['-A', '-d', nssDb, '-n', 'sdc-serving-ca', '-t', 'C,,', '-i', join(browserHome, 'serving-ca.pem')]);
    consoleUrl = `${system.apiUrl}/`;
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'], env: { ...process.env, HOME: browserHome } });
    const context = await browser.newContext({ ignoreHTTPSErrors: false, viewport: { width: 1280, height: 720 } });
    page = await context.newPage();
    page.setDefaultTimeout(e2eWaitMsMin);
    // A CSP violation or an uncaught error in the page fails the run at the end.
    page.on('console', (message) => {
      // The browser logs every refused fetch; the releases view's 503 (no image repository here) is expected.
      const expected = /status of 503/.test(message.text()) && message.location().url.endsWith('/v1/releases');
      if (message.type() === 'error' && !expected) pageProblems.push(`${message.text()} ${message.location().url}`);
    });
    page.on('pageerror', (error) => pageProblems.push(error.message));
    page.on('request', (request) => { if (new URL(request.url()).pathname === '/v1/live') liveUrls.push(request.url()); });
  });

  after(async () => {
    await browser?.close();
    if (browserHome !== undefined) await rm(browserHome, { recursive: true, force: true });
    await system?.stop();
    if (previousViewerDir === undefined) delete process.env.SDC_VIEWER_DIR;
    else process.env.SDC_VIEWER_DIR = previousViewerDir;
    if (viewerDir !== undefined) await rm(join(viewerDir, '..'), { recursive: true, force: true });
  });

  it('refuses a wrong password with its code, then logs in', async () => {
    await page.goto(consoleUrl);
    await page.getByLabel('Name').fill(operator.name);
    await page.getByLabel('Password').fill('wrong password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'API_LOGIN_FAILED' }).waitFor();
    // The second time by keyboard only: Tab from the name to the password, Enter submits.
    await page.getByLabel('Name').focus();
    await page.keyboard.press('Tab');
    await page.keyboard.type(operator.password);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Fleet' }).waitFor();
  });

  it('shows the fleet online, live', async () => {
    await page.getByTestId('live-status').filter({ hasText: 'live: open' }).waitFor();
    for (const id of deviceIds) await page.locator(`tr[data-device="${id}"] [data-testid="presence"]`).filter({ hasText: 'online' }).waitFor();
    const online = Number(await page.getByTestId('count-online').textContent());
    assert.ok(online >= deviceIds.length, `online count ${online}`);
    // The stream was opened with a ticket (POST /v1/live/tickets), and the JWT was in no URL.
    assert.ok(liveUrls.length >= 1 && liveUrls.every((url) => /\?ticket=[A-Za-z0-9_-]{43}$/.test(url)), liveUrls.join(' '));
    assert.equal(new Set(liveUrls).size, liveUrls.length, 'a ticket is used once');
    await shot('fleet');
  });

  it('shows each device\'s risk score from the API, filters by it and sorts highest first', async () => {
    // Each device's newest real sample, copied ten minutes ahead with a chosen score, so the
    // newest sample (what the API and policy call the device's risk) stays put while agents send more.
    const sql = system.deployment.stores.sql!;
    const aheadMs = systemClock.nowMs() + 600_000;
    for (const [id, score] of [[deviceIds[0]!, 20], [deviceIds[1]!, 75]] as const) {
      const newest = await eventually(`a telemetry sample from ${id}`, async () => (await sql.query<{ metrics_json: string }>('SELECT metrics_json FROM telemetry WHERE device_id = ? ORDER BY ts DESC LIMIT 1', [id]))[0]);
      await sql.execute('INSERT INTO telemetry (device_id, ts, metrics_json, risk_score) VALUES (?, ?, ?, ?)', [id, aheadMs, newest.metrics_json, score]);
    }
    const listed = await system.api<{ items: Array<{ id: string; risk_score: number | null }> }>('GET', '/v1/devices?limit=50');
    assert.deepEqual(deviceIds.map((id) => listed.items.find((d) => d.id === id)?.risk_score), [20, 75]);
    // The fleet reads the list when it is shown again.
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByRole('link', { name: 'Fleet' }).click();
    await page.locator(`tr[data-device="${deviceIds[1]}"] [data-testid="risk"]`).filter({ hasText: /^75$/ }).waitFor();
    assert.equal(await page.locator(`tr[data-device="${deviceIds[0]}"] [data-testid="risk"]`).textContent(), '20');
    assert.match(await page.locator(`tr[data-device="${deviceIds[1]}"] [data-testid="risk"]`).getAttribute('class') ?? '', /risk-medium/);
    await page.getByLabel('Sort devices').selectOption('risk');
    const order = await page.locator('table.devices tbody tr').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-device')));
    assert.ok(order.indexOf(deviceIds[1]!) < order.indexOf(deviceIds[0]!), `highest risk first: ${order.join(', ')}`);
    await page.getByLabel('Minimum risk score').selectOption('50');
    await page.locator(`tr[data-device="${deviceIds[0]}"]`).waitFor({ state: 'detached' });
    await page.locator(`tr[data-device="${deviceIds[1]}"]`).waitFor();
    await shot('fleet-risk');
    await page.getByLabel('Minimum risk score').selectOption('0');
    await page.getByLabel('Sort devices').selectOption('id');
    await page.locator(`tr[data-device="${deviceIds[0]}"]`).waitFor();
  });

  it('sends a process list command and watches it reach succeeded, with the result as a table', async () => {
    await page.locator(`tr[data-device="${deviceIds[0]}"]`).getByRole('link', { name: `Send a command to ${deviceIds[0]}` }).click();
    await page.getByRole('heading', { name: 'Send a command' }).waitFor();
    assert.equal(await page.getByLabel('Device', { exact: true }).inputValue(), deviceIds[0]);
    await page.getByLabel('Opcode').selectOption('EXEC_GET_PROCESS_LIST');
    await page.getByLabel('limit').fill('5');
    // Send shows the policy's dry run first; the second press sends what was checked.
    await page.getByRole('button', { name: 'Send' }).click();
    const verdict = page.locator(`[data-testid="verdict"][data-device="${deviceIds[0]}"]`);
    await verdict.filter({ hasText: 'allowed by rule admin-all' }).waitFor();
    assert.equal(await verdict.getAttribute('data-verdict'), 'allowed');
    assert.equal(new URL(page.url()).hash.startsWith('#/compose'), true, 'nothing sent yet');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.getByTestId('command-state').filter({ hasText: /^succeeded$/ }).waitFor();
    commandId = decodeURIComponent(new URL(page.url()).hash.replace('#/commands/', ''));
    const timeline = await page.getByTestId('timeline').locator('li .state').allTextContents();
    for (const state of ['queued', 'sent', 'ack_received', 'executing', 'succeeded']) assert.ok(timeline.includes(state), `${state} in ${timeline.join(', ')}`);
    assert.equal(timeline.at(-1), 'succeeded');
    const table = page.getByTestId('result-table');
    await table.waitFor();
    const rows = await table.locator('tbody tr').count();
    assert.ok(rows >= 1 && rows <= 5, `${rows} process rows`);
    assert.ok((await table.locator('thead th').allTextContents()).includes('pid'));
    // The API agrees with what the page shows.
    const stored = await system.api<{ state: string; device_id: string; history: Array<{ state: string }> }>('GET', `/v1/commands/${commandId}`);
    assert.deepEqual([stored.state, stored.device_id], ['succeeded', deviceIds[0]]);
    assert.deepEqual(timeline, stored.history.map((h) => h.state));
    await shot('command');
  });

  it('shows the device with its telemetry chart and the command', async () => {
    await page.goto(`${consoleUrl}#/devices/${deviceIds[0]}`);
    await page.getByRole('heading', { name: `Device ${deviceIds[0]}` }).waitFor();
    await page.locator('sdc-chart canvas').first().waitFor();
    await page.getByRole('link', { name: commandId }).waitFor();
    await shot('device');
  });

  it('shows the device\'s compliance with the API\'s state, edits its tags and filters the fleet by one', async () => {
    const judged = await system.api<{ state: string }>('GET', `/v1/devices/${deviceIds[0]}/compliance`);
    const shown = page.getByTestId('device-compliance');
    await shown.waitFor();
    assert.equal(await shown.textContent(), judged.state.replace('_', '-'));
    await page.getByLabel(`Tags of ${deviceIds[0]}`).fill('site:lab, Group:Console-E2E');
    await page.getByRole('button', { name: 'Save tags' }).click();
    await page.getByTestId('device-tags').filter({ hasText: 'group:console-e2e' }).waitFor();
    const stored = await system.api<{ items: Array<{ id: string }> }>('GET', '/v1/devices?tag=group:console-e2e');
    assert.deepEqual(stored.items.map((d) => d.id), [deviceIds[0]]);
    await shot('device-compliance-tags');
    await page.getByRole('link', { name: 'Fleet' }).click();
    const row = page.locator(`tr[data-device="${deviceIds[0]}"]`);
    await row.locator('.tag').filter({ hasText: 'site:lab' }).waitFor();
    await row.getByTestId('compliance').filter({ hasText: new RegExp(`^${judged.state.replace('_', '-')}$`) }).waitFor();
    await page.getByLabel('Filter by tag').selectOption('group:console-e2e');
    await page.locator(`tr[data-device="${deviceIds[1]}"]`).waitFor({ state: 'detached' });
    assert.equal(await page.locator('table.devices tbody tr').count(), 1);
    await shot('fleet-by-tag');
    await page.getByLabel('Filter by tag').selectOption('');
  });

  it('composes by tag: the devices carrying it, each one\'s dry-run verdict, then one command each', async () => {
    await page.getByRole('link', { name: 'Send a command', exact: true }).click();
    await page.getByLabel('Devices with a tag').check();
    await page.getByLabel('Tag', { exact: true }).fill('group:console-e2e');
    await page.getByRole('button', { name: 'Find devices' }).click();
    const picks = page.getByTestId('tag-devices');
    await picks.getByLabel(deviceIds[0]!).waitFor();
    assert.equal(await picks.getByRole('checkbox').count(), 1, 'only the device carrying the tag');
    await page.getByLabel('Opcode').selectOption('EXEC_GET_PROCESS_LIST');
    await page.getByLabel('limit').fill('2');
    await page.getByRole('button', { name: 'Check with the policy' }).click();
    await page.locator(`[data-testid="verdict"][data-device="${deviceIds[0]}"][data-verdict="allowed"]`).waitFor();
    await shot('composer-tag-verdict');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.getByTestId('command-state').filter({ hasText: /^succeeded$/ }).waitFor();
    const sent = decodeURIComponent(new URL(page.url()).hash.replace('#/commands/', ''));
    const stored = await system.api<{ device_id: string; args: { limit: number } }>('GET', `/v1/commands/${sent}`);
    assert.deepEqual([stored.device_id, stored.args.limit], [deviceIds[0], 2]);
  });

  it('shows the dry run\'s denied (with the rule) and approvals-needed verdicts from a policy stored with PUT /v1/policy, and sends nothing', async () => {
    const current = await system.api<{ revision: number; document: { rules: unknown[] } }>('GET', '/v1/policy');
    const document = { version: 1, revision: current.revision, rules: [...current.document.rules, { id: 'console-no-ping', effect: 'deny', roles: ['approver'], opcodes: ['EXEC_PING_KERNEL'], devices: '*' }] };
    const stored = await httpsJson<{ revision: number }>({ method: 'PUT', url: new URL('/v1/policy', system.apiUrl), caPem: system.materials.rootCaPem, token: system.token, body: document, timeoutMs: e2eWaitMsMin });
    assert.equal(stored.status, 200);
    const before = await system.api<{ items: unknown[] }>('GET', '/v1/commands?limit=200');
    // The approver: its screen lock needs an admin's approval (rule lock-with-admin), its kernel ping is denied.
    const context = await browser.newContext({ ignoreHTTPSErrors: false, viewport: { width: 1280, height: 720 } });
    const other = await context.newPage();
    other.setDefaultTimeout(e2eWaitMsMin);
    other.on('pageerror', (error) => pageProblems.push(error.message));
    try {
      await other.goto(`${consoleUrl}#/compose?device=${deviceIds[0]}`);
      await other.getByLabel('Name').fill(requester.name);
      await other.getByLabel('Password').fill(requester.password);
      await other.getByRole('button', { name: 'Log in' }).click();
      await other.getByRole('heading', { name: 'Send a command' }).waitFor();
      const verdict = other.locator(`[data-testid="verdict"][data-device="${deviceIds[0]}"]`);
      await other.getByLabel('Opcode').selectOption('EXEC_LOCK_SCREEN');
      await other.getByRole('button', { name: 'Check with the policy' }).click();
      await other.locator(`[data-testid="verdict"][data-device="${deviceIds[0]}"][data-verdict="approval"]`).waitFor();
      assert.match(await verdict.textContent() ?? '', /needs 1 approval by admin \(rule lock-with-admin\)/);
      await other.screenshot({ path: join(screenshotDir, 'composer-verdict-approval.png'), fullPage: true });
      await other.getByLabel('Opcode').selectOption('EXEC_PING_KERNEL');
      await other.getByRole('button', { name: 'Check with the policy' }).click();
      await other.locator(`[data-testid="verdict"][data-device="${deviceIds[0]}"][data-verdict="denied"]`).waitFor();
      const denied = await verdict.textContent() ?? '';
      assert.match(denied, /denied by rule console-no-ping/);
      assert.match(denied, /COMMAND_POLICY_DENIED/);
      await other.screenshot({ path: join(screenshotDir, 'composer-verdict-denied.png'), fullPage: true });
    } finally {
      await context.close();
    }
    const after = await system.api<{ items: unknown[] }>('GET', '/v1/commands?limit=200');
    assert.equal(after.items.length, before.items.length, 'a dry run creates no command');
  });

  it('verifies the audit chain and the device signatures in the browser', async () => {
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByRole('button', { name: 'Verify in this browser' }).click();
    const verdict = page.getByTestId('audit-verdict');
    await verdict.waitFor();
    assert.equal(await verdict.getAttribute('data-ok'), 'true', await verdict.textContent() ?? '');
    const text = await verdict.textContent() ?? '';
    const signatures = Number(/(\d+) device signatures valid/.exec(text)?.[1]);
    assert.ok(signatures >= 3, `the command's two ACKs and its result are device-signed: ${text}`);
    await shot('audit-verified');
  });

  it('names the first broken link after an audit row is changed in the database', async () => {
    const sql = system.deployment.stores.sql!;
    const [row] = await sql.query<{ seq: number }>("SELECT seq FROM audit_log WHERE kind = 'command.result' AND subject = ? ORDER BY seq LIMIT 1", [`command:${commandId}`]);
    assert.ok(row, 'the command\'s result is in the audit log');
    const tamperedSeq = Number(row.seq);
    await sql.execute("UPDATE audit_log SET actor = 'device:mallory' WHERE seq = ?", [tamperedSeq]);
    await page.getByRole('button', { name: 'Verify in this browser' }).click();
    const verdict = page.getByTestId('audit-verdict');
    await page.locator('[data-testid="audit-verdict"][data-ok="false"]').waitFor();
    assert.equal(Number(await page.getByTestId('first-broken-seq').textContent()), tamperedSeq);
    assert.match(await verdict.textContent() ?? '', /hash_mismatch/);
    await shot('audit-broken');
  });

  it('shows an agent going offline when it stops', async () => {
    await page.getByRole('link', { name: 'Fleet' }).click();
    await system.agents.get(deviceIds[1]!)!.stop();
    await page.locator(`tr[data-device="${deviceIds[1]}"] [data-testid="presence"]`).filter({ hasText: 'offline' }).waitFor();
    await shot('fleet-offline');
    await page.setViewportSize({ width: 390, height: 844 });
    // The table scrolls sideways in its own box; the page does not widen, and no id breaks mid-word.
    const phone = await page.evaluate(() => {
      const box = document.querySelector('[data-testid="fleet-scroll"]')!;
      const idLinks = Array.from(document.querySelectorAll('table.devices tbody th a'));
      // What sticks out, outside the table's own box: named in the failure.
      const wide = Array.from(document.querySelectorAll('body *')).filter((el) => !box.contains(el) && el.getBoundingClientRect().right > window.innerWidth + 1)
        .slice(0, 8).map((el) => `${el.tagName.toLowerCase()}.${el.className}:${Math.round(el.getBoundingClientRect().right)}`);
      return { page: document.documentElement.scrollWidth, inner: window.innerWidth, boxScroll: box.scrollWidth, boxClient: box.clientWidth, lines: idLinks.map((a) => a.getClientRects().length), wide };
    });
    assert.ok(phone.page <= phone.inner, `the page is ${phone.page} px wide at ${phone.inner}: ${phone.wide.join(' ')}`);
    assert.ok(phone.boxScroll > phone.boxClient, `the fleet table scrolls in its box (${phone.boxScroll} > ${phone.boxClient})`);
    assert.ok(phone.lines.length >= 2 && phone.lines.every((count) => count === 1), `each id on one line: ${phone.lines.join(', ')}`);
    await page.getByTestId('fleet-scroll').evaluate((box) => { box.scrollLeft = box.scrollWidth; });
    await shot('fleet-phone-scrolled');
    await page.getByTestId('fleet-scroll').evaluate((box) => { box.scrollLeft = 0; });
    await shot('fleet-phone');
    await page.setViewportSize({ width: 1280, height: 720 });
  });

  it('shows an alert raised while watching, live and as a notice, and acknowledges it with a note', async () => {
    // The command sent earlier finished while the console was open: its notice is in the page.
    await page.locator(`[data-notice="command:${commandId}:succeeded"]`).waitFor();
    await page.getByRole('link', { name: 'Alerts', exact: true }).click();
    await page.getByRole('heading', { name: 'Alerts' }).waitFor();
    const controlPlane = system.deployment.controlPlane!;
    // The path a device's ALERT frame takes once the gateway has passed it on.
    const alertId = await controlPlane.events.raiseAlert({ deviceId: deviceIds[0]!, kind: 'tamper', severity: 'critical', message: 'case opened (console e2e)', atMs: systemClock.nowMs(), detail: {}, actor: actors.system });
    await page.locator(`[data-notice="alert:${alertId}"]`).waitFor();
    const row = page.getByTestId('open-alerts').locator(`tr[data-alert="${alertId}"]`);
    await row.waitFor();
    await shot('alert-open');
    await row.getByLabel(`Note for alert ${alertId}`).fill('seen on camera, technician sent');
    await row.getByRole('button', { name: `Acknowledge alert ${alertId}` }).click();
    const acked = page.getByTestId('acked-alerts').locator(`tr[data-alert="${alertId}"]`);
    await acked.filter({ hasText: 'seen on camera, technician sent' }).waitFor();
    assert.match(await acked.textContent() ?? '', new RegExp(`by ${operator.name}`));
    await page.getByTestId('open-alerts').locator(`tr[data-alert="${alertId}"]`).waitFor({ state: 'detached' });
    const stored = await system.api<{ items: Array<{ id: string; state: string; acknowledged_by: string; ack_note: string }> }>('GET', '/v1/alerts?state=acked&limit=500');
    const mine = stored.items.find((a) => a.id === alertId);
    assert.deepEqual([mine?.state, mine?.acknowledged_by, mine?.ack_note], ['acknowledged', operator.name, 'seen on camera, technician sent']);
    await shot('alert-acked');
    // Another operator's acknowledgement (over the API) moves an alert live, with no reload here.
    const second = await controlPlane.events.raiseAlert({ deviceId: deviceIds[0]!, kind: 'tamper', severity: 'warning', message: 'lid sensor (console e2e)', atMs: systemClock.nowMs(), detail: {}, actor: actors.system });
    await page.getByTestId('open-alerts').locator(`tr[data-alert="${second}"]`).waitFor();
    await system.api('POST', `/v1/alerts/${second}/ack`, { note: 'from the CLI' });
    await page.getByTestId('acked-alerts').locator(`tr[data-alert="${second}"]`).filter({ hasText: 'from the CLI' }).waitFor();
  });

  it('shows a device\'s certificate and alerts; an admin creates a pairing token (shown once) and revokes the certificate after confirming', async () => {
    await page.goto(`${consoleUrl}#/devices/${deviceIds[0]}`);
    const alerts = page.getByTestId('device-alerts');
    await alerts.locator('tr').filter({ hasText: 'case opened (console e2e)' }).waitFor();
    // The stopped second device: a token for it, then its certificate revoked.
    await page.goto(`${consoleUrl}#/devices/${deviceIds[1]}`);
    const stored = await system.api<{ cert_serial: string; cert_not_after_ms: number }>('GET', `/v1/devices/${deviceIds[1]}`);
    await page.getByTestId('cert-serial').filter({ hasText: stored.cert_serial }).waitFor();
    await page.getByRole('button', { name: 'Create a pairing token' }).click();
    const token = page.getByTestId('pairing-token');
    await token.waitFor();
    assert.match(await token.locator('code').textContent() ?? '', /^[A-Za-z0-9_-]{20,}$/);
    await shot('device-pairing-token');
    await page.getByRole('button', { name: 'Hide it' }).click();
    await token.waitFor({ state: 'detached' });
    await page.getByLabel('Reason').selectOption('keyCompromise');
    await page.getByRole('button', { name: 'Revoke certificate…' }).click();
    const confirm = page.getByTestId('revoke-confirm');
    await confirm.filter({ hasText: `Revoke the certificate of ${deviceIds[1]} (keyCompromise)?` }).waitFor();
    assert.equal((await system.api<{ status: string }>('GET', `/v1/devices/${deviceIds[1]}`)).status !== 'revoked', true, 'nothing revoked before the confirmation');
    await shot('device-revoke-confirm');
    await page.getByRole('button', { name: `Yes, revoke ${deviceIds[1]}` }).click();
    await page.getByTestId('revoke-outcome').filter({ hasText: `Revoked certificate ${stored.cert_serial}` }).waitFor();
    assert.equal((await system.api<{ status: string }>('GET', `/v1/devices/${deviceIds[1]}`)).status, 'revoked');
  });

  it('lists dead letters, retries the selected one (answered from the agent\'s journal) and discards another with a reason', async () => {
    const retried = await createCommand(system, deviceIds[0]!, 'EXEC_GET_PROCESS_LIST', { limit: 3 });
    const created = await createCommand(system, deviceIds[0]!, 'EXEC_GET_PROCESS_LIST', { limit: 2 });
    for (const command of [retried, created]) assert.equal((await waitTerminal(system, command.id)).state, 'succeeded');
    const db = system.deployment.controlPlane!.context.db;
    const table = page.getByTestId('dead-letters');
    /**
     * What the control plane knows after a gateway gave up on a delivery whose ACK and RESULT were
     * lost, then the view opened afresh until it lists every one of `ids`. On a loaded machine the
     * gateway's ACK timeout can send a command twice, and the agent answers the second delivery
     * from its journal: that late RESULT, landing after the UPDATE, rightly refines the command to
     * succeeded_late and takes it off the list (a clean-clone run failed so). Such a command is
     * marked again; a row missing for any other reason (the list or the view losing it) fails.
     */
    const showDeadLetters = async (ids: readonly string[]) => {
      for (let round = 1; ; round += 1) {
        for (const id of ids) await db.execute("UPDATE commands SET state = 'dead_lettered', result_json = NULL WHERE id = ? AND state <> 'dead_lettered'", [id]);
        // Away and back: the view is built again and reads the list once.
        await page.getByRole('link', { name: 'Fleet', exact: true }).click();
        await page.getByRole('heading', { name: 'Fleet' }).waitFor();
        await page.getByRole('link', { name: 'Dead letters', exact: true }).click();
        await table.or(page.getByTestId('dlq-empty')).waitFor();
        const missing: string[] = [];
        for (const id of ids) if (await table.locator(`tr[data-command="${id}"]`).count() === 0) missing.push(id);
        if (missing.length === 0) return;
        const states = await Promise.all(missing.map(async (id) => [id, (await system.api<{ state: string }>('GET', `/v1/commands/${id}`)).state] as const));
        assert.ok(states.every(([, state]) => state === 'succeeded_late'), `dead letters not listed, and not refined by a late answer: ${JSON.stringify(states)}`);
        assert.ok(round < 5, `refined by late answers ${round} times: ${JSON.stringify(states)}`);
      }
    };
    await showDeadLetters([retried.id, created.id]);
    const retriedRow = table.locator(`tr[data-command="${retried.id}"]`);
    await retriedRow.getByLabel(`Select ${retried.id}`).check();
    await page.getByRole('button', { name: 'Retry selected (1)' }).click();
    await page.getByTestId('retry-results').filter({ hasText: `${retried.id}: retried through` }).waitFor();
    // The agent answers the same signed command from its journal: the result refines the state and takes it off the list.
    const refined = await waitTerminal(system, retried.id);
    await eventually('the retried command refined', async () => {
      const record = await system.api<{ state: string }>('GET', `/v1/commands/${retried.id}`);
      return record.state === 'succeeded_late' ? record : undefined;
    });
    assert.ok(['dead_lettered', 'succeeded_late'].includes(refined.state), refined.state);
    const row = table.locator(`tr[data-command="${created.id}"]`);
    // Still listed after the retry's read, unless a late answer refined it meanwhile (then shown again).
    if (await row.count() === 0) await showDeadLetters([created.id]);
    await row.waitFor();
    await shot('dead-letters');
    await row.getByLabel(`Reason to discard ${created.id}`).fill('superseded by a fresh command');
    await row.getByRole('button', { name: `Discard ${created.id}` }).click();
    await row.waitFor({ state: 'detached' });
    const listed = await system.api<{ items: Array<{ command_id: string }> }>('GET', '/v1/dead-letters');
    assert.equal(listed.items.some((d) => d.command_id === created.id), false);
  });

  it('approves a pending command with a key created and signing in the page, releasing it', async () => {
    const { token } = await system.api<{ token: string }>('POST', '/v1/auth/login', requester, { token: null });
    const created = await system.api<{ id: string; state: string }>('POST', '/v1/commands', { device_id: deviceIds[0], opcode: 'EXEC_LOCK_SCREEN', args: {} }, { token, headers: { 'idempotency-key': `console-${system.tag}` } });
    assert.equal(created.state, 'pending_approval');
    await page.getByRole('link', { name: 'Approvals', exact: true }).click();
    const item = page.locator(`li[data-command="${created.id}"]`);
    await item.waitFor();
    assert.match(await item.textContent() ?? '', /EXEC_LOCK_SCREEN[\s\S]*console-requester/);
    // Registering a key needs the account's password (security review 2026-12-05, finding 4).
    await page.getByTestId('approval-key-password').fill(operator.password);
    await page.getByRole('button', { name: 'Create a signing key' }).click();
    const key = page.getByTestId('approval-key');
    await key.waitFor();
    const registered = await system.api<{ kid: string }>('GET', '/v1/users/me/signing-key', undefined, { token: (await system.api<{ token: string }>('POST', '/v1/auth/login', operator, { token: null })).token });
    assert.match(await key.textContent() ?? '', new RegExp(registered.kid));
    await shot('approvals');
    await item.getByRole('button', { name: `Approve ${created.id}` }).click();
    await page.getByTestId('approval-outcome').filter({ hasText: `Approved ${created.id}: released and queued.` }).waitFor();
    await item.waitFor({ state: 'detached' });
    // The server checked the browser's signature against the registered key and released the command.
    const stored = await system.api<{ state: string; history: Array<{ state: string }> }>('GET', `/v1/commands/${created.id}`);
    assert.notEqual(stored.state, 'pending_approval', JSON.stringify(stored));
    assert.ok(stored.history.some((h) => h.state === 'queued'), JSON.stringify(stored.history));
    await shot('approvals-done');
  });

  it('rejects a pending command with a reason, signed in the page; it ends rejected', async () => {
    const { token } = await system.api<{ token: string }>('POST', '/v1/auth/login', requester, { token: null });
    const created = await system.api<{ id: string; state: string }>('POST', '/v1/commands', { device_id: deviceIds[0], opcode: 'EXEC_LOCK_SCREEN', args: {} }, { token, headers: { 'idempotency-key': `console-reject-${system.tag}` } });
    assert.equal(created.state, 'pending_approval');
    // The inbox follows command events; a reload of the view shows the new one either way.
    await page.getByRole('link', { name: 'Fleet', exact: true }).click();
    await page.getByRole('link', { name: 'Approvals', exact: true }).click();
    const item = page.locator(`li[data-command="${created.id}"]`);
    await item.getByLabel(`Reason to reject ${created.id}`).fill('not during opening hours');
    await item.getByRole('button', { name: `Reject ${created.id}` }).click();
    await page.getByTestId('approval-outcome').filter({ hasText: `Rejected ${created.id}.` }).waitFor();
    const stored = await system.api<{ state: string }>('GET', `/v1/commands/${created.id}`);
    assert.equal(stored.state, 'rejected');
  });

  it('plots a simulation run opened from disk and saves a plot as PNG', async () => {
    await page.getByRole('link', { name: 'Simulation runs' }).click();
    const summary = { seed: 42, scenario: 'churn', agents: 3, tier: 'full', gitCommit: null, reproduce: 'sdc sim --seed 42 --scenario churn',
      latencyMs: { count: 4, p50Ms: 50, p99Ms: 900 }, checkers: { none_lost: 'pass', at_most_once: 'pass' },
      resolvedScenario: { faults: { gatewayRestarts: [{ gateway: 'gw-1', atMs: 1500, downMs: 1000 }] } } };
    const file = (name: string, text: string) => ({ name, mimeType: name.endsWith('.json') ? 'application/json' : 'text/csv', buffer: Buffer.from(text) });
    await page.getByTestId('run-files').setInputFiles([
      file('summary.json', JSON.stringify(summary)),
      file('online-agents.csv', 't_ms,online_agents\n1000,3\n2000,2\n3000,3\n'),
      file('commands-by-state.csv', 't_ms,queued,succeeded\n1000,2,0\n2000,1,1\n3000,0,2\n'),
      file('latency-histogram.csv', 'le_ms,count\n10,0\n50,2\n1000,2\n'),
    ]);
    await page.getByTestId('run-facts').filter({ hasText: 'churn' }).waitFor();
    // The plots are drawn in the charts' own update, just after the facts: wait for the third.
    await page.locator('sdc-research sdc-chart canvas').nth(2).waitFor();
    assert.equal(await page.locator('sdc-research sdc-chart canvas').count(), 3);
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Save PNG of Round-trip latency CDF' }).click();
    const saved = await download;
    assert.equal(saved.suggestedFilename(), 'latency-cdf.png');
    const svgDownload = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Save SVG of Round-trip latency CDF' }).click();
    const svg = await svgDownload;
    assert.equal(svg.suggestedFilename(), 'latency-cdf.svg');
    const svgText = await readFile(await svg.path(), 'utf8');
    assert.match(svgText, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[\s\S]*<polyline[\s\S]*<\/svg>/);
    // The run restarted gw-1 at 1.5 s: one agent missing at 2 s, back at 3 s.
    const recovery = page.getByTestId('recovery-plot');
    await recovery.waitFor();
    assert.match(await recovery.locator('img').getAttribute('alt') ?? '', /restart gw-1, back after 1\.5 s/);
    await shot('research');
    const bench = { benchmark: 'ioctl', schema_version: 1, environment: { node: 'v20.20.2', cpu: 'test', cpu_count: 2, git_commit: null }, parameters: { calls: 100 },
      results: [{ backend: 'mock', opcode: 'EXEC_PING_KERNEL', calls: 100, calls_per_s: 41000, p50_us: 22.1 }, { backend: 'native', opcode: 'EXEC_PING_KERNEL', calls: 100, calls_per_s: 9000, p50_us: 90 }],
      units: { calls: 'calls', calls_per_s: 'calls per second', p50_us: 'microseconds' } };
    await page.getByTestId('run-files').setInputFiles([file('ioctl.json', JSON.stringify(bench))]);
    const benchPlot = page.getByTestId('bench-plot');
    await benchPlot.waitFor();
    await page.getByLabel('Bench field to plot').selectOption('calls_per_s');
    assert.match(await benchPlot.locator('img').getAttribute('alt') ?? '', /mock EXEC_PING_KERNEL 41000 calls per second; native EXEC_PING_KERNEL 9000/);
    assert.equal(await page.getByTestId('bench-results').locator('tbody tr').count(), 2);
    await page.getByTestId('run-files').setInputFiles([file('broken.json', '{"seed": 1}')]);
    await page.getByRole('alert').filter({ hasText: 'VIEWER_FILE_INVALID broken.json' }).waitFor();
    await shot('research-bench');
  });

  it('says so when the control plane has no OTA image repository (no release routes)', async () => {
    await page.getByRole('link', { name: 'Releases', exact: true }).click();
    await page.getByTestId('ota-absent').waitFor();
  });

  it('shows rollouts with waves and per-device states, and pauses and aborts one (the element, with the API answered in the page)', async () => {
    // This deployment has no image repository, so the rollout routes are answered here with the
    // API's own shape (server/ota/rollout-routes.ts): a test of the element, not of the server.
    const rollout = {
      id: `ro-${'a'.repeat(32)}`, release_id: 'fw-2', status: 'running', pause_reason: null, wave_index: 1,
      waves: [{ devices: ['d1'], size: 1, started: 1, succeeded: 1, failed: 0, terminal: 1 }, { devices: ['d2', 'd3'], size: 2, started: 2, succeeded: 0, failed: 1, terminal: 1 }],
      executions: [
        { id: 'ex1', device_id: 'd1', wave: 0, state: 'succeeded', created_at_ms: 1_700_000_000_000, ended_at_ms: 1_700_000_060_000, last_error_code: null },
        { id: 'ex2', device_id: 'd2', wave: 1, state: 'downloading', created_at_ms: 1_700_000_100_000, ended_at_ms: null, last_error_code: null },
        { id: 'ex3', device_id: 'd3', wave: 1, state: 'failed', created_at_ms: 1_700_000_100_000, ended_at_ms: 1_700_000_160_000, last_error_code: 'OTA_HEALTH_CHECK_FAILED' },
      ],
      created_by: 'ops', created_at_ms: 1_700_000_000_000, updated_at_ms: 1_700_000_160_000,
    };
    const posted: string[] = [];
    await page.route('**/v1/releases', (route) => route.fulfill({ json: { items: [] } }));
    // Stateful like the API: the view reads the list again every few seconds while a rollout is in progress.
    let current: typeof rollout = rollout;
    await page.route('**/v1/rollouts?limit=50', (route) => route.fulfill({ json: { items: [current] } }));
    const askedAuthority: string[] = [];
    await page.route('**/v1/rollouts/*/*', (route) => {
      const action = new URL(route.request().url()).pathname.split('/').at(-1)!;
      // A paused card asks whether this operator may resume it (decision 0019): a question, not an action.
      if (action === 'resume-authority' && route.request().method() === 'GET') {
        askedAuthority.push(current.status);
        return route.fulfill({ json: { status: current.status, safety_stop: null, verdict: current.status === 'paused' ? 'allowed' : 'not_paused' } });
      }
      posted.push(action);
      current = { ...rollout, status: action === 'pause' ? 'paused' : 'aborted', pause_reason: action === 'pause' ? 'operator' : null } as typeof rollout;
      return route.fulfill({ json: current });
    });
    try {
      await page.getByRole('link', { name: 'Fleet', exact: true }).click();
      await page.getByRole('link', { name: 'Releases', exact: true }).click();
      const card = page.locator(`[data-rollout="${rollout.id}"]`);
      await card.waitFor();
      assert.equal(await card.getByTestId('rollout-waves').locator('tbody tr').count(), 2);
      assert.match(await card.getByTestId('rollout-waves').locator('tr[aria-current="step"]').textContent() ?? '', /2 \(current\)/);
      await card.getByText('Devices (3)').click();
      assert.match(await card.locator('tr[data-device="d3"]').textContent() ?? '', /failed[\s\S]*OTA_HEALTH_CHECK_FAILED/);
      await shot('rollouts');
      await card.getByRole('button', { name: `Pause rollout ${rollout.id}` }).click();
      await card.getByTestId('rollout-status').filter({ hasText: 'paused' }).waitFor();
      await card.getByText('paused by an operator').waitFor();
      // The server said this operator may resume: the button is offered, and only after it asked.
      await card.getByRole('button', { name: `Resume rollout ${rollout.id}`, exact: true }).waitFor();
      assert.ok(askedAuthority.includes('paused'), 'the card asked for the resume authority of the paused rollout');
      await card.getByRole('button', { name: `Abort rollout ${rollout.id}`, exact: true }).click();
      await card.getByTestId('rollout-confirm').waitFor();
      assert.deepEqual(posted, ['pause'], 'an abort waits for its confirmation');
      await card.getByRole('button', { name: 'Yes, abort' }).click();
      await card.getByTestId('rollout-status').filter({ hasText: 'aborted' }).waitFor();
      assert.deepEqual(posted, ['pause', 'abort']);
      assert.equal(await card.getByRole('button', { name: /Pause|Resume|Abort/ }).count(), 0, 'an aborted rollout offers no action');
    } finally {
      await page.unroute('**/v1/releases');
      await page.unroute('**/v1/rollouts?limit=50');
      await page.unroute('**/v1/rollouts/*/*');
    }
  });

  it('shows a device the command policy kept out of a rollout: the code, the reason, the rule and that it was not notified (the element, with the API answered in the page)', async () => {
    // The API's shape for a refused device (server/ota/rollout-routes.ts, docs/ota.md "Rollouts and the command policy"):
    // canceled, the policy's code as last_error_code, and policy_refusal.
    const refusal = { code: 'COMMAND_QUIET_HOURS', reason: 'quiet hours of rule night (22:00-06:00)', opcode: 'EXEC_STAGE_UPDATE', rule_id: 'night', revision: 4 };
    const rollout = {
      id: `ro-${'b'.repeat(32)}`, release_id: 'fw-3', status: 'running', pause_reason: null, wave_index: 0,
      waves: [{ devices: ['p1', 'p2'], size: 2, started: 2, succeeded: 0, failed: 0, terminal: 1 }],
      executions: [
        { id: 'ex-p1', device_id: 'p1', wave: 0, state: 'downloading', created_at_ms: 1_700_000_000_000, ended_at_ms: null, last_error_code: null },
        { id: 'ex-p2', device_id: 'p2', wave: 0, state: 'canceled', created_at_ms: 1_700_000_000_000, ended_at_ms: 1_700_000_000_000, last_error_code: refusal.code, policy_refusal: refusal },
      ],
      created_by: 'ops', created_at_ms: 1_700_000_000_000, updated_at_ms: 1_700_000_000_000,
    };
    await page.route('**/v1/releases', (route) => route.fulfill({ json: { items: [] } }));
    await page.route('**/v1/rollouts?limit=50', (route) => route.fulfill({ json: { items: [rollout] } }));
    try {
      await page.getByRole('link', { name: 'Fleet', exact: true }).click();
      await page.getByRole('link', { name: 'Releases', exact: true }).click();
      const card = page.locator(`[data-rollout="${rollout.id}"]`);
      await card.waitFor();
      assert.equal(await card.getByTestId('rollout-policy-refused').textContent(), '1 device refused by the command policy, not notified (see Devices)');
      await card.getByText('Devices (2)').click();
      const refused = card.locator('tr[data-device="p2"]');
      assert.match(await refused.textContent() ?? '', /canceled/);
      assert.equal((await refused.getByTestId('policy-refusal').textContent())?.replace(/\s+/g, ' ').trim(),
        'COMMAND_QUIET_HOURS refused by the command policy: quiet hours of rule night (22:00-06:00) (rule night, EXEC_STAGE_UPDATE, policy revision 4); the device was not notified');
      assert.equal(await card.locator('tr[data-device="p1"]').getByTestId('policy-refusal').count(), 0, 'a notified device shows no refusal');
      await shot('rollouts-policy-refusal');
    } finally {
      await page.unroute('**/v1/releases');
      await page.unroute('**/v1/rollouts?limit=50');
    }
  });

  it('shows what devices, gateways and other operators sent with control, bidi and zero-width characters as escapes, in every view (viewer/visible-text.ts)', async () => {
    // Drawn as they are, these would reverse the words after them (U+202E), make one device id
    // look like another (U+200B) or draw as nothing (ESC, CR); lit escapes HTML, not these.
    const hostile = (text: string) => `${text} \u202Eevil\u202C\u200B\u001b[2K\r`;
    const shown = (text: string) => `${text} \\u202eevil\\u202c\\u200b\\u001b[2K\\u000d`;
    const unshown = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/u; // a tab is how innerText joins table cells
    const mainText = async () => (await page.locator('main').innerText()).replace(/\n/g, ' ');
    const assertEscaped = async (view: string, ...texts: string[]) => {
      const text = await mainText();
      for (const expected of texts) assert.ok(text.includes(expected), `${view} shows ${JSON.stringify(expected)}: ${JSON.stringify(text.slice(0, 400))}`);
      assert.doesNotMatch(text, unshown, `${view}: no hidden character drawn`);
    };
    // Off the Releases view first: its rollouts list, answered in the page by the tests before, reads again while shown.
    await page.getByRole('link', { name: 'Alerts', exact: true }).click();
    await page.getByRole('heading', { name: 'Alerts' }).waitFor();
    // A real alert, as a device's ALERT frame raises it: its text in the notice, the alerts view and the device's page.
    const alertId = await system.deployment.controlPlane!.events.raiseAlert({
      deviceId: deviceIds[0]!, kind: 'tamper', severity: 'warning', message: hostile('lid open'), atMs: systemClock.nowMs(), detail: {}, actor: actors.system,
    });
    const notice = page.locator(`[data-notice="alert:${alertId}"]`);
    await notice.waitFor();
    assert.ok((await notice.innerText()).includes(shown('lid open')), 'the notice shows the text escaped');
    assert.doesNotMatch(await notice.innerText(), unshown);
    await page.getByTestId('open-alerts').locator(`tr[data-alert="${alertId}"]`).waitFor();
    await assertEscaped('alerts', shown('lid open'));
    await page.goto(`${consoleUrl}#/devices/${deviceIds[0]}`);
    await page.getByTestId('device-alerts').locator(`tr[data-alert="${alertId}"]`).waitFor();
    await assertEscaped('device', shown('lid open'));
    // The rest answered in the page with the API's shapes: a dead letter, audit entries, a command's result and a refusal.
    const atMs = 1_700_000_000_000;
    await page.route('**/v1/dead-letters?limit=100', (route) => route.fulfill({ json: { items: [{
      command_id: 'c_hostile', device_id: 'dev\u200b-1', opcode: 'EXEC_PING_KERNEL', device_seq: 1, created_by: 'ops', created_at_ms: atMs,
      dead_lettered_at_ms: atMs, expires_at_ms: atMs, reason: hostile('no ACK'), retries: 1, last_retry_at_ms: atMs, last_retry_by: hostile('mallory'),
    }] } }));
    await page.route('**/v1/audit?from_seq=1&limit=50', (route) => route.fulfill({ json: { items: [
      { seq: 1, ts: atMs, kind: 'command.created', actor: hostile('mallory'), subject: 'dev\u200b-1', payload: {}, prev_hash: '0'.repeat(64), hash: 'a'.repeat(64) },
    ], next_from_seq: null } }));
    await page.route('**/v1/commands/c_hostile', (route) => route.fulfill({ json: {
      id: 'c_hostile', device_id: 'dev\u200b-1', opcode: 'EXEC_LIST_PROCESSES', args: {}, state: 'failed', device_seq: 1, created_by: hostile('ops'),
      created_at_ms: atMs, expires_at_ms: atMs, attempts: 1, history: [{ state: 'failed', at_ms: atMs }],
      result_frame: { body: { status: 'failed', output: { processes: [{ pid: 1, name: hostile('init') }], [hostile('note')]: hostile('text') }, error: { code: 'EXEC_FAILED', message: hostile('disk') } } },
    } }));
    await page.route('**/v1/commands/c_refused', (route) => route.fulfill({ status: 404, json: { error: { code: 'API_COMMAND_NOT_FOUND', message: hostile('no command') } } }));
    try {
      await page.goto(`${consoleUrl}#/dead-letters`);
      await page.getByTestId('dead-letters').locator('tr[data-command="c_hostile"]').waitFor();
      await assertEscaped('dead letters', 'dev\\u200b-1', shown('no ACK'), shown('mallory'));
      await page.goto(`${consoleUrl}#/audit`);
      await page.locator('table.audit tbody tr').first().waitFor();
      await assertEscaped('audit', shown('mallory'), 'dev\\u200b-1');
      await page.goto(`${consoleUrl}#/commands/c_hostile`);
      await page.getByTestId('result-error').waitFor();
      await assertEscaped('command', 'dev\\u200b-1', shown('ops'), shown('init'), shown('note'), shown('text'), shown('disk'));
      await page.goto(`${consoleUrl}#/commands/c_refused`);
      await page.getByRole('alert').filter({ hasText: 'API_COMMAND_NOT_FOUND' }).waitFor();
      await assertEscaped('a refusal', shown('no command'));
    } finally {
      await page.unroute('**/v1/dead-letters?limit=100');
      await page.unroute('**/v1/audit?from_seq=1&limit=50');
      await page.unroute('**/v1/commands/c_hostile');
      await page.unroute('**/v1/commands/c_refused');
      // The browser logs the refusal answered above; it is this test's, not a problem of the page.
      for (let i = pageProblems.length - 1; i >= 0; i--) if (pageProblems[i]!.endsWith('/v1/commands/c_refused')) pageProblems.splice(i, 1);
    }
    // The alert raised here stays open for no later test to trip over.
    await system.api('POST', `/v1/alerts/${alertId}/ack`, { note: 'escaping checked' });
  });

  it('is usable with the keyboard, every control labelled, and readable at 1280x720 and at a phone\'s 390x844 with nothing wider than the screen', async () => {
    // Keyboard: Tab from the top of the page reaches the navigation; Enter follows a link.
    await page.getByRole('link', { name: 'Fleet', exact: true }).focus();
    for (let i = 0; i < 12; i += 1) {
      if ((await page.evaluate(() => document.activeElement?.textContent?.trim())) === 'Alerts') break;
      await page.keyboard.press('Tab');
    }
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Alerts' }).waitFor();
    const views: Array<[string, string]> = [
      ['fleet', '#/fleet'], ['device', `#/devices/${deviceIds[0]}`], ['compose', `#/compose?device=${deviceIds[0]}`], ['command', `#/commands/${commandId}`],
      ['alerts', '#/alerts'], ['approvals', '#/approvals'], ['dead-letters', '#/dead-letters'], ['releases', '#/releases'], ['audit', '#/audit'], ['research', '#/research'],
    ];
    for (const [width, height] of [[1280, 720], [390, 844]] as const) {
      await page.setViewportSize({ width, height });
      for (const [name, hash] of views) {
        await page.goto(`${consoleUrl}${hash}`);
        await page.locator('main h1').first().waitFor();
        // Let the view's first read land (its tables are what could be too wide).
        await page.waitForLoadState('networkidle');
        const unlabelled = await page.evaluate(() => Array.from(document.querySelectorAll('main input, main select, main textarea, main button'))
          .filter((el) => {
            const control = el as HTMLInputElement;
            if (control.type === 'hidden') return false;
            const named = (control.labels?.length ?? 0) > 0 || control.getAttribute('aria-label') || control.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent?.trim());
            return !named;
          }).map((el) => el.outerHTML.slice(0, 80)));
        assert.deepEqual(unlabelled, [], `${name}: controls without a label`);
        if (width === 390) {
          const overflow = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
          assert.ok(overflow.scroll <= overflow.inner, `${name} at 390 px is ${overflow.scroll} px wide`);
        }
        await shot(`${name}-${width}x${height}`);
      }
    }
    await page.setViewportSize({ width: 1280, height: 720 });
  });

  it('asks for the password again when the token expires, keeping the page and what was typed', async () => {
    // A page of its own with a controlled clock: jumping past the token's 15 minutes needs no wait.
    const context = await browser.newContext({ ignoreHTTPSErrors: false, viewport: { width: 1280, height: 720 } });
    const clocked = await context.newPage();
    clocked.setDefaultTimeout(e2eWaitMsMin);
    clocked.on('pageerror', (error) => pageProblems.push(error.message));
    try {
      await clocked.clock.install();
      await clocked.goto(`${consoleUrl}#/compose?device=${deviceIds[0]}`);
      await clocked.getByLabel('Name').fill(operator.name);
      await clocked.getByLabel('Password').fill(operator.password);
      await clocked.getByRole('button', { name: 'Log in' }).click();
      await clocked.getByRole('heading', { name: 'Send a command' }).waitFor();
      await clocked.getByLabel('limit').fill('7');
      await clocked.clock.fastForward('20:00');
      const dialog = clocked.getByRole('dialog', { name: 'Log in again' });
      await dialog.getByText('Your session expired').waitFor();
      assert.equal(await dialog.getByLabel('Name').inputValue(), operator.name, 'the name is filled in');
      assert.equal(await clocked.getByLabel('limit').inputValue(), '7', 'the form behind the dialog is kept');
      await clocked.screenshot({ path: join(screenshotDir, 'reauth.png') });
      await dialog.getByLabel('Password').fill(operator.password);
      await dialog.getByRole('button', { name: 'Log in' }).click();
      await dialog.waitFor({ state: 'detached' });
      assert.equal(await clocked.getByLabel('limit').inputValue(), '7', 'still there after logging in again');
      assert.equal(await clocked.getByLabel('Device', { exact: true }).inputValue(), deviceIds[0]);
      await clocked.getByTestId('live-status').filter({ hasText: 'live: open' }).waitFor();
    } finally {
      await context.close();
    }
  });

  it('logs out, forgetting the token', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    assert.deepEqual(pageProblems.filter((text) => !/status of 401/.test(text)), []);
  });
});
