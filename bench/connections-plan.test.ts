import assert from 'node:assert/strict';
import { it } from 'node:test';
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
