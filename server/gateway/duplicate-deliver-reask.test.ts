// A burst of duplicate `deliver` entries for a command the device has acknowledged re-asks the
// device at most once per ACK timeout, not once per duplicate (docs/gateway.md, "Redelivery").
// Before, each duplicate sent COMMAND_DELIVERY again; the device answered each from its journal,
// and the control plane's serial event partition for the device worked through every answer, so
// commands stayed queued in the API long after their results had been forwarded. On virtual time.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gatewayCommandStream, groups } from '../bus-contract/streams.js';
import { appendDeliver, connectInMemory, makeCommand, TestAgent, useVirtualGateway, VirtualDriver } from './test-support.js';

const ackTimeoutMs = 5_000;
/** Virtual time any one wait below may take: well below the ACK timeout. */
const stepVirtualMsMax = 1_000;

describe('gateway: duplicate deliver entries re-ask the device at most once per ACK timeout', () => {
  const driver = new VirtualDriver();
  const gw = useVirtualGateway(driver, { heartbeatIntervalMs: 600_000, ackTimeoutMs, backoff: { baseMs: 20, maxMs: 60 } });
  const stream = gatewayCommandStream('gw-a');
  const until = <T>(check: () => Promise<T | undefined> | T | undefined, what: string) => driver.until(check, stepVirtualMsMax, what);
  const pendingCount = async () => (await gw.stores.bus.pending(stream, groups.gateway)).length;

  it('10 duplicates at once: no re-ask within the ACK timeout of the first send, one after it, none for the rest of that burst', async () => {
    const device = await gw.gpki.issueDevice('dev-burst');
    const agent = connectInMemory(gw.core, device, new TestAgent(device, { clock: driver.time }));
    await until(() => (agent.ready ? true : undefined), 'AUTH_ACK');
    agent.behaviour = 'ack-only';
    const command = makeCommand('dev-burst', { nowMs: driver.time.nowMs() });
    await appendDeliver(gw.stores.bus, 'gw-a', command);
    await until(async () => (await gw.events.poll(), gw.events.progress(command.id).some((p) => p.event === 'ack') ? true : undefined), 'the ACK reported');
    const burst = async () => {
      for (let i = 0; i < 10; i += 1) await appendDeliver(gw.stores.bus, 'gw-a', command);
      // Every duplicate is acked on the stream (read and handled): only the delivery's own entry stays pending.
      await until(async () => ((await pendingCount()) === 1 && (await gw.stores.bus.length(stream)) > 0 ? true : undefined), 'the duplicates handled');
      await driver.advance(100);
    };

    await burst();
    assert.deepEqual(agent.deliveries.map((d) => d.attempt), [1], 'asked again within the ACK timeout of the first send');
    await driver.advance(ackTimeoutMs);
    await burst();
    assert.deepEqual(agent.deliveries.map((d) => d.attempt), [1, 2], 'one re-ask for 10 duplicates past the ACK timeout');
    await burst();
    assert.deepEqual(agent.deliveries.map((d) => d.attempt), [1, 2], 'no second re-ask within the ACK timeout of the first');
    await driver.advance(ackTimeoutMs);
    await burst();
    assert.deepEqual(agent.deliveries.map((d) => d.attempt), [1, 2, 3]);

    // The device finishes: the result ends the delivery as before.
    agent.connection.sendCommandResult({ command_id: command.id, device_seq: command.device_seq, status: 'succeeded', output: {}, finished_at: driver.time.nowMs() }, driver.time.nowMs());
    agent.flush();
    await until(async () => ((await pendingCount()) === 0 ? true : undefined), 'the entry acked after the result');
    assert.equal(gw.core.stats().pendingDeliveries, 0);
  });
});
