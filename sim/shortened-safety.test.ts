import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runSimulation } from './run.js';
import { builtinScenarioPath, parseScenario } from './scenario.js';

describe('sim: a safety phase shortened below a fault', () => {
  it('lossy-network with --duration 30s leaves out the partition at 40 s instead of crashing, and passes its checkers', async () => {
    const scenario = parseScenario(JSON.parse(readFileSync(builtinScenarioPath('lossy-network'), 'utf8')), 'lossy-network');
    assert.ok(scenario.faults.partitions!.every((p) => p.atMs >= 30_000), 'the scenario still has its partition after 30 s');
    const result = await runSimulation({ scenario, scenarioRef: 'lossy-network', seed: 1, agents: 10, safetyMs: 30_000 });
    assert.deepEqual(result.violations, [], `reproduce with: ${result.reproduce}`);
    assert.equal(result.safetyMs, 30_000);
    assert.ok(result.counts.commands_accepted! > 0);
  });
});
