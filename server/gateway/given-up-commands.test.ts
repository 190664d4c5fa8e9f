import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GivenUpCommands } from './given-up-commands.js';

describe('the commands a gateway gave up on', () => {
  it('calls a copy stale until a newer retry or rememberMs, and forgets the oldest past entriesMax', () => {
    const givenUp = new GivenUpCommands({ entriesMax: 2, rememberMs: 1_000 });
    assert.equal(givenUp.isStale('c1', 0, 0), false, 'never given up');
    givenUp.remember('c1', 0, 100);
    assert.equal(givenUp.isStale('c1', 0, 1_099), true);
    assert.equal(givenUp.isStale('c1', 0, 1_100), false, 'remembered for rememberMs only');
    assert.equal(givenUp.size, 0);

    givenUp.remember('c2', 1, 0);
    assert.equal(givenUp.isStale('c2', 1, 10), true, 'a late copy of the retry given up');
    assert.equal(givenUp.isStale('c2', 0, 10), true, 'a late copy of the first dispatch');
    assert.equal(givenUp.isStale('c2', 2, 10), false, 'a newer retry is delivered');
    assert.equal(givenUp.isStale('c2', 1, 10), false, 'and clears the memory');

    givenUp.remember('a', 0, 0);
    givenUp.remember('b', 0, 0);
    givenUp.remember('a', 0, 1);
    givenUp.remember('c', 0, 2);
    assert.equal(givenUp.size, 2);
    assert.equal(givenUp.isStale('b', 0, 3), false, 'the oldest forgotten first (a was remembered again after b)');
    assert.equal(givenUp.isStale('a', 0, 3), true);
    assert.equal(givenUp.isStale('c', 0, 3), true);
  });
});
