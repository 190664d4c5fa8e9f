// The operator console end to end in Debian's Chromium (playwright-core drives /usr/bin/chromium;
// no browser is ever downloaded) against a real deployment on loopback TLS with real agents:
// log in, see the fleet online, send a command and watch it reach succeeded, see the result
// table, verify the audit chain in the browser, and see that check fail after an audit row is
// changed in the database. Screenshots go to .tmp/viewer-e2e/ (git-ignored).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { startConsoleProxy, type ConsoleProxy } from '../../cli/demo/console-proxy.js';
import { systemClock } from '../../runtime/system.js';
import { parsePolicy } from '../../core/protocol/policy.js';
import { actors } from '../../server/control-plane/context.js';
import { createCommand, e2eWaitMsMin, eventually, pairAgent, startE2e, waitOnline, waitTerminal, type E2eSystem } from './support/e2e-harness.js';

const chromiumPath = '/usr/bin/chromium';
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const screenshotDir = join(repoRoot, '.tmp', 'viewer-e2e');
const skip = existsSync(chromiumPath) ? false : `${chromiumPath} is absent: apt-get install chromium (.ci/run does) to run the console in a browser`;

describe('the operator console in Chromium against a real deployment', { skip }, () => {
  let system: E2eSystem;
  let proxy: ConsoleProxy;
  let browser: Browser;
  let page: Page;
  let viewerDir: string;
  let previousViewerDir: string | undefined;
  const deviceIds: string[] = [];
  const pageProblems: string[] = [];
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
    await Promise.all(deviceIds.map((id) => pairAgent(system, id, { telemetryIntervalMs: 500 })));
    await waitOnline(system, deviceIds);
    // Browsers speak no Ed25519 TLS, our CA's only kind: the console is reached through the
    // ECDSA front that `sdc demo --viewer` also uses (cli/demo/console-proxy.ts, docs/viewer.md).
    proxy = await startConsoleProxy({ apiUrl: system.apiUrl, rootCaPem: system.materials.rootCaPem });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
    // The front's certificate is a throwaway self-signed one, which this browser profile does not trust.
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 720 } });
    page = await context.newPage();
    page.setDefaultTimeout(e2eWaitMsMin);
    // A CSP violation or an uncaught error in the page fails the run at the end.
    page.on('console', (message) => {
      // The browser logs every refused fetch; the releases view's 503 (no image repository here) is expected.
      const expected = /status of 503/.test(message.text()) && message.location().url.endsWith('/v1/releases');
      if (message.type() === 'error' && !expected) pageProblems.push(`${message.text()} ${message.location().url}`);
    });
    page.on('pageerror', (error) => pageProblems.push(error.message));
  });

  after(async () => {
    await browser?.close();
    await proxy?.close();
    await system?.stop();
    if (previousViewerDir === undefined) delete process.env.SDC_VIEWER_DIR;
    else process.env.SDC_VIEWER_DIR = previousViewerDir;
    if (viewerDir !== undefined) await rm(join(viewerDir, '..'), { recursive: true, force: true });
  });

  it('refuses a wrong password with its code, then logs in', async () => {
    await page.goto(proxy.url);
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
    await shot('fleet');
  });

  it('sends a process list command and watches it reach succeeded, with the result as a table', async () => {
    await page.locator(`tr[data-device="${deviceIds[0]}"]`).getByRole('link', { name: `Send a command to ${deviceIds[0]}` }).click();
    await page.getByRole('heading', { name: 'Send a command' }).waitFor();
    assert.equal(await page.getByLabel('Device').inputValue(), deviceIds[0]);
    await page.getByLabel('Opcode').selectOption('EXEC_GET_PROCESS_LIST');
    await page.getByLabel('limit').fill('5');
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
    await page.goto(`${proxy.url}#/devices/${deviceIds[0]}`);
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

  it('lists dead letters, retries the selected one (answered from the agent\'s journal) and discards another with a reason', async () => {
    const retried = await createCommand(system, deviceIds[0]!, 'EXEC_GET_PROCESS_LIST', { limit: 3 });
    const created = await createCommand(system, deviceIds[0]!, 'EXEC_GET_PROCESS_LIST', { limit: 2 });
    for (const command of [retried, created]) {
      assert.equal((await waitTerminal(system, command.id)).state, 'succeeded');
      // What the control plane knows after a gateway gave up on a delivery whose ACK and RESULT were lost.
      await system.deployment.controlPlane!.context.db.execute("UPDATE commands SET state = 'dead_lettered', result_json = NULL WHERE id = ?", [command.id]);
    }
    await page.getByRole('link', { name: 'Dead letters', exact: true }).click();
    const retriedRow = page.getByTestId('dead-letters').locator(`tr[data-command="${retried.id}"]`);
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
    const row = page.getByTestId('dead-letters').locator(`tr[data-command="${created.id}"]`);
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
      latencyMs: { count: 4, p50Ms: 50, p99Ms: 900 }, checkers: { none_lost: 'pass', at_most_once: 'pass' } };
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
    await shot('research');
  });

  it('says so when the control plane has no OTA image repository (no release routes)', async () => {
    await page.getByRole('link', { name: 'Releases', exact: true }).click();
    await page.getByTestId('ota-absent').waitFor();
  });

  it('logs out, forgetting the token', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    assert.deepEqual(pageProblems.filter((text) => !/status of 401/.test(text)), []);
  });
});
