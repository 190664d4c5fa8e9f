import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kvKeys, streamNames } from '../../server/bus-contract/streams.js';
import { makeHarness, sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';
import type { CliIo } from '../command.js';
import { main } from '../main.js';

/**
 * sdc dlq list|retry|discard against a control plane serving HTTPS in this process (sql.js): the
 * commands' output, exit codes (1 when a retry id is refused, 2 for a missing --reason), and the
 * effect seen through the API. The routes' behaviour on both store pairs is dead-letters.test.ts.
 */
describe('sdc dlq', () => {
  let h: Harness;
  let home: string;
  let commandId: string;
  const password = 'correct horse battery staple';

  const sdc = async (argv: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> => {
    let stdout = '';
    let stderr = '';
    const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => stdin, env: { XDG_CONFIG_HOME: home } };
    return { code: await main(argv, io), stdout, stderr };
  };

  before(async () => {
    h = await makeHarness(sqlJsTarget);
    home = await mkdtemp(join(tmpdir(), 'sdc-dlq-cli-'));
    const caFile = join(home, 'root-ca.pem');
    await writeFile(caFile, h.materials.rootCaPem);
    const { url } = await h.cp.listen({ host: '127.0.0.1', port: 0, tls: true });
    await h.cp.auth.users.add({ name: 'oper', role: 'operator', password, nowMs: h.clock.nowMs() });
    const login = await sdc(['login', '--server', url.replace('127.0.0.1', 'localhost'), '--name', 'oper', '--ca', caFile, '--password-stdin'], `${password}\n`);
    assert.equal(login.code, 0, login.stderr);
    await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES ('cli-dlq-1', 'enrolled', ?)", [h.clock.nowMs()]);
    await h.cp.context.kv.set(kvKeys.presence('cli-dlq-1'), JSON.stringify({ gateway_id: 'gw1' }));
    const { command } = await h.cp.commands.create({ actor: { name: 'oper', role: 'operator' }, deviceId: 'cli-dlq-1', opcode: 'EXEC_PING_KERNEL', args: {} });
    commandId = command.id;
    await h.cp.commands.transition(commandId, 'deliver', h.clock.nowMs());
    await h.cp.commands.transition(commandId, 'dead_letter', h.clock.nowMs(), { detail: { gateway_id: 'gw1', detail: 'no ACK after 5 attempts' } });
  });
  after(async () => {
    await h.close();
    await rm(home, { recursive: true, force: true });
  });

  it('lists, retries (exit 1 when an id is refused) and discards with a reason', async () => {
    const listed = await sdc(['dlq', 'list', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const items = (JSON.parse(listed.stdout) as { items: Array<{ command_id: string; reason: string }> }).items;
    assert.deepEqual(items.map((i) => [i.command_id, i.reason]), [[commandId, 'no ACK after 5 attempts']]);
    const text = await sdc(['dlq', 'list', '--device', 'cli-dlq-1']);
    assert.match(text.stdout, new RegExp(`^command\\tdevice.*\\n${commandId}\\tcli-dlq-1\\tEXEC_PING_KERNEL\\t1\\t0\\t`));
    assert.equal((await sdc(['dlq', 'list', '--device', 'cli-other'])).stdout, 'command\tdevice\topcode\tseq\tretries\tdead_lettered_at\treason\n');

    const retried = await sdc(['dlq', 'retry', commandId, 'c_nosuch']);
    assert.equal(retried.code, 1, 'one id refused');
    assert.match(retried.stdout, new RegExp(`^${commandId}\\tretried\\tgateway gw1\\tretry 1\\n`));
    assert.match(retried.stdout, /c_nosuch\trefused\tDLQ_ENTRY_NOT_FOUND: /);
    assert.equal((await sdc(['dlq', 'retry', commandId])).code, 0);

    const noReason = await sdc(['dlq', 'discard', commandId]);
    assert.equal(noReason.code, 2);
    assert.match(noReason.stderr, /CLI_USAGE: missing required option --reason/);
    const discarded = await sdc(['dlq', 'discard', commandId, '--reason', 'device replaced']);
    assert.equal(discarded.code, 0, discarded.stderr);
    assert.equal(discarded.stdout, `${commandId}\tdiscarded\t"device replaced"\n`);
    assert.deepEqual(JSON.parse((await sdc(['dlq', 'list', '--json'])).stdout), { items: [] });
    const again = await sdc(['dlq', 'discard', commandId, '--reason', 'again']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /DLQ_ENTRY_DISCARDED/);
  });

  it('dead bus entries: streams with counts, one stream\'s entries, discard with a reason and replay', async () => {
    await h.bus.append(streamNames.events, { kind: 'bogus', data: '{}' });
    await h.bus.append(streamNames.events, { kind: 'also-bogus', data: '{}' });
    await h.cp.eventsConsumer.drain();
    const counted = await sdc(['dlq', 'streams']);
    assert.equal(counted.code, 0, counted.stderr);
    assert.match(counted.stdout, /^sdc:events\t2\n/m);
    const listed = await sdc(['dlq', 'entries', '--stream', 'sdc:events']);
    assert.equal(listed.code, 0, listed.stderr);
    const rows = listed.stdout.trimEnd().split('\n');
    assert.equal(rows[0], 'entry\tkind\tdevice\tdeliveries\treason');
    assert.deepEqual(rows.slice(1).map((row) => row.split('\t').slice(1, 4)), [['bogus', '', '1'], ['also-bogus', '', '1']]);
    const [first, second] = rows.slice(1).map((row) => row.split('\t')[0]!);
    assert.equal((await sdc(['dlq', 'discard-entry', first!, '--stream', 'sdc:events'])).code, 2, 'a reason is required');
    const discarded = await sdc(['dlq', 'discard-entry', first!, '--stream', 'sdc:events', '--reason', 'from a test gateway']);
    assert.equal(discarded.code, 0, discarded.stderr);
    assert.equal(discarded.stdout, `${first!}\tdiscarded\tsdc:events\t"from a test gateway"\n`);
    const replayed = await sdc(['dlq', 'replay-entry', second!, '--stream', 'sdc:events', '--json']);
    assert.equal(replayed.code, 0, replayed.stderr);
    assert.equal((JSON.parse(replayed.stdout) as { id: string }).id, second);
    await h.cp.eventsConsumer.drain();
    // Still malformed: dead-lettered again under a new id; the discarded one is gone.
    const after = JSON.parse((await sdc(['dlq', 'entries', '--stream', 'sdc:events', '--json'])).stdout) as { items: Array<{ id: string; kind: string }> };
    assert.deepEqual(after.items.map((e) => e.kind), ['also-bogus']);
    assert.notEqual(after.items[0]!.id, second);
    const missing = await sdc(['dlq', 'discard-entry', first!, '--stream', 'sdc:events', '--reason', 'again']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /DLQ_ENTRY_NOT_FOUND/);
    assert.equal((await sdc(['dlq', 'entries', '--stream', 'redis:anything'])).code, 1);
  });
});
