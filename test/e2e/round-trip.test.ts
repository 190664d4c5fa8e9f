// The whole system through real loopback TLS sockets: pairing through the API, enrollment, AUTH,
// telemetry read back through the API, a command of every opcode reaching succeeded with every
// state in order, and the audit chain verifying. On the embedded stores always, and on Redis +
// MySQL when REDIS_URL and MYSQL_URL are set.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Opcode } from '../../core/protocol/messages/opcodes.js';
import {
  argsFor, createCommand, eventually, historyInOrder, pairAgent, startE2e, storeTargets, waitOnline, waitTerminal, type E2eSystem,
} from './support/e2e-harness.js';

/** Every opcode, in an order the mock kernel accepts: two committed updates give the rollback a previous version. */
const steps: ReadonlyArray<{ opcode: Opcode; version?: string }> = [
  { opcode: 'EXEC_PING_KERNEL' }, { opcode: 'EXEC_GET_STATUS' }, { opcode: 'EXEC_GET_PROCESS_LIST' }, { opcode: 'EXEC_LOCK_SCREEN' },
  { opcode: 'EXEC_STAGE_UPDATE', version: '1.0.1' }, { opcode: 'EXEC_COMMIT_UPDATE', version: '1.0.1' },
  { opcode: 'EXEC_STAGE_UPDATE', version: '1.0.2' }, { opcode: 'EXEC_COMMIT_UPDATE', version: '1.0.2' },
  { opcode: 'EXEC_ROLLBACK_UPDATE' },
];

for (const target of storeTargets()) {
  describe(`end to end on ${target.name} stores`, () => {
    let system: E2eSystem;
    let deviceIds: string[];

    before(async () => {
      system = await startE2e({ target });
      deviceIds = [1, 2].map((i) => `e2e-rt-${system.tag}-${i}`);
    });
    after(async () => {
      await system?.stop();
    });

    it('pairs agents through the API; they enroll, pass AUTH and show as online', async () => {
      const agents = await Promise.all(deviceIds.map((id) => pairAgent(system, id)));
      for (const agent of agents) assert.equal(agent.enrolledNow, true);
      await waitOnline(system, deviceIds);
      for (const id of deviceIds) {
        const device = await system.api<{ id: string; status: string; online: boolean }>('GET', `/v1/devices/${id}`);
        assert.equal(device.id, id);
        assert.equal(device.online, true);
      }
    });

    it('stores telemetry that the API returns per device', async () => {
      for (const id of deviceIds) {
        const items = await eventually(`telemetry of ${id}`, async () => {
          const answer = await system.api<{ items: Array<Record<string, unknown>> }>('GET', `/v1/devices/${id}/telemetry?limit=10`);
          return answer.items.length >= 2 ? answer.items : undefined;
        });
        for (const item of items) {
          const metrics = item.metrics as Record<string, unknown> | undefined;
          assert.equal(typeof item.ts_ms, 'number', JSON.stringify(item));
          assert.equal(typeof metrics?.cpu_pct, 'number', JSON.stringify(item));
          assert.equal(typeof item.risk_score, 'number', JSON.stringify(item));
        }
      }
      // A time range that ends before anything was stored is empty.
      const none = await system.api<{ items: unknown[] }>('GET', `/v1/devices/${deviceIds[0]}/telemetry?from_ms=0&to_ms=1`);
      assert.deepEqual(none.items, []);
    });

    it('runs a command of every opcode to succeeded, with every state in order', async () => {
      await Promise.all(deviceIds.map(async (deviceId) => {
        for (const step of steps) {
          const created = await createCommand(system, deviceId, step.opcode, argsFor(step.opcode, step.version));
          assert.equal(created.device_id, deviceId);
          assert.equal(created.opcode, step.opcode);
          const record = await waitTerminal(system, created.id);
          const { states, ordered } = historyInOrder(record);
          assert.equal(record.state, 'succeeded', `${step.opcode} on ${deviceId}: ${JSON.stringify(record)}`);
          assert.deepEqual(states, ['queued', 'sent', 'ack_received', 'executing', 'succeeded'], `${step.opcode}: ${JSON.stringify(record.history)}`);
          assert.ok(ordered, `${step.opcode}: times go back: ${JSON.stringify(record.history)}`);
        }
      }));
      // The kernel state the update commands left behind, read through a command.
      const status = await createCommand(system, deviceIds[0]!, 'EXEC_GET_STATUS');
      const done = await waitTerminal(system, status.id);
      assert.equal(done.state, 'succeeded');
      // The device's signed COMMAND_RESULT frame is kept, and answered as an object.
      const full = await system.api<{ result_frame?: { type: string; device_id: string; body: { output: Record<string, unknown> } } | null }>('GET', `/v1/commands/${status.id}`);
      assert.equal(typeof full.result_frame, 'object', JSON.stringify(full));
      const frame = full.result_frame!;
      assert.equal(frame.type, 'COMMAND_RESULT');
      assert.equal(frame.device_id, deviceIds[0]);
      const output = frame.body.output;
      assert.equal(output.current_version, '1.0.1', JSON.stringify(output));
      assert.equal(output.commits, 2);
      assert.equal(output.rollbacks, 1);
    });

    it('verifies the audit chain over everything above', async () => {
      const audit = await system.api<{ ok: boolean; count?: number }>('GET', '/v1/audit/verify');
      assert.equal(audit.ok, true, JSON.stringify(audit));
      assert.ok((audit.count ?? 0) > steps.length * deviceIds.length, JSON.stringify(audit));
    });
  });
}
