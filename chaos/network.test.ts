import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualTime } from '../core/time/virtual-time.js';
import { SimNetwork, type LinkFaults } from './network.js';
import { SeededRandom } from '../core/random/prng.js';

function setup(faults: LinkFaults, seed = 1, queueFramesMax = 1024) {
  const time = new VirtualTime(0);
  const network = new SimNetwork({ clock: time, scheduler: time, random: new SeededRandom(seed), queueFramesMax });
  network.setFaults(faults);
  const link = network.connect('dev-1', 'gw-1');
  const atGateway: number[] = [];
  const atAgent: number[] = [];
  let gatewayClosed = -1;
  link.attach('to_gateway', { deliver: (bytes) => atGateway.push(decode(bytes)), closed: () => { gatewayClosed = time.nowMs(); } });
  link.attach('to_agent', { deliver: (bytes) => atAgent.push(decode(bytes)), closed: () => undefined });
  return { time, network, link, atGateway, atAgent, gatewayClosed: () => gatewayClosed };
}

const frames = (n: number) => Array.from({ length: n }, (_, i) => i);
function decode(bytes: Uint8Array): number { return bytes.length === 2 ? bytes[0]! * 256 + bytes[1]! : bytes[0]!; }
const frame = (i: number) => Uint8Array.of(i >> 8, i & 255);

describe('SimNetwork', () => {
  it('delivers in order within the delay bounds when nothing reorders', () => {
    const { time, link, atGateway } = setup({ delayMsMin: 5, delayMsMax: 50 });
    for (const i of frames(200)) link.send('to_gateway', frame(i));
    time.advance(4);
    assert.deepEqual(atGateway, [], 'nothing arrives before the minimum delay');
    time.advance(46);
    assert.deepEqual(atGateway, frames(200));
  });

  it('loses, duplicates and reorders frames at the configured ratios, and replays exactly from the seed', () => {
    const run = (seed: number) => {
      const s = setup({ loss: { numerator: 1, denominator: 4 }, duplicate: { numerator: 1, denominator: 10 }, reorder: { numerator: 1, denominator: 5 }, reorderDelayMsMax: 100 }, seed, 4096);
      for (const i of frames(2000)) s.link.send('to_gateway', frame(i));
      s.time.advance(1000);
      return { received: s.atGateway, stats: s.network.stats };
    };
    const a = run(7);
    assert.deepEqual(run(7), a, 'same seed, same deliveries');
    assert.notDeepEqual(run(8).received, a.received, 'another seed, other deliveries');
    assert.ok(a.stats.lost > 400 && a.stats.lost < 600, `lost ${a.stats.lost} of 2000 at 1/4`);
    assert.ok(a.stats.duplicated > 80 && a.stats.duplicated < 220, `duplicated ${a.stats.duplicated}`);
    assert.ok(a.stats.reordered > 200, `reordered ${a.stats.reordered}`);
    assert.equal(a.received.length, 2000 - a.stats.lost + a.stats.duplicated);
    assert.ok(a.received.some((value, i) => i > 0 && value < a.received[i - 1]!), 'some frame was overtaken');
  });

  it('drops frames during a partition only, and heal removes faults', () => {
    const { time, network, link, atGateway } = setup({});
    network.addPartition({ startMs: 10, endMs: 20, gatewayIds: ['gw-1'] });
    link.send('to_gateway', Uint8Array.of(1));
    time.advance(10);
    link.send('to_gateway', Uint8Array.of(2));
    time.advance(10);
    link.send('to_gateway', Uint8Array.of(3));
    time.advance(5);
    assert.deepEqual(atGateway, [1, 3]);
    assert.equal(network.stats.partitioned, 1);
    network.setFaults({ loss: { numerator: 1, denominator: 1 } });
    link.send('to_gateway', Uint8Array.of(4));
    network.heal();
    link.send('to_gateway', Uint8Array.of(5));
    time.advance(5);
    assert.deepEqual(atGateway, [1, 3, 5]);
  });

  it('bounds the frames in flight per direction', () => {
    const { time, network, link, atGateway } = setup({ delayMsMin: 10 }, 1, 3);
    for (const i of frames(5)) link.send('to_gateway', frame(i));
    time.advance(10);
    assert.deepEqual(atGateway, [0, 1, 2]);
    assert.equal(network.stats.queueFull, 2);
  });

  it('tells the peer of a close after the data in flight, and of an abort at once, dropping what was in flight', () => {
    const s = setup({ delayMsMin: 10, delayMsMax: 10 });
    s.link.send('to_gateway', Uint8Array.of(9));
    s.link.close('agent');
    s.link.send('to_gateway', Uint8Array.of(10));
    s.time.advance(20);
    assert.deepEqual(s.atGateway, [9]);
    assert.equal(s.gatewayClosed(), 10);
    assert.equal(s.network.openLinks, 0);

    const t = setup({ delayMsMin: 10, delayMsMax: 10 });
    t.link.send('to_agent', Uint8Array.of(1));
    t.link.abort('agent');
    t.time.advance(20);
    assert.deepEqual(t.atAgent, [], 'a crashed agent receives nothing');
    assert.equal(t.gatewayClosed(), 10);
  });

  it('refuses fault options that are not integer ratios', () => {
    const time = new VirtualTime(0);
    const network = new SimNetwork({ clock: time, scheduler: time, random: new SeededRandom(1) });
    assert.throws(() => network.setFaults({ loss: { numerator: 0.5, denominator: 1 } }), RangeError);
    assert.throws(() => network.setFaults({ loss: { numerator: 2, denominator: 1 } }), RangeError);
    assert.throws(() => network.setFaults({ delayMsMin: 5, delayMsMax: 1 }), RangeError);
  });
});
