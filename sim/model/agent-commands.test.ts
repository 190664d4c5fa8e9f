import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../../core/random/prng.js';
import { createCommand, startedWorld, stateOf, testScenario } from './test-support.js';

describe('model agent commands', () => {
  it('answers a redelivered command from its journal and never runs it twice', () => {
    const world = startedWorld(testScenario({ agents: 1 }));
    world.runUntil(2_000);
    const command = createCommand(world, 0);
    world.runUntil(2_100);
    assert.equal(stateOf(world, command), 'succeeded');
    const resultsBefore = world.network.stats.sent;
    world.router.append(command, 0);
    world.runUntil(2_200);
    assert.equal(world.counts.executions, 1);
    assert.equal(world.counts.kernel_calls, 1);
    assert.ok(world.network.stats.sent > resultsBefore, 'the device answered the duplicate');
    assert.equal(stateOf(world, command), 'succeeded');
  });

  it('fails each opcode the way the mock kernel does: lock screen unsupported, rollback without a previous version refused', () => {
    const world = startedWorld(testScenario({ agents: 1 }));
    world.runUntil(2_000);
    for (const opcode of ['EXEC_PING_KERNEL', 'EXEC_GET_STATUS', 'EXEC_GET_PROCESS_LIST', 'EXEC_LOCK_SCREEN', 'EXEC_ROLLBACK_UPDATE']) createCommand(world, 0, opcode);
    world.runUntil(3_000);
    assert.deepEqual(world.controlPlane.outcomesByCode(), { succeeded: 3, 'failed:KERNEL_NOT_SUPPORTED': 1, 'failed:KERNEL_REFUSED': 1 });
  });

  it('draws kernel status faults from the mock-kernel stream of the agent, one draw per call', () => {
    const scenario = testScenario({ agents: 3, faults: { network: { delayMsMin: 5, delayMsMax: 5 }, kernelErrors: { ratio: { numerator: 1, denominator: 3 }, status: 'BUSY' } } });
    const world = startedWorld(scenario);
    world.runUntil(2_000);
    const commands = Array.from({ length: 30 }, () => createCommand(world, 2));
    world.runUntil(3_000);
    const kernel = new SeededRandom(world.fleet.kernelSeed[2]!);
    for (const command of commands) assert.equal(stateOf(world, command), kernel.intBelow(3) < 1 ? 'failed' : 'succeeded');
  });

  it('judges deadlines on the gateway clock it measured at AUTH, not on its own skewed clock', () => {
    const scenario = testScenario({ agents: 40, commands: { perMinute: 0, ttlMs: 40_000, mix: { EXEC_PING_KERNEL: 1 } }, faults: { network: { delayMsMin: 5, delayMsMax: 5 }, clockSkewMsMax: 60_000 } });
    const world = startedWorld(scenario);
    const ahead = Array.from({ length: 40 }, (_, a) => a).find((a) => world.fleet.skewMs[a]! >= 40_000);
    assert.ok(ahead !== undefined, 'some agent runs 40 s ahead');
    world.runUntil(2_000);
    assert.equal(Math.abs(world.presence.deadlineAheadMs[ahead]!), 0, 'symmetric 5 ms links: the offset is measured exactly');
    const command = createCommand(world, ahead);
    world.runUntil(2_100);
    assert.equal(stateOf(world, command), 'succeeded');
  });

  it('acknowledges a command queued behind a slow kernel call at once, and refuses it unrun when its deadline passes while it waits', () => {
    const scenario = testScenario({ agents: 1, commands: { perMinute: 0, ttlMs: 40_000, mix: { EXEC_PING_KERNEL: 1 } }, faults: { network: { delayMsMin: 5, delayMsMax: 5 }, kernelLatency: { ratio: { numerator: 1, denominator: 1 }, delayMs: 50_000 } } });
    const world = startedWorld(scenario);
    world.runUntil(2_000);
    const slow = createCommand(world, 0);
    const behind = createCommand(world, 0);
    world.runUntil(2_020);
    assert.equal(stateOf(world, slow), 'executing');
    assert.equal(stateOf(world, behind), 'ack_received', 'taken and acknowledged while the first runs');
    world.runUntil(2_000 + 40_000 + 5_000);
    assert.equal(stateOf(world, slow), 'timed_out', 'its TTL passed after it left the control plane');
    world.runUntil(2_000 + 50_000 + 100);
    assert.equal(stateOf(world, slow), 'succeeded_late', 'the late result refines what was known');
    assert.equal(stateOf(world, behind), 'rejected');
    assert.deepEqual(world.controlPlane.outcomesByCode(), { 'succeeded_late': 1, 'rejected:AGENT_COMMAND_EXPIRED': 1 });
    assert.equal(world.counts.kernel_calls, 1, 'the refused one never reached the kernel');
  });
});
