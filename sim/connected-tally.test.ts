import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectedTally, type TalliedAgent } from './connected-tally.js';
import { runSimulation } from './run.js';
import { builtinScenarioPath, loadScenario } from './scenario.js';
import { swarmScenario } from './swarm.js';

describe('connected tally (the count of connected agents, kept instead of scanned)', () => {
  it('counts only what was marked since the last count, each agent once', () => {
    const tally = new ConnectedTally();
    const agent = (): TalliedAgent & { connected: boolean } => ({ connected: false, tallyDirty: false, tallyConnected: false });
    const [a, b] = [agent(), agent()];
    a.connected = true;
    b.connected = true;
    tally.mark(a);
    assert.equal(tally.count(), 1, 'b changed but was not marked');
    tally.mark(b);
    tally.mark(b);
    assert.equal(tally.count(), 2);
    a.connected = false;
    tally.mark(a);
    tally.mark(a);
    assert.equal(tally.count(), 1, 'a marked twice counts once');
    assert.equal(tally.count(), 1);
  });

  // The runs check the tally against asking every agent at every step (checkConnectedTally):
  // churn (orderly leaves, crashes, restarts, two gateways) and swarm seeds with lossy links,
  // store outages and gateway restarts. A path that changes `connected` without marking fails here.
  it('agrees with every agent at every step through churn, crashes, lossy links and outages', async () => {
    const churn = await loadScenario(builtinScenarioPath('churn'));
    const runs = [
      () => runSimulation({ scenario: churn, scenarioRef: 'churn', seed: 11, agents: 8, safetyMs: 15_000, sampleIntervalMs: 1_000, checkConnectedTally: true }),
      ...[1003, 192].map((seed) => () => runSimulation({
        scenario: swarmScenario(seed, { agents: 20, safetyMs: 20_000, lossy: true, outages: true }), scenarioRef: `swarm:${seed}:lossy:outages`,
        seed, agents: 20, safetyMs: 20_000, sampleIntervalMs: 1_000, checkConnectedTally: true,
      })),
    ];
    for (const run of runs) {
      const result = await run();
      assert.deepEqual(result.violations, [], `reproduce with: ${result.reproduce}`);
      assert.ok(result.counts.sessions_closed! > 0, 'sessions closed and came back');
    }
  });
});
