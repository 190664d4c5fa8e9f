// A device's ACK that waits in its session's queue is still an ACK (virtual time). The session's
// frames are forwarded one after another, each after the store calls of the ones before it; when
// the stores answer slowly (here: a telemetry append held longer than the whole retry budget) a
// COMMAND_ACK the device sent at once used to wait its turn while the router's ACK timeouts ran
// out, and the gateway dead-lettered a command the device had taken and run
// (test/e2e/store-wipe.test.ts on a busy machine, docs/chaos.md 2026-12-05 evening).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { gatewayCommandStream, streamNames } from '../bus-contract/streams.js';
import { deadLetterStream } from '../stores/bus/bus-port.js';
import { appendDeliver, connectInMemory, holdingAppends, makeCommand, settle, TestAgent, useVirtualGateway, VirtualDriver } from './test-support.js';

const ackTimeoutMs = 150;
const deliveryAttemptsMax = 3;
const backoff = { baseMs: 20, maxMs: 60 };
/** Longer than every attempt's ACK timeout and backoff together. */
const retryBudgetMs = deliveryAttemptsMax * (ackTimeoutMs + backoff.maxMs);

describe('a COMMAND_ACK queued behind a slow store call of its session', () => {
  const driver = new VirtualDriver();
  const store = holdingAppends(streamNames.telemetry);
  // Before the gateway's stop (registered next): a failed assertion must not leave the stop waiting on a held append.
  after(() => store.release());
  const gw = useVirtualGateway(driver, { heartbeatIntervalMs: 600_000, ackTimeoutMs, deliveryAttemptsMax, backoff }, store.wrap);

  it('ends the ACK wait when it arrives: one delivery, no dead letter, the ACK and result forwarded once the store answers', async () => {
    const device = await gw.gpki.issueDevice('dev-queued-ack');
    const agent = connectInMemory(gw.core, device, new TestAgent(device, { clock: driver.time }));
    await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');

    // A sample whose append the store holds: the session's later frames wait behind it.
    store.hold();
    agent.connection.sendTelemetry({ sampled_at: driver.time.nowMs(), metrics: { cpu_pct: 1, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 4, net_tx_bytes_per_sec: 5 } }, driver.time.nowMs());
    agent.flush();
    await driver.until(() => (store.waiting() === 1 ? true : undefined), 1_000, 'the held telemetry append');

    const command = makeCommand('dev-queued-ack', { nowMs: driver.time.nowMs() });
    await appendDeliver(gw.stores.bus, 'gw-a', command);
    // The agent answers the first delivery at once (ACK received, ACK executing, RESULT).
    await driver.until(() => (agent.deliveries.length >= 1 ? true : undefined), 1_000, 'the first delivery');
    await driver.advance(4 * retryBudgetMs);

    const deadLetters = await gw.stores.bus.length(deadLetterStream(gatewayCommandStream('gw-a')));
    assert.equal(deadLetters, 0, 'the gateway dead-lettered a command whose ACK it held');
    assert.deepEqual(agent.deliveries.map((d) => d.attempt), [1], 'asked again although its ACK had arrived');

    store.release();
    await driver.advance(10 * ackTimeoutMs);
    await settle();
    await gw.events.poll();
    assert.deepEqual(gw.events.progress(command.id), [{ event: 'deliver', attempt: 1 }, { event: 'ack', attempt: 1 }, { event: 'start', attempt: 1 }]);
    assert.deepEqual(gw.events.entries.flatMap((e) => (e.kind === 'command_result' ? [e.data.command_id] : [])), [command.id]);
    assert.equal(gw.core.stats().pendingDeliveries, 0, 'the delivery is finished once the result is forwarded');
  });
});
