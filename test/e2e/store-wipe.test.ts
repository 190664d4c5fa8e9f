// A store that loses everything while the services run (issue 18.1): Redis restarted without
// persistence, or FLUSHALL. On Redis every key of this deployment is deleted (FLUSHALL for it,
// without touching the shared server's other keys); embedded, the in-memory bus is wiped and the
// in-process key/value mock flushed. The consumer groups are gone, and so are presence, the
// enrolled-device and certificate keys and the revoked serials. Delivery must resume within the
// redelivery bound, and a device that reconnects must be admitted again once the control plane
// re-published what gateways admit by.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import RedisMock from 'ioredis-mock';
import { MemoryStreamBus } from '../../server/stores/bus/memory-stream-bus.js';
import { deleteKeysWithPrefix } from '../../server/stores/redis-test-keys.js';
import {
  createCommand, fastGateway, pairAgent, restartAgent, startE2e, storeTargets, waitOnline, waitTerminal, type E2eSystem,
} from './support/e2e-harness.js';

const commandsPerAgent = 4;
/** e2e-harness's tuning: redispatch interval 3 s, sweeps every 0.5 s; the control plane's wipe check every 5 s. */
const redeliveryBoundMs = 3_000 + 500 + fastGateway.heartbeatIntervalMs! + 500;
const republishBoundMs = 5_000 + 1_000;
/** Waits are generous multiples of the bounds, for a busy machine; they bound the test, not the system. */
const slack = 4;

/**
 * The services' log lines naming a command (delivered, dispatched, dead-lettered, result
 * forwarded and recorded), for a failure's message: a command dead-lettered whose result the
 * gateway forwarded later had been answered by its device (docs/chaos.md, 2026-12-05 evening).
 */
function linesOf(system: E2eSystem, commandId: string): Array<Record<string, unknown>> {
  return system.logs.lines.filter((line) => line.command_id === commandId || line.commandId === commandId)
    .map(({ time, role, msg, attempt }) => ({ time, role, msg, ...(attempt === undefined ? {} : { attempt }) }));
}

async function wipe(system: E2eSystem): Promise<void> {
  if (system.target.redisUrl !== undefined) {
    await deleteKeysWithPrefix(system.target.redisUrl, system.keyPrefix);
    return;
  }
  const bus = system.deployment.stores.bus;
  assert.ok(bus instanceof MemoryStreamBus);
  bus.wipe();
  await new RedisMock().flushall();
}

for (const target of storeTargets()) {
  describe(`a store wipe while running on ${target.name} stores`, () => {
    let system: E2eSystem;

    before(async () => {
      system = await startE2e({ target });
    });
    after(async () => {
      await system?.stop();
      if (system?.target.redisUrl !== undefined) await deleteKeysWithPrefix(system.target.redisUrl, system.keyPrefix);
    });

    it('re-creates the consumer groups, re-publishes, and delivers every command accepted after the wipe', async () => {
      const deviceIds = [1, 2].map((i) => `e2e-wipe-${system.tag}-${i}`);
      await Promise.all(deviceIds.map((id) => pairAgent(system, id)));
      await waitOnline(system, deviceIds);
      const warmup = await Promise.all(deviceIds.map((id) => createCommand(system, id, 'EXEC_PING_KERNEL')));
      for (const command of warmup) assert.equal((await waitTerminal(system, command.id)).state, 'succeeded');

      await wipe(system);
      const accepted = [];
      for (let round = 0; round < commandsPerAgent; round++) {
        for (const id of deviceIds) accepted.push(await createCommand(system, id, 'EXEC_PING_KERNEL'));
      }
      const finals = await Promise.all(accepted.map((command) => waitTerminal(system, command.id, slack * redeliveryBoundMs + 10_000)));
      assert.deepEqual(finals.map((record) => record.state), accepted.map(() => 'succeeded'), JSON.stringify(finals.filter((r) => r.state !== 'succeeded').map((r) => ({ id: r.id, history: r.history, logs: linesOf(system, r.id) }))));

      // Admission reads the re-published keys: a device that reconnects after the wipe is let in.
      const [first] = deviceIds;
      await system.agents.get(first!)!.stop();
      await waitOnline(system, [first!], false, slack * republishBoundMs);
      await restartAgent(system, first!);
      await waitOnline(system, [first!], true, slack * republishBoundMs + 10_000);
      const after = await createCommand(system, first!, 'EXEC_PING_KERNEL');
      const afterFinal = await waitTerminal(system, after.id);
      assert.equal(afterFinal.state, 'succeeded', JSON.stringify({ history: afterFinal.history, logs: linesOf(system, after.id) }));
    });
  });
}
