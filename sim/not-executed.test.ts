import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runSimulation } from './run.js';
import { parseScenario } from './scenario.js';

/**
 * The not_executed checker on a run where states that promise "never ran" occur: TTLs shorter
 * than the faults (crashes with long downtimes, a partition, a gateway restart, churn), so
 * commands expire before leaving the control plane, time out after, and agents refuse ones
 * whose deadline passed while they were down. Scaled for a 2-core CI machine.
 */
describe('sim: expired and rejected commands never ran', () => {
  const shortTtl = () => parseScenario({
    name: 'short-ttl', description: 'TTLs shorter than the faults', agents: 30, gateways: 2, safetyMs: 60_000, livenessBoundMs: 24_000,
    heartbeatIntervalMs: 5_000, telemetryIntervalMs: 30_000,
    commands: { perMinute: 240, ttlMs: 25_000, mix: { EXEC_PING_KERNEL: 3, EXEC_GET_STATUS: 2, EXEC_LOCK_SCREEN: 1 } },
    churn: { perAgentHour: 60, offlineMsMin: 1_000, offlineMsMax: 30_000 },
    faults: {
      network: { delayMsMin: 2, delayMsMax: 100 },
      agentCrashes: { perAgentHour: 60, downMsMin: 5_000, downMsMax: 40_000 },
      partitions: [{ atMs: 10_000, durationMs: 30_000, agents: { numerator: 1, denominator: 3 } }],
      gatewayRestarts: [{ atMs: 25_000, gateway: 'gw-1', downMs: 10_000 }],
      kernelLatency: { ratio: { numerator: 1, denominator: 4 }, delayMs: 8_000 },
      clockSkewMsMax: 20_000,
    },
  }, 'short-ttl');

  it('a run with short TTLs and the existing faults passes every checker, not_executed included, with commands in each of those states', async () => {
    const result = await runSimulation({ scenario: shortTtl(), scenarioRef: 'short-ttl', seed: 4242 });
    assert.deepEqual(result.violations, [], `reproduce with: ${result.reproduce}`);
    assert.equal(result.checkers.not_executed, 'pass');
    const byState = result.commandsByState;
    assert.ok(byState.expired > 0 && byState.rejected > 0 && byState.timed_out + byState.succeeded_late + byState.failed_late > 0, JSON.stringify(byState));
  });

  // Seeds 5 and 6 caught a crashed agent's leftover work writing into the journal the next run
  // used: a queued command, refused as COMMAND_SEQ_STALE after the new run had started it, became
  // `rejected` though it ran (5), or stayed `executing` for ever (6). sim/sim-agent.ts now kills
  // a crashed run's journal handle, and a stopped agent core starts and refuses nothing.
  for (const seed of [5, 6]) {
    it(`seed ${seed}: a crash while commands wait behind a slow kernel call leaves no command wrongly rejected or stuck`, async () => {
      const result = await runSimulation({ scenario: shortTtl(), scenarioRef: 'short-ttl', seed });
      assert.deepEqual(result.violations, [], `reproduce with: ${result.reproduce}`);
      assert.ok((result.counts.interrupted ?? 0) > 0, 'the run has a crash during a kernel call');
    });
  }
});
