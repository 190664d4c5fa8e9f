import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rssDifferencePerConnectionKib } from './connections.js';

describe('bench connections: memory per connection against the bare server', () => {
  it('is the difference of the two RSS figures per connection', () => {
    assert.equal(rssDifferencePerConnectionKib(58.5, 51), 7.5);
    assert.equal(rssDifferencePerConnectionKib(40, 44), -4, 'a gateway below the bare server is a figure too');
  });

  it('is no figure when either RSS fell between its readings (the goal is then not judged, never "met")', () => {
    assert.equal(rssDifferencePerConnectionKib(-12.4, 30), null);
    assert.equal(rssDifferencePerConnectionKib(30, -3), null);
    assert.equal(rssDifferencePerConnectionKib(0, 30), null);
    assert.equal(rssDifferencePerConnectionKib(Number.NaN, 30), null);
  });
});
