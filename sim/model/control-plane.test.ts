import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { commandEvents, commandStates, commandTable } from '../../core/protocol/command-machine.js';
import { nextState } from '../../core/protocol/state-machine.js';
import { compileCommandTable } from './control-plane.js';
import { createCommand, startedWorld, stateOf, testScenario } from './test-support.js';

describe('model control plane', () => {
  it('applies the command machine of core/protocol: the compiled table agrees with nextState for every state and event', () => {
    const compiled = compileCommandTable();
    commandStates.forEach((state, s) => {
      commandEvents.forEach((event, e) => {
        const expected = nextState(commandTable, state, event);
        const got = compiled.next[s * compiled.eventCount + e];
        assert.equal(got === 255 ? undefined : commandStates[got!], expected, `${state} --${event}-->`);
      });
    });
  });

  it('a command to a ready device: sent, acknowledged, executing, succeeded within two link delays', () => {
    const world = startedWorld(testScenario({ agents: 2 }));
    world.runUntil(2_000);
    const command = createCommand(world, 1);
    assert.equal(stateOf(world, command), 'sent', 'dispatched and delivered at once: services take no virtual time');
    world.runUntil(2_009);
    assert.equal(stateOf(world, command), 'sent');
    world.runUntil(2_010);
    assert.equal(stateOf(world, command), 'succeeded');
    assert.equal(world.controlPlane.latency[0], 1, 'a 10 ms round trip is in the first bucket');
    assert.deepEqual(world.controlPlane.outcomesByCode(), { succeeded: 1 });
  });

  it('refuses commands while SQL is down', () => {
    const world = startedWorld(testScenario({ faults: { network: { delayMsMin: 5, delayMsMax: 5 }, sqlOutages: [{ atMs: 5_000, durationMs: 1_000 }] } }));
    world.runUntil(5_500);
    createCommand(world, 0);
    assert.equal(world.counts.commands_refused, 1);
    assert.equal(world.commands.count, 0);
  });

  it('keeps a command for an offline device queued and delivers it when the device comes online again', () => {
    const world = startedWorld(testScenario({ agents: 1 }));
    world.runUntil(2_000);
    world.presence.leave(0, 20_000);
    world.runUntil(2_100);
    const command = createCommand(world, 0);
    world.runUntil(21_000);
    assert.equal(stateOf(world, command), 'queued');
    world.runUntil(22_000 + 30);
    assert.equal(stateOf(world, command), 'succeeded');
  });

  it('recovers a result the gateway could not report (the redelivery sweep asks the device again, which answers from its journal)', () => {
    const scenario = testScenario({ agents: 1, faults: { network: { delayMsMin: 5, delayMsMax: 5 }, busOutages: [{ atMs: 2_005, durationMs: 2_000 }] } });
    const world = startedWorld(scenario, { params: { reportAttemptsMax: 1 } });
    world.runUntil(2_000);
    const command = createCommand(world, 0);
    world.runUntil(30_000);
    assert.equal(stateOf(world, command), 'sent', 'the ACKs and the RESULT met the outage and were given up');
    world.runUntil(2_000 + 30_000 + 5_000 + 20);
    assert.equal(stateOf(world, command), 'succeeded');
    assert.equal(world.counts.executions, 1, 'asked again, never run again');
  });

  it('expires a command whose TTL passes before any gateway held it', () => {
    const scenario = testScenario({ agents: 1, commands: { perMinute: 0, ttlMs: 40_000, mix: { EXEC_PING_KERNEL: 1 } } });
    const world = startedWorld(scenario);
    world.runUntil(2_000);
    world.presence.crash(0, 600_000);
    world.runUntil(2_100);
    const command = createCommand(world, 0);
    world.runUntil(2_100 + 40_000 + 5_000);
    assert.equal(stateOf(world, command), 'expired');
    assert.equal(world.controlPlane.unfinishedCount, 0);
  });

  it('retries a report that met an SQL outage in place, after pauses that double, before the later reports of its device', () => {
    const scenario = testScenario({ agents: 1, faults: { network: { delayMsMin: 5, delayMsMax: 5 }, sqlOutages: [{ atMs: 2_005, durationMs: 2_000 }] } });
    const world = startedWorld(scenario);
    world.runUntil(2_000);
    const command = createCommand(world, 0);
    world.runUntil(4_000);
    assert.equal(stateOf(world, command), 'sent', 'the ACKs and the RESULT wait behind the failed one');
    // Attempts at 250, 750, 1750 and 3750 ms after the first: the fourth finds SQL back.
    world.runUntil(2_010 + 3_750);
    assert.equal(stateOf(world, command), 'succeeded');
  });
});
