// Redelivery on ACK timeout, on virtual time: a device that never acknowledges is asked again
// only after the ACK timeout, deliveryAttemptsMax times in all, and then the command is
// dead-lettered; nothing more comes however long the gateway runs on, also when the control
// plane appends the command again before it has read the dead letter. An operator's retry does
// start the attempts again.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { gatewayCommandStream, groups } from '../bus-contract/streams.js';
import { deadFields, deadLetterStream } from '../stores/bus/bus-port.js';
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

  it('a late re-append of a dead-lettered command is dropped; an operator retry delivers it again, and a late copy of that retry is dropped too', async () => {
    const device = await gw.gpki.issueDevice('dev-mute-2');
    const agent = connectInMemory(gw.core, device, new TestAgent(device, { clock: driver.time }));
    await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');
    agent.behaviour = 'silent';
    const command = makeCommand('dev-mute-2', { nowMs: driver.time.nowMs() });
    const stream = gatewayCommandStream('gw-a');
    const deadLetters = () => gw.stores.bus.length(deadLetterStream(stream));
    const before = await deadLetters();
    const attemptBoundMs = 10 * deliveryAttemptsMax * (ackTimeoutMs + backoff.maxMs);
    await appendDeliver(gw.stores.bus, 'gw-a', command);
    await driver.until(async () => ((await deadLetters()) > before ? true : undefined), attemptBoundMs, 'the dead letter');
    // The control plane's redelivery sweep read the command as unfinished just before the dead letter reached it.
    await appendDeliver(gw.stores.bus, 'gw-a', command);
    await driver.advance(10 * (ackTimeoutMs + backoff.maxMs));
    assert.deepEqual(agent.deliveries.map((d) => d.attempt), [1, 2, 3], 'no second round of attempts for a late copy');

    // The operator retries the dead letter: the same signed command, with its retry number.
    await gw.stores.bus.append(stream, encodeBusEntry('deliver', { command, retry: 1 }));
    await driver.until(async () => ((await deadLetters()) > before + 1 ? true : undefined), attemptBoundMs, 'the retry dead-lettered again');
    assert.deepEqual(agent.deliveries.map((d) => d.attempt), [1, 2, 3, 1, 2, 3]);
    assert.ok(agent.deliveries.every((d) => d.commandId === command.id));
    // A late copy of that retry (or of the first dispatch) is dropped; a second retry is delivered.
    await gw.stores.bus.append(stream, encodeBusEntry('deliver', { command, retry: 1 }));
    await appendDeliver(gw.stores.bus, 'gw-a', command);
    await driver.advance(10 * (ackTimeoutMs + backoff.maxMs));
    assert.equal(agent.deliveries.length, 6);
    await gw.stores.bus.append(stream, encodeBusEntry('deliver', { command, retry: 2 }));
    await driver.until(() => (agent.deliveries.length === 7 ? true : undefined), attemptBoundMs, 'the second retry delivered');
    // The late copies were acked, not left pending: only the delivery in flight holds an entry.
    assert.equal((await gw.stores.bus.pending(stream, groups.gateway)).length, 1);
  });

  it('a deliver entry whose retry number is not a whole number from 1 is dead-lettered PROTO_SCHEMA_INVALID, never delivered', async () => {
    const device = await gw.gpki.issueDevice('dev-bad-retry');
    const agent = connectInMemory(gw.core, device, new TestAgent(device, { clock: driver.time }));
    await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');
    const command = makeCommand('dev-bad-retry', { nowMs: driver.time.nowMs() });
    const stream = gatewayCommandStream('gw-a');
    const valid = encodeBusEntry('deliver', { command, retry: 1 });
    const bad = [0, -1, 1.5, '2'];
    for (const retry of bad) {
      const data = { ...(JSON.parse(valid.data!) as Record<string, unknown>), retry };
      await gw.stores.bus.append(stream, { ...valid, data: JSON.stringify(data) });
    }
    const refused = async () => (await gw.stores.bus.range(deadLetterStream(stream), { count: 1_000 }))
      .filter((entry) => entry.fields.data?.includes('"dev-bad-retry"'));
    const dead = await driver.until(async () => {
      const found = await refused();
      return found.length === bad.length ? found : undefined;
    }, 1_000, 'the bad entries dead-lettered');
    assert.deepEqual(dead.map((entry) => entry.fields[deadFields.reason]), bad.map(() => 'PROTO_SCHEMA_INVALID'));
    assert.deepEqual(agent.deliveries, []);
  });
});
