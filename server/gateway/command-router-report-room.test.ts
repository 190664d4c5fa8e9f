import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import { decodeBusEntry } from '../bus-contract/entries.js';
import { MemoryStreamBus } from '../stores/bus/memory-stream-bus.js';
import { MemoryKeyValueStore } from '../stores/kv/memory-key-value-store.js';
import { CommandRouter, type DeliveryTarget } from './command-router.js';
import { createGatewayContext, type GatewayContext } from './gateway-context.js';
import { resolveGatewayOptions } from './gateway-core.js';
import { appendDeliver, coreOptions, makeCommand, onVirtualTime, VirtualDriver } from './test-support.js';

// Review h12: the deliver report is not awaited (d7efc9c), so a burst could fill the router's
// report queues (reportBacklogsMax); a deliver report beyond them went out once, unregistered,
// and was lost when that append failed while the command's ACK, appended later, got through: the
// control plane saw an ACK for a command never reported sent. The router now asks the device only
// once a queue has room, so every deliver report is queued, retried, and ahead of its ACK.
test('a burst beyond reportBacklogsMax during a bus outage: each deliver report is retried and lands before its ACK (virtual time)', async () => {
  const driver = new VirtualDriver(undefined, 50);
  const stores = { bus: new MemoryStreamBus({ clock: driver.time, scheduler: driver.time }), kv: new MemoryKeyValueStore({ clock: driver.time }) };
  const base = createGatewayContext(resolveGatewayOptions({ ...coreOptions(stores), ...onVirtualTime(driver), ackTimeoutMs: 600_000, backoff: { baseMs: 1_000, maxMs: 1_000 } }));
  let down = true;
  const reported: Array<{ command: string; event: string }> = [];
  const context: GatewayContext = {
    ...base,
    async reportEncoded(entries) {
      if (down) throw new Error('bus down (test)');
      await base.reportEncoded(entries);
      for (const entry of entries) {
        const decoded = decodeBusEntry(entry);
        if (decoded.kind === 'command_progress') reported.push({ command: decoded.data.command_id, event: decoded.data.event });
      }
    },
  };
  const asked: string[] = [];
  const target: DeliveryTarget = { sessionId: 's-1', deliver: (command) => { asked.push(command.id); return true; } };
  const router = new CommandRouter(context, () => target, { reportBacklogsMax: 2 });
  try {
    await router.start();
    const commands = [1, 2, 3].map((deviceSeq) => makeCommand('dev-1', { id: `c_burst${deviceSeq}`, deviceSeq, nowMs: driver.time.nowMs() }));
    for (const command of commands) await appendDeliver(stores.bus, 'gw-a', command);
    await driver.advance(200);
    assert.deepEqual(asked, ['c_burst1', 'c_burst2'], 'the third waits for room: its deliver report would have nowhere to be retried');
    down = false;
    await driver.until(() => (asked.length === 3 && reported.some((r) => r.command === 'c_burst3') ? true : undefined), 30_000, 'the third command delivered and reported');
    for (const command of commands) {
      await router.onAck('dev-1', { command_id: command.id, stage: 'received' } as MessageBody<'COMMAND_ACK'>, 'frame');
    }
    // An ACK of a command whose deliver report still waits for its retry joins that queue, behind it.
    await driver.until(() => (reported.length >= 6 ? true : undefined), 30_000, 'every report on the stream');
    for (const command of commands) {
      assert.deepEqual(reported.filter((r) => r.command === command.id).map((r) => r.event), ['deliver', 'ack'], command.id);
    }
  } finally {
    router.stop();
    await stores.bus.close();
    await stores.kv.close();
  }
});
