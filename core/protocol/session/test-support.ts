import type { AgentConnection, AgentEvent } from './agent-connection.js';
import type { GatewayConnection, GatewayEvent } from './gateway-connection.js';

/**
 * For tests of the two session ends: moves frames both ways until neither side has anything to
 * send (at most 10 rounds); the agent's clock reads `nowMs + agentSkewMs`.
 */
export function pumpFrames(gateway: GatewayConnection, agent: AgentConnection, nowMs: number, agentSkewMs = 0): { gatewayEvents: GatewayEvent[]; agentEvents: AgentEvent[] } {
  const gatewayEvents: GatewayEvent[] = [];
  const agentEvents: AgentEvent[] = [];
  for (let round = 0; round < 10; round++) {
    const toAgent = gateway.takeOutgoing();
    const toGateway = agent.takeOutgoing();
    if (toAgent.length === 0 && toGateway.length === 0) break;
    for (const frame of toAgent) agentEvents.push(...agent.receive(frame, nowMs + agentSkewMs));
    for (const frame of toGateway) gatewayEvents.push(...gateway.receive(frame, nowMs));
  }
  return { gatewayEvents, agentEvents };
}
