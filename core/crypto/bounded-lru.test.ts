import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fc from 'fast-check';
import { BoundedLru } from './bounded-lru.js';

test('evicts the least recently used entry, and a get counts as a use', () => {
  const lru = new BoundedLru<string, number>(2);
  lru.set('a', 1);
  lru.set('b', 2);
  assert.equal(lru.get('a'), 1);
  lru.set('c', 3);
  assert.equal(lru.get('b'), undefined);
  assert.equal(lru.get('a'), 1);
  assert.equal(lru.get('c'), 3);
});

test('capacity 0 stores nothing', () => {
  const lru = new BoundedLru<string, number>(0);
  lru.set('a', 1);
  assert.equal(lru.get('a'), undefined);
  assert.equal(lru.size, 0);
});

test('never holds more than entriesMax, and agrees with a reference model', () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 5 }),
    fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 8 })), { maxLength: 60 }),
    (entriesMax, operations) => {
      const lru = new BoundedLru<number, number>(entriesMax);
      let model: number[] = []; // keys, least recent first
      for (const [isSet, key] of operations) {
        if (isSet) {
          lru.set(key, key * 10);
          model = model.filter((k) => k !== key);
          if (model.length >= entriesMax) model.shift();
          model.push(key);
        } else {
          const hit = model.includes(key);
          assert.equal(lru.get(key), hit ? key * 10 : undefined);
          if (hit) model = [...model.filter((k) => k !== key), key];
        }
        assert.ok(lru.size <= entriesMax);
        assert.equal(lru.size, model.length);
      }
    },
  ), { numRuns: 300 });
});

test('delete removes one entry, and the rest keep their use order (reference model with deletes)', () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 5 }),
    fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 8 })), { maxLength: 60 }),
    (entriesMax, operations) => {
      const lru = new BoundedLru<number, number>(entriesMax);
      let model: number[] = []; // keys, least recent first
      for (const [operation, key] of operations) {
        const hit = model.includes(key);
        if (operation === 0) {
          lru.set(key, key * 10);
          model = model.filter((k) => k !== key);
          if (model.length >= entriesMax) model.shift();
          model.push(key);
        } else if (operation === 1) {
          assert.equal(lru.get(key), hit ? key * 10 : undefined);
          if (hit) model = [...model.filter((k) => k !== key), key];
        } else {
          assert.equal(lru.delete(key), hit);
          model = model.filter((k) => k !== key);
        }
        assert.equal(lru.size, model.length);
      }
    },
  ), { numRuns: 300 });
});

test('after clear it is empty and evicts in use order again', () => {
  const lru = new BoundedLru<string, number>(2);
  lru.set('a', 1);
  lru.set('b', 2);
  lru.clear();
  assert.equal(lru.size, 0);
  assert.equal(lru.get('a'), undefined);
  lru.set('c', 3);
  lru.set('d', 4);
  assert.equal(lru.get('c'), 3);
  lru.set('e', 5);
  assert.equal(lru.get('d'), undefined);
  assert.deepEqual([lru.get('c'), lru.get('e'), lru.size], [3, 5, 2]);
});
