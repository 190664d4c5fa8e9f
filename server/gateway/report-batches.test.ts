import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeBusEntry } from '../bus-contract/entries.js';
import { gatewayCommandStream, groups, streamNames } from '../bus-contract/streams.js';
import type { StreamBus } from '../stores/bus/bus-port.js';
import { appendDeliver, connectInMemory, makeCommand, TestAgent, useVirtualGateway, VirtualDriver } from './test-support.js';

/** One call the gateway made to write to the events stream or to ack its command stream, in call order. */
type BusCall = { readonly call: 'append' | 'appendBatch'; readonly events: readonly string[] } | { readonly call: 'ack' };

/**
 * Records the gateway's events-stream writes and command-stream acks, and holds the events
 * writes while `held()` is true (the store is slow to answer), releasing them when it turns false.
 */
function recordingBus(bus: StreamBus, calls: BusCall[], held: () => boolean, waiters: Array<() => void>): StreamBus {
  const label = (fields: Record<string, string>) => {
    const entry = decodeBusEntry(fields);
    return entry.kind === 'command_progress' ? entry.data.event : entry.kind;
  };
  const waitWhileHeld = () => (held() ? new Promise<void>((resolve) => { waiters.push(resolve); }) : Promise.resolve());
  return new Proxy(bus, {
    get(target, name, receiver) {
      if (name === 'append') {
        return async (stream: string, fields: Record<string, string>, opts?: { maxLen?: number }) => {
          if (stream !== streamNames.events) return target.append(stream, fields, opts);
          calls.push({ call: 'append', events: [label(fields)] });
          await waitWhileHeld();
          return target.append(stream, fields, opts);
        };
      }
      if (name === 'appendBatch') {
        return async (stream: string, entries: ReadonlyArray<Record<string, string>>, opts?: { maxLen?: number }) => {
          if (stream !== streamNames.events) return target.appendBatch(stream, entries, opts);
          calls.push({ call: 'appendBatch', events: entries.map(label) });
          await waitWhileHeld();
          return target.appendBatch(stream, entries, opts);
        };
      }
      if (name === 'ack') {
        return async (stream: string, group: string, ids: string[]) => {
          if (stream === gatewayCommandStream('gw-a')) calls.push({ call: 'ack' });
          return target.ack(stream, group, ids);
        };
      }
      const value: unknown = Reflect.get(target, name, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

// On virtual time; the store's slowness is a gate the test opens, so the order of events is fixed.
describe('gateway: a command\'s reports that wait behind one in flight go out in one batch', () => {
  const stepVirtualMsMax = 10_000;
  const driver = new VirtualDriver();
  const calls: BusCall[] = [];
  const waiters: Array<() => void> = [];
  let held = false;
  const gw = useVirtualGateway(driver, { heartbeatIntervalMs: 60_000, ackTimeoutMs: 30_000 }, (bus) => recordingBus(bus, calls, () => held, waiters));

  const until = <T>(check: () => Promise<T | undefined> | T | undefined, what: string) => driver.until(check, stepVirtualMsMax, what);

  it('deliver alone; ACK, start and RESULT, which arrived meanwhile, in one appendBatch in order; the stream entry acked after it', async () => {
    const device = await gw.gpki.issueDevice('dev-batch');
    const agent = connectInMemory(gw.core, device, new TestAgent(device, { clock: driver.time }));
    await until(() => (agent.ready ? true : undefined), 'AUTH_ACK');
    calls.length = 0;
    held = true;
    const command = makeCommand('dev-batch', { nowMs: driver.time.nowMs() });
    await appendDeliver(gw.stores.bus, 'gw-a', command);
    // The device answers at once (ACK, executing, RESULT) while the deliver report is still in flight.
    await until(() => (calls.length === 1 && agent.deliveries.length === 1 ? true : undefined), 'the deliver report in flight');
    await driver.advance(100);
    assert.deepEqual(calls, [{ call: 'append', events: ['deliver'] }], 'nothing else is written while the deliver report is in flight');
    held = false;
    for (const release of waiters.splice(0)) release();
    await until(() => (calls.some((c) => c.call === 'ack') ? true : undefined), 'the stream entry acked');
    assert.deepEqual(calls, [
      { call: 'append', events: ['deliver'] },
      { call: 'appendBatch', events: ['ack', 'start', 'command_result'] },
      { call: 'ack' },
    ]);
    await gw.events.poll();
    const order = gw.events.entries.flatMap((e) => (e.kind === 'command_progress' && e.data.command_id === command.id ? [e.data.event]
      : e.kind === 'command_result' && e.data.command_id === command.id ? ['result'] : []));
    assert.deepEqual(order, ['deliver', 'ack', 'start', 'result']);
    assert.deepEqual(await gw.stores.bus.pending(gatewayCommandStream('gw-a'), groups.gateway), []);
  });
});
