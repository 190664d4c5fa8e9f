import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { noGateway } from './command-store.js';
import { createCommand, startedWorld, stateOf, testScenario } from './test-support.js';

describe('model gateway routing', () => {
  it('retries an unacknowledged delivery with backoff and dead-letters it after the last attempt', () => {
    // A 600 s heartbeat keeps the silent session open on both sides while the partition swallows every frame.
    const scenario = testScenario({ agents: 1, heartbeatIntervalMs: 600_000, faults: { network: { delayMsMin: 5, delayMsMax: 5 }, partitions: [{ atMs: 5_000, durationMs: 55_000 }] } });
    const world = startedWorld(scenario);
    world.runUntil(10_000);
    const command = createCommand(world, 0);
    world.runUntil(10_000 + 5 * 5_000);
    assert.equal(stateOf(world, command), 'sent');
    assert.ok(world.commands.dlvAttempt[command]! >= 4);
    // Five ACK waits of 5 s and four backoffs of at most 1, 2, 4 and 8 s.
    world.runUntil(10_000 + 5 * 5_000 + 15_000);
    assert.equal(stateOf(world, command), 'dead_lettered');
    assert.equal(world.commands.dlvAttempt[command], 5);
    assert.equal(world.commands.dlvGateway[command], noGateway);
    assert.equal(world.counts.executions, 0);
  });

  it('queues the ACK and RESULT reports a bus outage refuses and delivers them in order after it', () => {
    const scenario = testScenario({ agents: 1, faults: { network: { delayMsMin: 5, delayMsMax: 5 }, busOutages: [{ atMs: 2_005, durationMs: 4_000 }] } });
    const world = startedWorld(scenario);
    world.runUntil(2_000);
    const command = createCommand(world, 0);
    world.runUntil(6_004);
    assert.equal(stateOf(world, command), 'sent');
    // Retries back off 1, 2, 4 s (equal jitter): the first after the outage carries all three reports.
    world.runUntil(2_010 + 1_000 + 2_000 + 4_000);
    assert.equal(stateOf(world, command), 'succeeded');
    assert.equal(world.commands.dlvGateway[command], noGateway, 'the delivery ends once the result is out');
  });

  it('hands the deliveries of a session back when it ends; the journal answers for the command after the reboot', () => {
    const world = startedWorld(testScenario({ agents: 1 }), { params: { executionServiceMs: 20_000 } });
    world.runUntil(2_000);
    const command = createCommand(world, 0);
    world.runUntil(2_020);
    assert.equal(stateOf(world, command), 'executing');
    world.presence.crash(0, 1_000);
    world.runUntil(2_025);
    assert.equal(world.commands.dlvGateway[command], noGateway, 'requeued by the closed session');
    // After the boot, the journal reports the command interrupted; it never runs twice.
    world.runUntil(3_020 + 1_000 + 30);
    assert.equal(stateOf(world, command), 'failed');
    assert.deepEqual(world.controlPlane.outcomesByCode(), { 'failed:AGENT_INTERRUPTED': 1 });
    assert.equal(world.counts.interrupted, 1);
    assert.equal(world.counts.kernel_calls, 0);
  });

  it('a crashed gateway forgets its deliveries; its restart hands them back and its devices reconnect', () => {
    const world = startedWorld(testScenario({ agents: 1 }), { params: { executionServiceMs: 5_000 } });
    world.runUntil(2_000);
    const command = createCommand(world, 0);
    world.runUntil(2_100);
    world.faults.onGatewayCrash(0, 3_000);
    assert.equal(world.commands.dlvGateway[command], noGateway);
    world.runUntil(30_000);
    assert.equal(stateOf(world, command), 'succeeded', 'the result, sent again after the next AUTH_ACK, finishes it');
    assert.equal(world.counts.kernel_calls, 1);
    assert.equal(world.presence.connected, 1);
  });
});
