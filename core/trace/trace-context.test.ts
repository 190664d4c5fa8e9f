import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SeededRandom } from '../random/prng.js';
import { childSpan, continueOrStart, formatTraceparent, parseTraceparent, startTrace } from './trace-context.js';

const example = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

test('parses the specification example and formats it back byte for byte', () => {
  const parsed = parseTraceparent(example);
  assert.deepEqual(parsed, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', flags: 1 });
  assert.equal(formatTraceparent(parsed!), example);
});

test('refuses what the specification says to ignore', () => {
  const bad = [
    undefined, 42, '', example.toUpperCase(),
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01', // zero trace id
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', // zero parent id
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', // forbidden version
    `${example}-extra`, // version 00 has exactly 55 characters
    '00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01', // misplaced dash
    '00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    `01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-${'x'.repeat(600)}`, // over the bound
  ];
  for (const value of bad) assert.equal(parseTraceparent(value), undefined, String(value));
});

test('a later version with extra fields is continued on its known part', () => {
  const parsed = parseTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-future');
  assert.equal(parsed?.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(parsed?.flags, 3);
});

test('a child span keeps trace id and flags and takes a new span id; an invalid parent starts a new trace', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 31 }), (seed) => {
    const random = new SeededRandom(seed);
    const root = startTrace(random);
    const text = formatTraceparent(root);
    assert.deepEqual(parseTraceparent(text), root);
    const child = childSpan(root, random);
    assert.equal(child.traceId, root.traceId);
    assert.equal(child.flags, root.flags);
    assert.notEqual(child.spanId, root.spanId);
    const continued = continueOrStart(text, random);
    assert.equal(continued.traceId, root.traceId);
    assert.notEqual(continueOrStart('garbage', random).traceId, root.traceId);
  }), { numRuns: 200 });
});

test('an all-zero random source is refused rather than producing an invalid id', () => {
  const zeros = { bytes: (n: number) => new Uint8Array(n), intBelow: () => 0 };
  assert.throws(() => startTrace(zeros), /only zero bytes/);
});
