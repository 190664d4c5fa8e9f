import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../../core/random/prng.js';
import type { ScenarioLinkFaults } from '../scenario.js';
import { Dir, ModelNetwork } from './network.js';

function network(faults: ScenarioLinkFaults | undefined, gatewayFaults: Array<ScenarioLinkFaults | undefined> = []): ModelNetwork {
  return new ModelNetwork({ agents: 4, gateways: 2, random: new SeededRandom(5), faults, gatewayFaults });
}

describe('model network', () => {
  it('keeps a direction FIFO: a frame never arrives before one sent earlier', () => {
    const net = network({ delayMsMin: 1, delayMsMax: 500 });
    let lastMs = 0;
    for (let t = 0; t < 200; t += 1) {
      assert.equal(net.send(Dir.toGateway, 0, 0, t), 1);
      assert.ok(net.arrivals[0]! >= lastMs && net.arrivals[0]! >= t + 1 && net.arrivals[0]! <= t + 500);
      lastMs = net.arrivals[0]!;
    }
    assert.deepEqual(net.stats, { sent: 200, delivered: 200, lost: 0, partitioned: 0, queueFull: 0, duplicated: 0, reordered: 0 });
  });

  it('loses, duplicates and holds back frames at their integer ratios, and the replay guard refuses the copies and the overtaken', () => {
    const net = network({ loss: { numerator: 1, denominator: 4 }, duplicate: { numerator: 1, denominator: 4 }, reorder: { numerator: 1, denominator: 4 }, delayMsMin: 10, delayMsMax: 10, reorderDelayMsMax: 1_000 });
    const arrivals: Array<{ atMs: number; seq: number }> = [];
    for (let t = 0; t < 4_000; t += 1) {
      const copies = net.send(Dir.toAgent, 1, 0, t * 10);
      for (let c = 0; c < copies; c += 1) arrivals.push({ atMs: net.arrivals[c]!, seq: net.seq });
    }
    const { lost, duplicated, reordered } = net.stats;
    assert.ok(lost > 800 && lost < 1_200, `lost ${lost}`);
    assert.ok(duplicated > 500 && duplicated < 1_000, `duplicated ${duplicated}`);
    assert.ok(reordered > 700 && reordered < 1_300, `reordered ${reordered}`);
    arrivals.sort((x, y) => x.atMs - y.atMs);
    const accepted = arrivals.filter((a) => net.acceptSeq(Dir.toAgent, 1, a.seq)).length;
    const unique = new Set(arrivals.map((a) => a.seq)).size;
    assert.ok(accepted < unique, 'frames overtaken by later ones are refused');
    assert.ok(accepted > 0.6 * unique);
  });

  it('drops every frame of a partitioned agent inside the window, and only there; heal removes partitions and faults', () => {
    const net = network({ delayMsMin: 3, delayMsMax: 3 });
    net.addPartition({ startMs: 100, endMs: 200, gateways: undefined, agents: Uint8Array.from([0, 1, 0, 0]) });
    assert.equal(net.send(Dir.toGateway, 1, 0, 150), 0);
    assert.equal(net.send(Dir.toGateway, 0, 0, 150), 1);
    assert.equal(net.send(Dir.toGateway, 1, 0, 99), 1);
    assert.equal(net.send(Dir.toGateway, 1, 0, 200), 1);
    assert.equal(net.stats.partitioned, 1);
    net.addPartition({ startMs: 0, endMs: 1_000, gateways: [1], agents: undefined });
    assert.equal(net.send(Dir.toAgent, 2, 1, 10), 0);
    assert.equal(net.send(Dir.toAgent, 2, 0, 10), 1);
    net.heal();
    assert.equal(net.send(Dir.toAgent, 2, 1, 10), 1);
    assert.equal(net.baseDelayMs(0), 1);
  });

  it('uses a gateway\'s own link faults over the defaults', () => {
    const net = network({ delayMsMin: 3, delayMsMax: 3 }, [undefined, { loss: { numerator: 1, denominator: 1 } }]);
    assert.equal(net.send(Dir.toGateway, 0, 0, 0), 1);
    assert.equal(net.arrivals[0], 3);
    assert.equal(net.send(Dir.toGateway, 0, 1, 0), 0);
  });

  it('delivers an orderly close after the frames in flight, a new link from sequence 1', () => {
    const net = network({ delayMsMin: 5, delayMsMax: 50 });
    net.send(Dir.toGateway, 3, 0, 0);
    const lastMs = net.arrivals[0]!;
    assert.equal(net.closeNoticeDueMs(Dir.toGateway, 3, 0, 0), Math.max(5, lastMs));
    net.openLink(3);
    net.send(Dir.toGateway, 3, 0, 100);
    assert.equal(net.seq, 1);
    assert.equal(net.acceptSeq(Dir.toGateway, 3, 1), true);
    assert.equal(net.acceptSeq(Dir.toGateway, 3, 1), false);
  });
});
