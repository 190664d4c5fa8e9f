// The agent contract suite against the real agent core, with its in-memory journal (reopened on a
// restart, as the file journal is by the agent runtime; command-journal.test.ts runs the journal
// contract on both) and the mock kernel, over an in-memory link to the suite's gateway.
import { deviceKid } from '../core/protocol/session/gateway-connection.js';
import { createAgentCore, type AgentConnectionHandle, type AgentCore } from './agent-core.js';
import { runAgentContractSuite, type AgentContractWorld, type AgentTarget } from './agent-contract-suite.js';
import { MemoryCommandJournal } from './command-journal.js';
import { createSyntheticMetricsSource } from './telemetry/synthetic-metrics.js';

function realAgent(world: AgentContractWorld): AgentTarget {
  const journal = new MemoryCommandJournal();
  let core: AgentCore | undefined;

  function boot(): void {
    const booted = createAgentCore({
      deviceId: world.deviceId, signer: { kid: deviceKid(world.deviceId), seed: world.deviceSeed, provider: world.provider },
      resolveGatewayKey: (kid) => world.resolveGatewayKey(kid), resolveCommandKey: (kid) => world.resolveCommandKey(kid),
      kernel: world.kernel, journal, clock: world.time, random: world.random, scheduler: world.time,
      telemetrySource: createSyntheticMetricsSource({ random: world.random }), telemetryIntervalMs: world.telemetryIntervalMs, agentVersion: 'contract/1',
    });
    booted.start();
    core = booted;
    let handle: AgentConnectionHandle | undefined;
    // Both directions a microtask later, as a socket would: neither side is re-entered by the other.
    const gateway = world.accept({ send: (bytes) => handle?.receive(bytes), close: () => handle?.transportClosed() });
    handle = booted.onConnected({
      send: (bytes) => queueMicrotask(() => gateway.receive(bytes)),
      close: () => queueMicrotask(() => gateway.transportClosed()),
    });
  }

  return {
    journal,
    start: async () => boot(),
    restart: async () => {
      await core?.stop();
      journal.reopen();
      boot();
    },
    stop: async () => { await core?.stop(); },
  };
}

runAgentContractSuite('real agent core', async (world) => realAgent(world));
