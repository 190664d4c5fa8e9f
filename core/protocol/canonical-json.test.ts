import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertRefused } from '../errors/assert-refused.js';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { canonicalBytes, canonicalize, canonicalMembers } from './canonical-json.js';
import { parseStrictJson } from './strict-json.js';

const vectorDir = new URL('./vectors/rfc8785/', import.meta.url);
const readVector = (name: string): Buffer => readFileSync(new URL(name, vectorDir));

/** Rebuilds every object with its members inserted in a seeded random order. */
function reorderMembers(value: unknown, seed: { state: number }): unknown {
  if (Array.isArray(value)) return value.map((item) => reorderMembers(item, seed));
  if (value === null || typeof value !== 'object') return value;
  const names = Object.keys(value);
  for (let index = names.length - 1; index > 0; index--) {
    seed.state = (Math.imul(seed.state, 1103515245) + 12345) >>> 0;
    const other = seed.state % (index + 1);
    [names[index], names[other]] = [names[other] as string, names[index] as string];
  }
  const copy = {};
  for (const name of names) {
    // defineProperty so that a "__proto__" member stays a member.
    Object.defineProperty(copy, name, {
      value: reorderMembers((value as Record<string, unknown>)[name], seed), enumerable: true, writable: true, configurable: true,
    });
  }
  return copy;
}

test('RFC 8785 3.2.2 structure example canonicalizes to the published bytes', () => {
  const input = parseStrictJson(readVector('structure.input.json'));
  const expected = readVector('structure.expected.json');
  assert.equal(canonicalize(input), expected.toString('utf8'));
  assert.deepEqual(Buffer.from(canonicalBytes(input)), expected);
});

test('RFC 8785 3.2.3 sorting example orders members by UTF-16 code units', () => {
  const input = parseStrictJson(readVector('sorting.input.json')) as Record<string, string>;
  const canonical = canonicalize(input);
  assert.equal(canonical, readVector('sorting.expected.json').toString('utf8'));
  const order = readVector('sorting.expected-values.txt').toString('utf8').trimEnd().split('\n');
  // Read the order from the text: JS objects enumerate integer-like names ("1") first.
  assert.deepEqual([...canonical.matchAll(/:"([^"]*)"/g)].map((match) => match[1]), order);
});

test('RFC 8785 Appendix B number samples', () => {
  const rows = readVector('numbers.txt').toString('utf8').split('\n').filter((line) => line && !line.startsWith('#'));
  assert.equal(rows.length, 26);
  for (const row of rows) {
    const [hex, expected] = row.split(' ') as [string, string];
    const view = new DataView(new ArrayBuffer(8));
    view.setBigUint64(0, BigInt('0x' + hex));
    const value = view.getFloat64(0);
    if (expected === 'ERROR') assertRefused(() => canonicalize(value), 'PROTO_JCS_NON_FINITE');
    else assert.equal(canonicalize(value), expected, `IEEE-754 ${hex}`);
  }
});

test('ECMAScript Number::toString samples beyond the RFC table', () => {
  const samples: [number, string][] = [
    [1e-7, '1e-7'], [-1e-7, '-1e-7'], [1e21, '1e+21'], [1e20, '100000000000000000000'], [0.1, '0.1'],
    [-0, '0'], [5e-324, '5e-324'], [1.7976931348623157e308, '1.7976931348623157e+308'],
    [333333333.3333333, '333333333.3333333'], [123456789012345680000, '123456789012345680000'], [1.5e-9, '1.5e-9'],
  ];
  for (const [value, expected] of samples) assert.equal(canonicalize(value), expected);
  assert.equal(canonicalize([-0, { a: -0 }]), '[0,{"a":0}]');
});

test('strings escape only quote, backslash and C0 controls, with the JCS forms', () => {
  const controls = Array.from({ length: 0x20 }, (_, code) => String.fromCharCode(code)).join('');
  assert.equal(canonicalize(controls),
    '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f'
    + '\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f"');
  assert.equal(canonicalize('"\\/\u007f\u0080\u2028\u2029\ud83d\ude00é'), '"\\"\\\\/\u007f\u0080\u2028\u2029\ud83d\ude00é"');
  assert.equal(canonicalize({ 'a\nb': '\u001f' }), '{"a\\nb":"\\u001f"}');
  assert.deepEqual(canonicalBytes('€😀'), new Uint8Array([0x22, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0x22]));
});

test('no whitespace; arrays keep order; nested objects are sorted too', () => {
  assert.equal(canonicalize({ b: [3, 1, { z: null, a: true }], a: {} , '': []}), '{"":[],"a":{},"b":[3,1,{"a":true,"z":null}]}');
  assert.equal(canonicalize(Object.assign(Object.create(null) as object, { y: 1, x: 2 })), '{"x":2,"y":1}');
});

test('__proto__ as an own member is serialised like any other member', () => {
  const value = parseStrictJson('{"b":1,"__proto__":{"x":1}}');
  assert.equal(canonicalize(value), '{"__proto__":{"x":1},"b":1}');
});

test('refuses NaN and Infinity with PROTO_JCS_NON_FINITE', () => {
  for (const value of [NaN, Infinity, -Infinity]) assertRefused(() => canonicalize({ a: [value] }), 'PROTO_JCS_NON_FINITE');
  const error = assertRefused(() => canonicalize({ a: [1, NaN] }), 'PROTO_JCS_NON_FINITE');
  assert.equal(error.details.path, '/a/1');
});

test('refuses lone surrogates in strings and member names with PROTO_JCS_LONE_SURROGATE', () => {
  for (const bad of ['\ud800', 'a\udc00', '\ude00\ud83d', 'x\ud83d']) {
    assertRefused(() => canonicalize(bad), 'PROTO_JCS_LONE_SURROGATE');
    assertRefused(() => canonicalize({ [bad]: 1 }), 'PROTO_JCS_LONE_SURROGATE');
    assertRefused(() => canonicalBytes([bad]), 'PROTO_JCS_LONE_SURROGATE');
  }
});

test('refuses values without a JSON representation with PROTO_JCS_UNSUPPORTED_VALUE', () => {
  class Point { x = 1; }
  const accessor = Object.defineProperty({}, 'a', { get: () => 1, enumerable: true });
  const hidden = Object.defineProperty({}, 'a', { value: 1, enumerable: false });
  const extra = Object.assign([1], { note: 'x' });
  const unsupported: unknown[] = [
    undefined, () => 1, Symbol('s'), 10n, new Date(0), new Map(), new Set(), new Point(), new Uint8Array(1),
    // eslint-disable-next-line no-new-wrappers
    new String('s'), /re/, [1, , 3], extra, accessor, hidden, { [Symbol('k')]: 1 },
  ];
  for (const value of unsupported) {
    assertRefused(() => canonicalize(value), 'PROTO_JCS_UNSUPPORTED_VALUE');
    assertRefused(() => canonicalize({ nested: [value] }), 'PROTO_JCS_UNSUPPORTED_VALUE');
  }
  // An undefined member is refused, not dropped as JSON.stringify would.
  const error = assertRefused(() => canonicalize({ a: 1, b: undefined }), 'PROTO_JCS_UNSUPPORTED_VALUE');
  assert.equal(error.details.path, '/b');
  assertRefused(() => canonicalize([undefined]), 'PROTO_JCS_UNSUPPORTED_VALUE');
});

test('refuses cycles and excessive depth with PROTO_JSON_TOO_DEEP', () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  assertRefused(() => canonicalize(cyclic), 'PROTO_JSON_TOO_DEEP');
  const cyclicArray: unknown[] = [];
  cyclicArray.push([cyclicArray]);
  assertRefused(() => canonicalize(cyclicArray), 'PROTO_JSON_TOO_DEEP');

  const nest = (depth: number): unknown => (depth === 0 ? 0 : [nest(depth - 1)]);
  assert.equal(canonicalize(nest(32)), '['.repeat(32) + '0' + ']'.repeat(32));
  assertRefused(() => canonicalize(nest(33)), 'PROTO_JSON_TOO_DEEP');
  assert.equal(canonicalize(nest(3), { limits: { depthMax: 3 } }), '[[[0]]]');
  assertRefused(() => canonicalize(nest(4), { limits: { depthMax: 3 } }), 'PROTO_JSON_TOO_DEEP');
  // A shared (not cyclic) sub-object is fine.
  const shared = { k: 1 };
  assert.equal(canonicalize([shared, shared]), '[{"k":1},{"k":1}]');
  assertRefused(() => canonicalize(0, { limits: { depthMax: -1 } }), 'PROTO_INVALID_ARGUMENT');
});

const jsonValues = fc.jsonValue({ stringUnit: 'binary', maxDepth: 6 });

test('property: canonicalize is idempotent through the strict parser', () => {
  fc.assert(fc.property(jsonValues, (value) => {
    const once = canonicalize(value);
    assert.equal(canonicalize(parseStrictJson(once)), once);
  }), { numRuns: 500 });
});

test('property: canonical form does not depend on member insertion order', () => {
  fc.assert(fc.property(jsonValues, fc.nat(), (value, seed) => {
    assert.equal(canonicalize(reorderMembers(value, { state: seed })), canonicalize(value));
  }), { numRuns: 500 });
});

test('property: canonical text is valid JSON that JSON.parse reads back to the same canonical form', () => {
  fc.assert(fc.property(jsonValues, (value) => {
    const text = canonicalize(value);
    assert.equal(canonicalize(JSON.parse(text)), text);
    // For well-formed data JCS and JSON.stringify differ only in member order and number/escape forms,
    // never in content: parsing both gives the same canonical text.
    assert.equal(canonicalize(JSON.parse(JSON.stringify(value))), text);
  }), { numRuns: 500 });
});

test('property: canonicalMembers are the members canonicalize writes, joined in sorted order', () => {
  const objects = fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }), jsonValues, { maxKeys: 8 });
  fc.assert(fc.property(objects, (object) => {
    const names = Object.keys(object).sort();
    assert.equal(`{${canonicalMembers(object, names).join(',')}}`, canonicalize(object));
  }), { numRuns: 300 });
});

test('canonicalMembers refuses what canonicalize refuses inside the object, with the same code, path and depth', () => {
  const nest = (depth: number): unknown => (depth === 0 ? 0 : [nest(depth - 1)]);
  const refused = [
    [{ a: { b: Number.NaN } }, 'PROTO_JCS_NON_FINITE'], [{ a: [1, undefined] }, 'PROTO_JCS_UNSUPPORTED_VALUE'],
    [{ a: nest(32) }, 'PROTO_JSON_TOO_DEEP'], [{ a: 'x\ud800' }, 'PROTO_JCS_LONE_SURROGATE'],
  ] as const;
  for (const [object, code] of refused) {
    const whole = assertRefused(() => canonicalize(object), code);
    const members = assertRefused(() => canonicalMembers(object, ['a']), code);
    assert.equal(members.details.path, whole.details.path);
  }
  assert.equal(canonicalMembers({ a: nest(31) }, ['a'])[0], `"a":${canonicalize(nest(31))}`);
  // The object itself is an ancestor: a member that leads back to it is a cycle, as in canonicalize.
  const cyclic: Record<string, unknown> = { b: 1 };
  cyclic.a = { back: cyclic };
  assertRefused(() => canonicalMembers(cyclic, ['a']), 'PROTO_JSON_TOO_DEEP');
  assertRefused(() => canonicalMembers({}, ['missing']), 'PROTO_JCS_UNSUPPORTED_VALUE');
});
