// Redelivery on ACK timeout, on virtual time: a device that never acknowledges is asked again
// only after the ACK timeout, deliveryAttemptsMax times in all, and then the command is
// dead-lettered; nothing more comes however long the gateway runs on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gatewayCommandStream } from '../bus-contract/streams.js';
import { deadLetterStream } from '../stores/bus/bus-port.js';
import { appendDeliver, connectInMemory, makeCommand, TestAgent, useVirtualGateway, VirtualDriver } from './test-support.js';

const ackTimeoutMs = 150;
const deliveryAttemptsMax = 3;
const backoff = { baseMs: 20, maxMs: 60 };

describe('gateway redelivery on virtual time', () => {
  const driver = new VirtualDriver();
  const gw = useVirtualGateway(driver, { heartbeatIntervalMs: 600_000, ackTimeoutMs, deliveryAttemptsMax, backoff });

  it('redelivers after each ACK timeout with backoff, then dead-letters after the last attempt', async () => {
    const device = await gw.gpki.issueDevice('dev-mute');
    const agent = connectInMemory(gw.core, device, new TestAgent(device, { clock: driver.time }));
    await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');
    agent.behaviour = 'silent';
    const command = makeCommand('dev-mute', { nowMs: driver.time.nowMs() });
    await appendDeliver(gw.stores.bus, 'gw-a', command);
    await driver.until(() => (agent.deliveries.length === 1 ? true : undefined), 1_000, 'the first delivery');
    await driver.advance(ackTimeoutMs - 10);
    assert.equal(agent.deliveries.length, 1, 'asked again before the ACK timeout');
    const deadLetters = () => gw.stores.bus.length(deadLetterStream(gatewayCommandStream('gw-a')));
    await driver.until(async () => ((await deadLetters()) >= 1 ? true : undefined), 10 * deliveryAttemptsMax * (ackTimeoutMs + backoff.maxMs), 'the dead letter');
    await driver.advance(100 * (ackTimeoutMs + backoff.maxMs));
    await gw.events.poll();
    assert.deepEqual(gw.events.progress(command.id), [
      { event: 'deliver', attempt: 1 }, { event: 'deliver', attempt: 2 }, { event: 'deliver', attempt: 3 }, { event: 'dead_letter', attempt: 3 },
    ]);
    assert.deepEqual(agent.deliveries.map((d) => d.attempt), [1, 2, 3]);
    assert.equal(await deadLetters(), 1);
  });
});
