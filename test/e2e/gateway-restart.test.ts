// A gateway crash and restart mid-flight: commands are in flight when the gateway's sockets are
// destroyed and its core aborted, more are accepted while it is down, and a new gateway comes up
// on the same stores and port. The agents reconnect by their own backoff. Every accepted command
// reaches a terminal state and none takes effect twice at the device's kernel.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  checkExactlyOnce, countProcessListCalls, createCommand, eventually, pairAgent, startE2e, storeTargets, waitOnline, waitTerminal, type CommandRecord, type E2eSystem,
} from './support/e2e-harness.js';

const agentsCount = 3;
const commandsPerAgent = 10;
/** Commands per agent accepted before the crash; the rest are accepted while the gateway is down. */
const beforeCrashPerAgent = 5;

for (const target of storeTargets()) {
  describe(`gateway restart mid-flight on ${target.name} stores`, () => {
    let system: E2eSystem;

    before(async () => {
      system = await startE2e({ target });
    });
    after(async () => {
      await system?.stop();
    });

    it('brings every accepted command to a terminal state, none executed twice', async () => {
      const deviceIds = Array.from({ length: agentsCount }, (_, i) => `e2e-gwr-${system.tag}-${i + 1}`);
      const agents = await Promise.all(deviceIds.map((id) => pairAgent(system, id)));
      // Each command asks for its own process-list limit, so the kernel's calls name the command.
      // A 150 ms kernel call keeps the first commands executing when the gateway crashes.
      const calls = agents.map((agent) => countProcessListCalls(agent, { callDelayMs: 150 }));
      await waitOnline(system, deviceIds);

      const accepted: Array<{ command: CommandRecord; agentIndex: number; limit: number }> = [];
      const send = async (agentIndex: number, limit: number) => {
        const command = await createCommand(system, deviceIds[agentIndex]!, 'EXEC_GET_PROCESS_LIST', { limit });
        accepted.push({ command, agentIndex, limit });
      };
      await Promise.all(deviceIds.map(async (_, agentIndex) => {
        for (let limit = 1; limit <= beforeCrashPerAgent; limit++) await send(agentIndex, limit);
      }));
      await eventually('a command executing at the crash', async () => {
        const states = await Promise.all(accepted.map((a) => system.api<CommandRecord>('GET', `/v1/commands/${a.command.id}`)));
        return states.some((r) => r.state === 'executing') ? true : undefined;
      }, 10_000, 20);
      const crashed = system.crashAndRestartGateway(800);
      await Promise.all(deviceIds.map(async (_, agentIndex) => {
        for (let limit = beforeCrashPerAgent + 1; limit <= commandsPerAgent; limit++) await send(agentIndex, limit);
      }));
      await crashed;
      assert.equal(accepted.length, agentsCount * commandsPerAgent);

      const finals = await Promise.all(accepted.map(async (a) => ({ ...a, record: await waitTerminal(system, a.command.id, 30_000) })));
      for (const { record } of finals) {
        // A command's history only moves forward in time.
        const times = record.history.map((h) => h.at_ms);
        assert.ok(times.every((t, i) => i === 0 || t >= times[i - 1]!), JSON.stringify(record.history));
      }
      const byState = checkExactlyOnce(finals.map(({ record, agentIndex, limit }) => ({ record, executions: calls[agentIndex]!.get(limit) ?? 0 })));
      assert.equal(byState.succeeded, agentsCount * commandsPerAgent, JSON.stringify(byState));
      // No call the test did not send: the kernel saw only accepted commands.
      for (const [agentIndex, counts] of calls.entries()) {
        assert.ok([...counts.keys()].every((limit) => limit >= 1 && limit <= commandsPerAgent), `agent ${agentIndex}: ${[...counts.keys()]}`);
      }
      await waitOnline(system, deviceIds);
      const audit = await system.api<{ ok: boolean }>('GET', '/v1/audit/verify');
      assert.equal(audit.ok, true);
    });
  });
}
