// The router does not wait for a command's `deliver` report to reach the events stream before it
// takes the next entry of its read (issue 17, virtual time). It did: one append round trip per
// command, so on a busy process the 1,000th command of a burst waited about 1,000 event-loop turns
// before it was delivered (`sdc bench roundtrip`, queued -> sent, docs/benchmarks.md 2026-12-06).
// The report still goes through the command's own queue, so the control plane still sees each
// command's deliver before its ack, start and result.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { streamNames } from '../bus-contract/streams.js';
import { appendDeliver, connectInMemory, holdingAppends, makeCommand, settle, TestAgent, useVirtualGateway, VirtualDriver } from './test-support.js';

describe('deliver reports are not awaited between the entries of a read', () => {
  const driver = new VirtualDriver();
  const store = holdingAppends(streamNames.events);
  after(() => store.release());
  const gw = useVirtualGateway(driver, { heartbeatIntervalMs: 600_000 }, store.wrap);

  it('a second device gets its command while the first command\'s deliver report is held; each command\'s reports stay in order', async () => {
    const agents = [];
    for (const id of ['dev-nowait-a', 'dev-nowait-b']) {
      const device = await gw.gpki.issueDevice(id);
      const agent = connectInMemory(gw.core, device, new TestAgent(device, { clock: driver.time }));
      await driver.until(() => (agent.ready ? true : undefined), 1_000, `AUTH_ACK of ${id}`);
      agents.push(agent);
    }
    const [a, b] = agents as [(typeof agents)[number], (typeof agents)[number]];
    store.hold();
    const commands = [makeCommand('dev-nowait-a', { nowMs: driver.time.nowMs() }), makeCommand('dev-nowait-b', { nowMs: driver.time.nowMs() })];
    for (const command of commands) await appendDeliver(gw.stores.bus, 'gw-a', command);
    // Both delivered while no report can be appended (the first command's deliver report is held).
    await driver.until(() => (a.deliveries.length >= 1 && b.deliveries.length >= 1 ? true : undefined), 1_000, 'both deliveries while the events stream is held');
    assert.ok(store.waiting() >= 1, 'a report is held');

    store.release();
    await driver.advance(1_000);
    await settle();
    await gw.events.poll();
    for (const command of commands) {
      assert.deepEqual(gw.events.progress(command.id), [{ event: 'deliver', attempt: 1 }, { event: 'ack', attempt: 1 }, { event: 'start', attempt: 1 }]);
    }
    assert.deepEqual(gw.events.entries.flatMap((e) => (e.kind === 'command_result' ? [e.data.command_id] : [])).sort(), commands.map((c) => c.id).sort());
    assert.equal(gw.core.stats().pendingDeliveries, 0, 'each delivery finished once its result was forwarded');
  });
});
