import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { gatewayCommandStream, groups, streamNames } from '../bus-contract/streams.js';
import { SdcError } from '../../core/errors/index.js';
import type { StreamBus } from '../stores/bus/bus-port.js';
import { appendDeliver, connectInMemory, makeCommand, TestAgent, useVirtualGateway, VirtualDriver } from './test-support.js';

/** Passes everything through, except appends (one or a batch) to the events stream while `down()` holds (a bus outage as the gateway reports). */
function eventAppendsFailWhile(bus: StreamBus, down: () => boolean, onFailure: () => void): StreamBus {
  const failIfDown = (stream: string) => {
    if (down() && stream === streamNames.events) {
      onFailure();
      throw new SdcError('STORE_UNAVAILABLE', 'the stream bus is unavailable (test)');
    }
  };
  return new Proxy(bus, {
    get(target, name, receiver) {
      if (name === 'append') {
        return async (stream: string, fields: Record<string, string>, opts?: { maxLen?: number }) => {
          failIfDown(stream);
          return target.append(stream, fields, opts);
        };
      }
      if (name === 'appendBatch') {
        return async (stream: string, entries: ReadonlyArray<Record<string, string>>, opts?: { maxLen?: number }) => {
          failIfDown(stream);
          return target.appendBatch(stream, entries, opts);
        };
      }
      const value: unknown = Reflect.get(target, name, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

// On virtual time: every wait is bounded in virtual milliseconds, and "no further attempt" is
// proven by advancing virtual time past every retry the backoff could schedule.
describe('gateway: no ACK/RESULT of an executed command is stranded', () => {
  const reportAttemptsMax = 4;
  const backoff = { baseMs: 20, maxMs: 80 };
  /** Virtual time any one wait below may take: ample for retries of 20-80 ms, and below the 30 s ACK timeout, so no ACK-timeout redelivery mixes in. */
  const stepVirtualMsMax = 10_000;
  const driver = new VirtualDriver();
  let busDown = false;
  let failedReports = 0;
  const ackTimeoutMs = 30_000;
  const gw = useVirtualGateway(driver, { heartbeatIntervalMs: 60_000, ackTimeoutMs, backoff, reportAttemptsMax },
    (bus) => eventAppendsFailWhile(bus, () => busDown, () => { failedReports += 1; }));
  const stream = gatewayCommandStream('gw-a');
  const pendingIds = async () => (await gw.stores.bus.pending(stream, groups.gateway)).map((p) => p.id);
  const results = (commandId: string) => gw.events.entries.filter((e) => e.kind === 'command_result' && e.data.command_id === commandId).length;


  afterEach(() => {
    busDown = false;
  });


  async function connect(deviceId: string): Promise<TestAgent> {
    const device = await gw.gpki.issueDevice(deviceId);
    const agent = connectInMemory(gw.core, device, new TestAgent(device, { clock: driver.time }));
    await driver.until(() => (agent.ready ? true : undefined), stepVirtualMsMax, 'AUTH_ACK');
    return agent;
  }

  const until = <T>(check: () => Promise<T | undefined> | T | undefined, what: string) => driver.until(check, stepVirtualMsMax, what);
  const eventsUntil = (predicate: () => boolean, what: string) => until(async () => (await gw.events.poll(), predicate() ? true : undefined), what);
  const newCommand = (deviceId: string) => makeCommand(deviceId, { nowMs: driver.time.nowMs() });

  it('retries failed reports in order, and acks the stream entry only after the RESULT was reported', async () => {
    const agent = await connect('dev-retry');
    failedReports = 0;
    busDown = true;
    const command = newCommand('dev-retry');
    const entryId = await appendDeliver(gw.stores.bus, 'gw-a', command);
    await until(() => (failedReports >= 2 ? true : undefined), 'two failed reports');
    assert.deepEqual(await pendingIds(), [entryId], 'not reported yet: the entry stays pending');
    const busBackMs = driver.time.nowMs();
    busDown = false;
    await eventsUntil(() => results(command.id) === 1, 'the result reported');
    await until(async () => ((await pendingIds()).length === 0 ? true : undefined), 'entry acked');
    assert.deepEqual(agent.deliveries, [{ commandId: command.id, attempt: 1 }], 'recovered by the report retry, not by asking the device again');
    // The deliver and ACK reports were retried too, in the order the gateway received them, before the result.
    const order = gw.events.entries.flatMap((e) => (e.kind === 'command_progress' && e.data.command_id === command.id ? [e.data.event]
      : e.kind === 'command_result' && e.data.command_id === command.id ? ['result'] : []));
    assert.deepEqual(order, ['deliver', 'ack', 'start', 'result']);
    // Each report carries the time of its event, not of the retry that got it out: the delivery
    // happened during the outage, before the ACK (issue 18.5: a retried `deliver` stamped after the
    // outage put the command's history back in time at the control plane).
    const times = gw.events.entries.flatMap((e) => ((e.kind === 'command_progress' || e.kind === 'command_result') && e.data.command_id === command.id ? [e.data.at_ms] : []));
    assert.ok(times[0]! < busBackMs, `deliver stamped ${times[0]! - busBackMs} ms after the bus came back`);
    assert.deepEqual([...times].sort((a, b) => a - b), times, `report times go back: ${times.join(', ')}`);
  });

  it('gives up after reportAttemptsMax attempts and keeps the delivery; a duplicate deliver re-asks the device, whose answer is reported', async () => {
    const agent = await connect('dev-give-up');
    failedReports = 0;
    busDown = true;
    const command = newCommand('dev-give-up');
    const entryId = await appendDeliver(gw.stores.bus, 'gw-a', command);
    await until(() => (failedReports >= reportAttemptsMax ? true : undefined), 'every attempt failed');
    // Far longer on virtual time than the backoff between attempts (at most maxMs): no further attempt comes.
    await driver.advance(100 * backoff.maxMs);
    assert.equal(failedReports, reportAttemptsMax, 'bounded');
    busDown = false;
    await gw.events.poll();
    assert.equal(results(command.id), 0);
    assert.deepEqual(await pendingIds(), [entryId]);
    assert.equal(gw.core.stats().pendingDeliveries, 1, 'the delivery is still held (acked)');

    // What the control plane's redelivery sweep does: the same command again, at least its
    // redispatch interval (30 s) after the last dispatch, so past the ACK timeout of the last ask.
    await driver.advance(ackTimeoutMs);
    const duplicateId = await appendDeliver(gw.stores.bus, 'gw-a', command);
    await eventsUntil(() => results(command.id) === 1, 'the result reported');
    assert.deepEqual(agent.deliveries, [{ commandId: command.id, attempt: 1 }, { commandId: command.id, attempt: 2 }]);
    await until(async () => ((await pendingIds()).length === 0 ? true : undefined), 'both entries acked');
    assert.notEqual(duplicateId, entryId);
    assert.equal(gw.core.stats().pendingDeliveries, 0);
  });

  it('re-sends COMMAND_DELIVERY on a duplicate deliver for an acked delivery (ACK only, result outstanding)', async () => {
    const agent = await connect('dev-acked');
    agent.behaviour = 'ack-only';
    const command = newCommand('dev-acked');
    const entryId = await appendDeliver(gw.stores.bus, 'gw-a', command);
    await eventsUntil(() => gw.events.progress(command.id).some((p) => p.event === 'ack'), 'the ACK reported');
    // The sweep's duplicate comes at least its interval after the last dispatch: past the ACK timeout.
    await driver.advance(ackTimeoutMs);
    await appendDeliver(gw.stores.bus, 'gw-a', command);
    await until(() => (agent.deliveries.length === 2 ? true : undefined), 'the second COMMAND_DELIVERY');
    assert.deepEqual(agent.deliveries.map((d) => d.attempt), [1, 2]);
    await until(async () => (String(await pendingIds()) === entryId ? true : undefined), 'only the original entry pending');
    await eventsUntil(() => gw.events.progress(command.id).filter((p) => p.event === 'ack').length === 2, 'the second ACK reported');
    assert.deepEqual(gw.events.progress(command.id).map((p) => p.event), ['deliver', 'ack', 'ack'], 'no second deliver progress: the command is past sent');
    // The device finishes: its result ends the delivery and acks the original entry.
    agent.connection.sendCommandResult({ command_id: command.id, device_seq: command.device_seq, status: 'succeeded', output: {}, finished_at: driver.time.nowMs() }, driver.time.nowMs());
    agent.flush();
    await eventsUntil(() => results(command.id) === 1, 'the result reported');
    await until(async () => ((await pendingIds()).length === 0 ? true : undefined), 'entry acked');
  });

  it('swallows a duplicate deliver for a delivery still waiting for its ACK (the ACK-timeout retries own it)', async () => {
    const agent = await connect('dev-unacked');
    agent.behaviour = 'silent';
    const command = newCommand('dev-unacked');
    const entryId = await appendDeliver(gw.stores.bus, 'gw-a', command);
    await until(() => (agent.deliveries.length === 1 ? true : undefined), 'first delivery');
    const duplicateId = await appendDeliver(gw.stores.bus, 'gw-a', command);
    await until(async () => (String(await pendingIds()) === entryId ? true : undefined), 'duplicate acked');
    assert.notEqual(duplicateId, entryId);
    assert.equal(agent.deliveries.length, 1);
  });
});
