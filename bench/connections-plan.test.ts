import assert from 'node:assert/strict';
import { it } from 'node:test';
import { agentProcessOf } from './connections-processes.js';
import { gatewayOrder } from './connections-setup.js';

/** How many of gateway `dead`'s agents (first in their order) go next to each gateway. */
function nextGateways(agents: number, gateways: number, dead: number): number[] {
  const counts = new Array<number>(gateways).fill(0);
  for (let i = 0; i < agents; i++) {
    const order = gatewayOrder(i, gateways);
    if (order[0] === dead) counts[order[1]!]! += 1;
  }
  return counts;
}

it('each agent tries every gateway once, its own (i mod G) first', () => {
  for (const gateways of [1, 2, 3, 5]) {
    for (let i = 0; i < 40; i++) {
      const order = gatewayOrder(i, gateways);
      assert.equal(order[0], i % gateways);
      assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: gateways }, (_, g) => g), `agent ${i} of ${gateways}`);
    }
  }
});

it('a dead gateway\'s agents go next to the others in equal shares, not all to one', () => {
  assert.deepEqual(nextGateways(39_000, 3, 0), [0, 6_500, 6_500]);
  assert.deepEqual(nextGateways(39_000, 3, 2), [6_500, 6_500, 0]);
  assert.deepEqual(nextGateways(4_000, 5, 1), [200, 0, 200, 200, 200]);
  assert.deepEqual(nextGateways(10, 2, 0), [0, 5]);
});

it('the killed gateway\'s agents are spread over the agent processes, not all in one', () => {
  /** How many of gateway `g`'s agents each agent process holds. */
  const perProcess = (agents: number, gateways: number, processes: number, g: number) => {
    const counts = new Array<number>(processes).fill(0);
    for (let i = 0; i < agents; i++) if (gatewayOrder(i, gateways)[0] === g) counts[agentProcessOf(i, gateways, processes)]! += 1;
    return counts;
  };
  assert.deepEqual(perProcess(15_000, 3, 3, 0), [1_667, 1_667, 1_666]);
  assert.deepEqual(perProcess(6_000, 3, 3, 1), [667, 667, 666]);
  assert.deepEqual(perProcess(4_000, 2, 4, 0), [500, 500, 500, 500]);
  // Every process holds its share of the whole fleet.
  const all = new Array<number>(3).fill(0);
  for (let i = 0; i < 15_000; i++) all[agentProcessOf(i, 3, 3)]! += 1;
  assert.deepEqual(all, [5_001, 5_001, 4_998]);
});
