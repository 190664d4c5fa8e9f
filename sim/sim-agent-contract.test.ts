// The agent contract suite against the simulator's agent (sim/sim-agent.ts): its own driver,
// reconnect logic and observed journal, over the simulated network (no faults) to the suite's
// gateway. A restart is a SimAgent crash: the journal and kernel survive, the process boots again.
import { runAgentContractSuite, type AgentContractWorld, type AgentTarget } from '../agent/agent-contract-suite.js';
import { SimNetwork } from '../chaos/network.js';
import type { GatewayCore } from '../server/gateway/gateway-core.js';
import { SimAgent, type SimAgentWorld } from './sim-agent.js';

const gatewayId = 'gw-contract';

/** The one part of a gateway core a SimAgent uses: acceptConnection, answered by the suite's gateway. */
function suiteGateway(world: AgentContractWorld): GatewayCore {
  const acceptConnection: GatewayCore['acceptConnection'] = (input) => world.accept({ send: (bytes) => input.send(bytes), close: () => input.close(1000, 'closed') });
  return { acceptConnection } as Partial<GatewayCore> as GatewayCore;
}

function simAgent(world: AgentContractWorld): AgentTarget {
  const network = new SimNetwork({ clock: world.time, scheduler: world.time, random: world.random });
  const gateway = suiteGateway(world);
  const simWorld: SimAgentWorld = {
    time: world.time, network, provider: world.provider, gatewayIds: [gatewayId],
    gateway: (id) => (id === gatewayId ? gateway : undefined),
    resolveGatewayKey: (kid) => world.resolveGatewayKey(kid), resolveCommandKey: (kid) => world.resolveCommandKey(kid),
    heartbeatIntervalMs: world.heartbeatIntervalMs, telemetryIntervalMs: world.telemetryIntervalMs,
    trace: () => undefined, onExecuting: () => undefined, onAgentEvent: () => undefined, linkClosed: (link) => network.linkClosed(link),
  };
  const agent = new SimAgent(simWorld, {
    deviceId: world.deviceId, deviceSeed: world.deviceSeed, devicePublicKey: world.devicePublicKey, certSerialHex: '01',
    random: world.random, clock: world.time, kernel: world.kernel, preferredGateway: 0,
  });
  return {
    journal: agent.journal,
    start: async () => agent.boot(),
    restart: async () => agent.crash(1),
    stop: () => agent.stop(),
  };
}

runAgentContractSuite('simulated agent (sim/sim-agent.ts)', async (world) => simAgent(world));
