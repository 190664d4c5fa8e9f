import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Side } from './presence.js';
import { startedWorld, testScenario } from './test-support.js';
import type { ModelWorld } from './world.js';

function online(world: ModelWorld): number[] {
  return Array.from({ length: world.agents }, (_, a) => a).filter((a) => world.presence.isConnected(a));
}

describe('model sessions and presence', () => {
  it('connects every agent within its connect delay plus three hops, and keeps its presence key alive with heartbeats', () => {
    const world = startedWorld(testScenario({ agents: 6 }));
    world.runUntil(1_000 + 3 * 5);
    assert.equal(world.presence.connected, 6);
    assert.equal(world.counts.sessions_ready, 6);
    world.runUntil(120_000);
    for (let a = 0; a < 6; a += 1) assert.equal(world.presence.keyGatewayOf(a), 0);
    assert.equal(world.counts.sessions_closed, 0);
  });

  it('ends a partitioned session after the silence bound, lets the key expire, and reconnects after the partition', () => {
    const world = startedWorld(testScenario({ agents: 2, faults: { network: { delayMsMin: 5, delayMsMax: 5 }, partitions: [{ atMs: 20_000, durationMs: 30_000 }] } }));
    world.runUntil(19_999);
    assert.equal(world.presence.connected, 2);
    const lastHeardMs = Math.max(world.presence.gatewayLastHeardMs[0]!, world.presence.gatewayLastHeardMs[1]!);
    // The gateway closes 1.5 intervals after the last frame it heard; its close notice is not a frame and reaches the agent.
    world.runUntil(lastHeardMs + 15_000 + 5);
    assert.equal(world.presence.connected, 0);
    for (const a of [0, 1]) assert.equal(world.presence.keyGatewayOf(a), -1);
    // Handshakes during the partition fail (the gateway's 10 s auth bound), so nobody is back before it ends.
    world.runUntil(49_999);
    assert.equal(world.presence.connected, 0);
    // Back within the auth bound, the backoff ceiling and the connect itself.
    world.runUntil(50_000 + 10_000 + 8_000 + 1_000);
    assert.deepEqual(online(world), [0, 1]);
    assert.ok(world.network.stats.partitioned > 0);
  });

  it('a crashed agent vanishes without a goodbye: the gateway hears after the base delay, the agent boots and reconnects', () => {
    const world = startedWorld(testScenario({ agents: 1 }));
    world.runUntil(5_000);
    world.presence.crash(0, 3_000);
    assert.equal(world.presence.connected, 0);
    assert.equal(world.presence.gatewaySide[0], Side.ready, 'the gateway has not heard yet');
    world.runUntil(5_005);
    assert.equal(world.presence.gatewaySide[0], Side.none);
    assert.equal(world.presence.keyGatewayOf(0), -1, 'an orderly offline removes the key');
    world.runUntil(8_000 + 1_000 + 15);
    assert.equal(world.presence.connected, 1);
    assert.equal(world.counts.sessions_closed, 0, 'a crash is not a session close the agent sees');
  });

  it('churn: an orderly disconnect, away for the offline time, then back', () => {
    const world = startedWorld(testScenario({ agents: 1 }));
    world.runUntil(5_000);
    world.presence.leave(0, 10_000);
    assert.equal(world.presence.connected, 0);
    world.runUntil(14_999);
    assert.equal(world.presence.connected, 0);
    assert.equal(world.counts.sessions_closed, 1);
    world.runUntil(15_000 + 15);
    assert.equal(world.presence.connected, 1);
  });

  it('agents of a crashed gateway fail over to the next one after two failed connections', () => {
    const world = startedWorld(testScenario({ agents: 8, gateways: 2 }));
    world.runUntil(5_000);
    const onFirst = Array.from({ length: 8 }, (_, a) => a).filter((a) => world.presence.linkGateway[a] === 0);
    assert.ok(onFirst.length > 0);
    world.faults.onGatewayCrash(0, 120_000);
    world.runUntil(30_000);
    assert.equal(world.presence.connected, 8);
    for (const a of onFirst) assert.equal(world.presence.linkGateway[a], 1);
    assert.equal(world.counts.gateway_restarts, 1);
  });

  it('the liveness phase boots crashed agents and brings churned ones back at once', () => {
    const world = startedWorld(testScenario({ agents: 2 }));
    world.runUntil(5_000);
    world.presence.crash(0, 600_000);
    world.presence.leave(1, 600_000);
    world.healed = true;
    world.presence.heal();
    world.runUntil(5_000 + 1_000 + 15);
    assert.equal(world.presence.connected, 2);
  });
});
