import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../../core/random/prng.js';
import { startedWorld, testScenario } from './test-support.js';

/** The full tier's `faults` stream: the fifth fork of the seed (network, control plane, gateways, agents, faults). */
function fullTierFaultsStream(seed: number): SeededRandom {
  const root = new SeededRandom(seed);
  for (let i = 0; i < 4; i += 1) root.fork();
  return root.fork();
}

describe('model faults', () => {
  it('crashes and churns the same agents at the same times as the full tier, from the same stream in the same order', () => {
    const scenario = testScenario({
      agents: 10, safetyMs: 120_000,
      churn: { perAgentHour: 30, offlineMsMin: 100, offlineMsMax: 5_000 },
      faults: { network: { delayMsMin: 5, delayMsMax: 5 }, agentCrashes: { perAgentHour: 20, downMsMin: 100, downMsMax: 9_000 } },
    });
    const world = startedWorld(scenario, { seed: 9 });
    const seen: string[] = [];
    world.presence.crash = (agent, downMs) => { seen.push(`${world.nowMs} crash ${agent} ${downMs}`); };
    world.presence.leave = (agent, offlineMs) => { seen.push(`${world.nowMs} leave ${agent} ${offlineMs}`); };
    world.runUntil(120_000);

    const faults = fullTierFaultsStream(9);
    const expected: string[] = [];
    const process = (random: SeededRandom, perAgentHour: number, act: (t: number) => string) => {
      const gapMaxMs = Math.round(2 * (3_600_000 / (10 * perAgentHour)));
      for (let t = random.intBetween(0, gapMaxMs); t < 120_000; t += random.intBetween(0, gapMaxMs)) expected.push(act(t));
    };
    const crashes = faults.fork();
    const churn = faults.fork();
    process(crashes, 20, (t) => `${t} crash ${crashes.intBelow(10)} ${crashes.intBetween(100, 9_000)}`);
    process(churn, 30, (t) => `${t} leave ${churn.intBelow(10)} ${churn.intBetween(100, 5_000)}`);
    const byTime = (x: string, y: string) => Number(x.split(' ')[0]) - Number(y.split(' ')[0]);
    assert.deepEqual([...seen].sort(byTime), expected.sort(byTime));
    assert.ok(seen.length > 5);
  });

  it('cuts off the agents the full tier draws for a partition, one draw per device', () => {
    const scenario = testScenario({ agents: 50, faults: { network: { delayMsMin: 5, delayMsMax: 5 }, partitions: [{ atMs: 1_000, durationMs: 500_000, agents: { numerator: 1, denominator: 3 } }] } });
    const world = startedWorld(scenario, { seed: 4 });
    const faults = fullTierFaultsStream(4);
    for (let agent = 0; agent < 50; agent += 1) {
      assert.equal(world.network.isPartitioned(agent, 0, 2_000), faults.chance(1, 3), `agent ${agent}`);
    }
    assert.equal(world.network.isPartitioned(0, 0, 60_000), false, 'a partition ends with the safety phase at the latest');
  });

  it('fails the bus and SQL inside their windows only, and not at all once healed', () => {
    const world = startedWorld(testScenario({ faults: { network: { delayMsMin: 5, delayMsMax: 5 }, busOutages: [{ atMs: 1_000, durationMs: 500 }], sqlOutages: [{ atMs: 2_000, durationMs: 500 }] } }));
    const at = (ms: number) => { world.runUntil(ms); return [world.faults.busDown(), world.faults.sqlDown()]; };
    assert.deepEqual(at(999), [false, false]);
    assert.deepEqual(at(1_000), [true, false]);
    assert.deepEqual(at(1_500), [false, false]);
    assert.deepEqual(at(2_499), [false, true]);
    world.healed = true;
    assert.deepEqual(at(2_499), [false, false]);
  });

  it('restarts a gateway only when its crash falls inside the safety phase; it comes back after its down time', () => {
    const scenario = testScenario({ agents: 4, gateways: 2, safetyMs: 60_000, faults: { network: { delayMsMin: 5, delayMsMax: 5 }, gatewayRestarts: [{ atMs: 10_000, gateway: 'gw-2', downMs: 5_000 }, { atMs: 60_000, gateway: 'gw-1', downMs: 1_000 }] } });
    const world = startedWorld(scenario);
    world.runUntil(10_000);
    assert.equal(world.router.isUp(1), false);
    world.runUntil(15_000);
    assert.equal(world.router.isUp(1), true);
    world.runUntil(61_000);
    assert.equal(world.router.isUp(0), true);
    assert.equal(world.counts.gateway_restarts, 1);
  });
});
