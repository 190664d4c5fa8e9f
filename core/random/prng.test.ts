import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SeededRandom } from './prng.js';

test('the same seed gives the same stream; different seeds differ', () => {
  const a = new SeededRandom(42);
  const b = new SeededRandom(42);
  const c = new SeededRandom(43);
  const draw = (r: SeededRandom) => Array.from({ length: 16 }, () => r.nextUint32());
  assert.deepEqual(draw(a), draw(b));
  assert.notDeepEqual(draw(new SeededRandom(42)), draw(c));
});

test('intBelow stays in range and chance is exact at its extremes', () => {
  fc.assert(fc.property(fc.nat(), fc.integer({ min: 1, max: 2 ** 32 }), (seed, bound) => {
    const r = new SeededRandom(seed);
    for (let i = 0; i < 20; i++) {
      const v = r.intBelow(bound);
      assert.ok(Number.isInteger(v) && v >= 0 && v < bound);
    }
    assert.equal(r.chance(0, 7), false);
    assert.equal(r.chance(7, 7), true);
  }), { numRuns: 300 });
});

test('intBelow is roughly uniform (chi-square over 10 buckets)', () => {
  const r = new SeededRandom(7);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 100_000; i++) counts[r.intBelow(10)] += 1;
  const chi = counts.reduce((s, c) => s + (c - 10_000) ** 2 / 10_000, 0);
  assert.ok(chi < 27.9, `chi-square ${chi} (p=0.001 critical value for 9 df is 27.9)`);
});

test('forks() gives pairwise different streams where plain forks hold twins, and the same draws where they do not', () => {
  // Seed 1's agents stream of the simulator (the fourth fork of the root): plain forks 19,950 and
  // 91,416 (1-based) are the same stream, as are two more pairs below 100,000.
  const agentsStream = (): SeededRandom => {
    const root = new SeededRandom(1);
    root.fork(); root.fork(); root.fork();
    return root.fork();
  };
  const firstDraws = (r: SeededRandom) => `${r.nextUint32()}:${r.nextUint32()}:${r.nextUint32()}`;
  const plain = agentsStream();
  const plainDraws = Array.from({ length: 100_000 }, () => firstDraws(plain.fork()));
  assert.equal(plainDraws[19_949], plainDraws[91_415]);
  assert.ok(new Set(plainDraws).size < 100_000);

  const distinct = agentsStream().forks(100_000).map(firstDraws);
  assert.equal(distinct.length, 100_000);
  assert.equal(new Set(distinct).size, 100_000);
  // Before the first twin both give the same forks, so small fleets keep their traces.
  assert.deepEqual(distinct.slice(0, 91_415), plainDraws.slice(0, 91_415));
  assert.deepEqual(agentsStream().forks(0), []);
  assert.throws(() => agentsStream().forks(-1), RangeError);
});
