import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Ev } from './events.js';
import { ModelTrace } from './trace.js';

describe('model trace', () => {
  it('folds every field of every event into the hash', () => {
    const digest = (events: Array<[number, number, number, number]>) => {
      const trace = new ModelTrace();
      for (const [t, kind, a, b] of events) trace.add(t, kind, a, b);
      return trace.digest();
    };
    const base: Array<[number, number, number, number]> = [[0, 1, 2, 3], [5, 4, 1, 0]];
    const same = digest(base);
    assert.equal(digest(base), same);
    assert.match(same, /^[0-9a-f]{16}$/);
    for (const changed of [[[1, 1, 2, 3], [5, 4, 1, 0]], [[0, 2, 2, 3], [5, 4, 1, 0]], [[0, 1, 3, 3], [5, 4, 1, 0]], [[0, 1, 2, 4], [5, 4, 1, 0]], [[5, 4, 1, 0], [0, 1, 2, 3]]] as const) {
      assert.notEqual(digest(changed.map((e) => [...e] as [number, number, number, number])), same);
    }
  });

  it('keeps the last events, oldest first, with their names', () => {
    const trace = new ModelTrace(3);
    for (let i = 0; i < 5; i += 1) trace.add(i * 10, Ev.connect, i, 0);
    assert.deepEqual(trace.recent(), ['20 connect 2 0', '30 connect 3 0', '40 connect 4 0']);
    assert.equal(trace.events, 5);
  });
});
