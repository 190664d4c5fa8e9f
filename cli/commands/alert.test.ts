import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeBusEntry } from '../../server/bus-contract/entries.js';
import { streamNames } from '../../server/bus-contract/streams.js';
import { makeHarness, sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';
import type { CliIo } from '../command.js';
import { main } from '../main.js';

/**
 * sdc alert list|ack against a control plane serving HTTPS in this process (sql.js). Two device
 * ALERT frames raise two alerts; one is acknowledged with a note through the CLI, which the
 * listing, the API's record and the audit log then show. The rules are alert-monitor.test.ts's.
 */
describe('sdc alert', () => {
  let h: Harness;
  let home: string;
  const password = 'correct horse battery staple';

  const sdc = async (argv: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> => {
    let stdout = '';
    let stderr = '';
    const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => stdin, env: { XDG_CONFIG_HOME: home } };
    return { code: await main(argv, io), stdout, stderr };
  };

  const raise = async (deviceId: string, kind: string, message: string) => {
    await h.bus.append(streamNames.events, encodeBusEntry('alert', { device_id: deviceId, gateway_id: 'gw1', at_ms: h.clock.nowMs(), severity: 'warning', kind, message }));
    await h.cp.eventsConsumer.drain();
    h.clock.advance(1_000);
  };

  before(async () => {
    h = await makeHarness(sqlJsTarget);
    home = await mkdtemp(join(tmpdir(), 'sdc-alert-cli-'));
    const caFile = join(home, 'root-ca.pem');
    await writeFile(caFile, h.materials.rootCaPem);
    const { url } = await h.cp.listen({ host: '127.0.0.1', port: 0, tls: true });
    await h.cp.auth.users.add({ name: 'oncall', role: 'operator', password, nowMs: h.clock.nowMs() });
    assert.equal((await sdc(['login', '--server', url.replace('127.0.0.1', 'localhost'), '--name', 'oncall', '--ca', caFile, '--password-stdin'], `${password}\n`)).code, 0);
    for (const id of ['cli-al-1', 'cli-al-2']) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [id, h.clock.nowMs()]);
    await raise('cli-al-1', 'tamper', 'case opened');
    await raise('cli-al-2', 'disk_full', 'disk\tat 99%\nsoon full');
  });
  after(async () => {
    await h.close();
    await rm(home, { recursive: true, force: true });
  });

  it('lists alerts newest first, acknowledges one with a note, and filters by state', async () => {
    const listed = await sdc(['alert', 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    const lines = listed.stdout.trimEnd().split('\n');
    assert.equal(lines[0], 'alert\tstate\tseverity\tkind\tdevice\traised_at\tcleared\tmessage');
    assert.deepEqual(lines.slice(1).map((line) => line.split('\t').slice(1, 5)), [['open', 'warning', 'disk_full', 'cli-al-2'], ['open', 'critical', 'tamper', 'cli-al-1']]);
    assert.equal(lines[1]!.split('\t').at(-1), '"disk\\tat 99%\\nsoon full"', 'a message stays on its line, in its column');

    const { items } = JSON.parse((await sdc(['alert', 'list', '--json'])).stdout) as { items: Array<{ id: string; kind: string }> };
    const tamper = items.find((a) => a.kind === 'tamper')!;
    const acked = await sdc(['alert', 'ack', tamper.id, '--note', 'opened by the technician, ticket 42']);
    assert.equal(acked.code, 0, acked.stderr);
    assert.equal(acked.stdout, `${tamper.id}\tacked\tby oncall\t"opened by the technician, ticket 42"\n`);
    const record = await h.cp.alerts.get(tamper.id);
    assert.deepEqual([record.state, record.acknowledged_by, record.ack_note], ['acknowledged', 'oncall', 'opened by the technician, ticket 42']);
    const audit = (await h.cp.auditStore.scan(1, 10_000)).filter((e) => e.kind === 'alert.acknowledged' && e.payload['alert_id'] === tamper.id);
    assert.equal(audit.length, 1);
    assert.equal(audit[0]!.payload['note'], 'opened by the technician, ticket 42');

    const open = JSON.parse((await sdc(['alert', 'list', '--state', 'open', '--json'])).stdout) as { items: Array<{ kind: string }> };
    assert.deepEqual(open.items.map((a) => a.kind), ['disk_full']);
    const ackedOnes = JSON.parse((await sdc(['alert', 'list', '--state', 'acked', '--json'])).stdout) as { items: Array<{ id: string }> };
    assert.deepEqual(ackedOnes.items.map((a) => a.id), [tamper.id]);
    const byDevice = (await sdc(['alert', 'list', '--device', 'cli-al-1'])).stdout.trimEnd().split('\n');
    assert.equal(byDevice.length, 2);
    assert.match(byDevice[1]!, new RegExp(`^${tamper.id}\tacked\tcritical\ttamper\tcli-al-1\t`));
  });

  it('refuses: a second acknowledgement (API_ALERT_ALREADY_ACKED), an unknown alert, a bad state, a missing id', async () => {
    const { items } = JSON.parse((await sdc(['alert', 'list', '--state', 'acked', '--json'])).stdout) as { items: Array<{ id: string }> };
    const again = await sdc(['alert', 'ack', items[0]!.id, '--note', 'me too']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /API_ALERT_ALREADY_ACKED/);
    assert.equal((await h.cp.alerts.get(items[0]!.id)).ack_note, 'opened by the technician, ticket 42', 'the first acknowledgement is kept');
    const unknown = await sdc(['alert', 'ack', 'a_00000000000000000000000000000000']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /API_ALERT_NOT_FOUND|API_VALIDATION/);
    assert.equal((await sdc(['alert', 'list', '--state', 'closed'])).code, 2);
    assert.equal((await sdc(['alert', 'ack'])).code, 2);
    assert.equal((await sdc(['alert', 'ack', 'x', '--note', 'n'.repeat(1025)])).code, 2);
  });

  it('prints what a device and the server sent with control, bidi and zero-width characters escaped; --json keeps it raw', async () => {
    // A device's alert text that, printed as it is, would erase its line (CR, ESC[2K), reverse what follows (U+202E) and hide a character (U+200B).
    const hostile = 'disk ok\r\u001b[2Kall clear \u202eevil\u200b';
    await raise('cli-al-1', 'disk_full', hostile);
    const listed = await sdc(['alert', 'list', '--device', 'cli-al-1', '--state', 'open']);
    assert.equal(listed.code, 0, listed.stderr);
    const row = listed.stdout.trimEnd().split('\n')[1]!;
    assert.equal(row.split('\t').at(-1), '"disk ok\\r\\u001b[2Kall clear \\u202eevil\\u200b"');
    assert.doesNotMatch(listed.stdout, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/u);
    const { items } = JSON.parse((await sdc(['alert', 'list', '--device', 'cli-al-1', '--state', 'open', '--json'])).stdout) as { items: Array<{ message: string }> };
    assert.equal(items[0]!.message, hostile, '--json is the server\'s value as it is');
    // A refusal's message is printed the same way (cli/main.ts), whoever's words it quotes (here the value given, echoed back).
    const refused = await sdc(['user', 'set-role', 'someone', '--role', 'a_\u202e\u001b[2K']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /\\u202e\\u001b\[2K/);
    assert.doesNotMatch(refused.stderr, /[\u001b\u202e]/u);
  });
});
