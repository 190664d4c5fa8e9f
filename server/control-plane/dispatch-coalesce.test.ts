// Concurrent creates for one online device append each command to its gateway's stream once.
// Each create dispatches the device's waiting commands (queued, no gateway yet, in device_seq
// order); a create running beside others saw their commands waiting too (their gateway is recorded
// only after their own append), so N creates at once appended up to N x N `deliver` entries (144 for 12 here).
// The gateway re-asked the device for every duplicate of an acknowledged delivery, the device
// re-sent its ACK or result for each, and the control plane's event consumer, serial per device,
// worked through them all: 24 commands at once took minutes to end on a busy machine
// (test/e2e/audit-atomicity.test.ts with fewer login loops beside it timed out at 120 s).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBusEntry } from '../bus-contract/entries.js';
import { gatewayCommandStream, kvKeys } from '../bus-contract/streams.js';
import { makeHarness, mysqlTarget, sqlJsTarget, type Harness, type SqlTarget } from './test-support.js';

function suite(target: SqlTarget): void {
  describe(`dispatch of concurrent creates on ${target.name}`, () => {
    let h: Harness;
    const actor = { name: 'op', role: 'operator' as const };
    const stream = gatewayCommandStream('gw1');
    const deliveredIds = async (): Promise<string[]> => {
      const group = `probe-${Math.random().toString(16).slice(2)}`;
      await h.bus.ensureGroup(stream, group, '0');
      const entries = await h.bus.readGroup(stream, group, 'probe', { count: 10_000 });
      return entries.map((entry) => (decodeBusEntry(entry.fields).data as { command: { id: string } }).command.id);
    };

    before(async () => {
      h = await makeHarness(target);
    });
    after(async () => {
      await h.close();
      await target.cleanup();
    });

    it('appends each of 12 commands created at once for one device once, in device_seq order, and answers each create with its gateway', async () => {
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", ['dev-burst', h.clock.nowMs()]);
      await h.cp.context.kv.set(kvKeys.presence('dev-burst'), JSON.stringify({ gateway_id: 'gw1' }));
      const created = await Promise.all(Array.from({ length: 12 }, () => h.cp.commands.create({ actor, deviceId: 'dev-burst', opcode: 'EXEC_PING_KERNEL', args: {} })));
      const delivered = await deliveredIds();
      const bySeq = created.map((c) => c.command).sort((a, b) => (a.device_seq ?? 0) - (b.device_seq ?? 0)).map((c) => c.id);
      assert.deepEqual(delivered, bySeq, `${delivered.length} deliver entries for ${created.length} commands`);
      for (const c of created) assert.equal(c.command.gateway_id, 'gw1', `${c.command.id} answered without its gateway`);
    });
  });
}

suite(sqlJsTarget);
const mysqlUrl = process.env.MYSQL_URL;
if (mysqlUrl !== undefined) suite(mysqlTarget(mysqlUrl));
