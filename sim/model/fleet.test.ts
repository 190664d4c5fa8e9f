import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../../core/random/prng.js';
import { drawFleet } from './fleet.js';

const draws = { gateways: 3, clockSkewMsMax: 2_000, telemetryIntervalMs: 30_000, connectDelayMsMax: 1_000 };

describe('model fleet', () => {
  it('gives each agent the skew, gateway, kernel stream, telemetry phase and first connect the full tier draws for it', () => {
    const fleet = drawFleet(new SeededRandom(77), 50, draws);
    // The full tier's sequence (sim/run.ts, sim/sim-agent.ts, agent/agent-core.ts), spelled out with the same calls.
    const agentsStream = new SeededRandom(77);
    for (let i = 0; i < 50; i += 1) {
      const random = agentsStream.fork();
      random.bytes(32);
      random.bytes(8);
      const skewMs = random.intBetween(-2_000, 2_000);
      random.bytes(32);
      random.bytes(32);
      const kernel = random.fork();
      const preferredGateway = random.intBelow(3);
      const telemetryPhaseMs = random.intBelow(30_000) + 1;
      const connectDelayMs = random.intBelow(1_000);
      assert.equal(fleet.skewMs[i], skewMs);
      assert.equal(fleet.kernelSeed[i], kernel.seed);
      assert.equal(fleet.preferredGateway[i], preferredGateway);
      assert.equal(fleet.telemetryPhaseMs[i], telemetryPhaseMs);
      assert.equal(fleet.connectDelayMs[i], connectDelayMs);
    }
  });

  it('draws no skew when the scenario has none, and starts every agent down and wanting to be online', () => {
    const fleet = drawFleet(new SeededRandom(1), 20, { ...draws, clockSkewMsMax: 0 });
    assert.ok(fleet.skewMs.every((skew) => skew === 0));
    assert.ok(fleet.up.every((up) => up === 0));
    assert.ok(fleet.wantOnline.every((want) => want === 1));
    assert.ok(fleet.preferredGateway.every((g) => g < 3));
    assert.ok(fleet.connectDelayMs.every((ms) => ms >= 0 && ms < 1_000));
  });
});
