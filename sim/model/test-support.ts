import { parseScenario, type Scenario } from '../scenario.js';
import { defaultModelParams, type ModelParams } from './params.js';
import { ModelWorld } from './world.js';

/** Test support: a small clean scenario, with overrides. */
export function testScenario(overrides: Partial<Scenario> & { faults?: Scenario['faults'] } = {}): Scenario {
  return parseScenario({
    name: 'model-test', description: 'unit tests of the model tier', agents: 4, gateways: 1, safetyMs: 60_000, livenessBoundMs: 30_000,
    heartbeatIntervalMs: 10_000, telemetryIntervalMs: 30_000,
    commands: { perMinute: 0, ttlMs: 600_000, mix: { EXEC_PING_KERNEL: 1 } },
    faults: { network: { delayMsMin: 5, delayMsMax: 5 } },
    ...overrides,
  });
}

/** A started world (agents booting, processes scheduled) on `scenario`. */
export function startedWorld(scenario: Scenario, options: { seed?: number; params?: Partial<ModelParams>; agents?: number } = {}): ModelWorld {
  const world = new ModelWorld({
    scenario, seed: options.seed ?? 1, agents: options.agents ?? scenario.agents, safetyMs: scenario.safetyMs,
    params: { ...defaultModelParams, ...options.params },
  });
  world.start();
  return world;
}

/** Creates a command for `agent` now, as an operator would. Returns its index. */
export function createCommand(world: ModelWorld, agent: number, opcode = 'EXEC_PING_KERNEL'): number {
  world.controlPlane.create(agent, opcode);
  return world.commands.count - 1;
}

export function stateOf(world: ModelWorld, command: number): string {
  return world.controlPlane.stateName(command);
}
