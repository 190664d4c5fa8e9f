import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertRefused } from '../errors/assert-refused.js';
import fc from 'fast-check';
import { SdcError } from '../errors/index.js';
import { canonicalize } from './canonical-json.js';
import type { JsonValue } from './json-value.js';
import { defaultProtocolLimits } from './limits.js';
import { parseStrictJson } from './strict-json.js';

/**
 * Structural equality of JSON values: own enumerable members only, prototypes ignored (the parser
 * builds plain objects, fast-check may build null-prototype ones), numbers by Object.is (so -0 != 0).
 */
function jsonEquals(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' || typeof b === 'number') return Object.is(a, b);
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return a === b;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, index) => jsonEquals(item, b[index]));
  const namesA = Object.keys(a).sort();
  const namesB = Object.keys(b).sort();
  return namesA.length === namesB.length && namesA.every((name, index) => name === namesB[index]
    && jsonEquals((a as Record<string, unknown>)[name], (b as Record<string, unknown>)[name]));
}

/** JCS writes -0 as 0 (RFC 8785 3.2.2.3), so a round trip through it turns -0 into 0. */
function withoutNegativeZero(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(withoutNegativeZero);
  if (value === null || typeof value !== 'object') return value;
  const copy = {};
  for (const name of Object.keys(value)) {
    Object.defineProperty(copy, name, {
      value: withoutNegativeZero((value as Record<string, unknown>)[name]), enumerable: true, writable: true, configurable: true,
    });
  }
  return copy;
}

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

test('parses every JSON value type from bytes and strings', () => {
  const text = ' {"a": [1, -0.5e2, 0, -0, 1E+2, true, false, null], "b": {"c": "x\\u00e9\\ud83d\\ude00\\n\\/"}, "": ""} ';
  const expected = { a: [1, -50, 0, -0, 100, true, false, null], b: { c: 'xé😀\n/' }, '': '' };
  assert.ok(jsonEquals(parseStrictJson(text), expected));
  assert.ok(jsonEquals(parseStrictJson(utf8(text)), expected));
  assert.equal(parseStrictJson('"top"'), 'top');
  assert.equal(parseStrictJson('\t\r\n 42 \n'), 42);
  assert.ok(Object.is(parseStrictJson('-0'), -0));
  assert.equal(parseStrictJson('null'), null);
  assert.equal(Object.getPrototypeOf(parseStrictJson('{}')), Object.prototype);
});

test('__proto__ is an own member, never a prototype', () => {
  const parsed = parseStrictJson('{"__proto__": {"polluted": true}, "constructor": 1, "toString": 2}') as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
  assert.ok(Object.hasOwn(parsed, '__proto__'));
  assert.deepEqual(Object.keys(parsed), ['__proto__', 'constructor', 'toString']);
  assert.equal((parsed as { polluted?: unknown }).polluted, undefined);
  assert.equal(({} as { polluted?: unknown }).polluted, undefined);
  assert.equal(canonicalize(parsed), '{"__proto__":{"polluted":true},"constructor":1,"toString":2}');
  assertRefused(() => parseStrictJson('{"__proto__": 1, "__proto__": 2}'), 'PROTO_JSON_DUPLICATE_KEY');
  assertRefused(() => parseStrictJson('{"toString": 1, "toString": 2}'), 'PROTO_JSON_DUPLICATE_KEY');
});

test('members are own writable, enumerable, configurable data properties, made without a defineProperty call except for __proto__ (a runtime call per member cost the gateway about 2.5 % of its CPU per frame)', () => {
  const define = Object.defineProperty;
  const definedNames: PropertyKey[] = [];
  Object.defineProperty = ((target: object, name: PropertyKey, descriptor: PropertyDescriptor) => {
    definedNames.push(name);
    return define(target, name, descriptor);
  }) as typeof Object.defineProperty;
  let parsed: Record<string, unknown>;
  try {
    parsed = parseStrictJson('{"__proto__":{"a":1},"body":{"constructor":1,"0":2},"seq":3,"valueOf":[{"x":null}]}') as Record<string, unknown>;
  } finally {
    Object.defineProperty = define;
  }
  assert.deepEqual(definedNames, ['__proto__']);
  for (const [object, name] of [[parsed, '__proto__'], [parsed, 'seq'], [parsed, 'valueOf'], [parsed.body, 'constructor'], [parsed.body, '0']] as const) {
    assert.deepEqual(Object.getOwnPropertyDescriptor(object, name), { value: (object as Record<string, unknown>)[name], writable: true, enumerable: true, configurable: true });
  }
  assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
  assert.equal(canonicalize(parsed as JsonValue), '{"__proto__":{"a":1},"body":{"0":2,"constructor":1},"seq":3,"valueOf":[{"x":null}]}');
});

test('PROTO_FRAME_TOO_LARGE: byte length checked before decoding', () => {
  const limits = { frameBytesMax: 8 };
  assert.equal(parseStrictJson('"123456"', limits), '123456');
  assertRefused(() => parseStrictJson('"1234567"', limits), 'PROTO_FRAME_TOO_LARGE');
  // Counted in UTF-8 bytes, not characters: "éé" is 6 bytes with quotes, "ééé" 8, "éééé" 10.
  assert.equal(parseStrictJson('"ééé"', limits), 'ééé');
  assertRefused(() => parseStrictJson('"éééé"', limits), 'PROTO_FRAME_TOO_LARGE');
  assertRefused(() => parseStrictJson(utf8('"éééé"'), limits), 'PROTO_FRAME_TOO_LARGE');
  // Invalid UTF-8 that is also too large is refused for its size: nothing is decoded.
  assertRefused(() => parseStrictJson(new Uint8Array(9).fill(0xff), limits), 'PROTO_FRAME_TOO_LARGE');
  assertRefused(() => parseStrictJson(new Uint8Array(defaultProtocolLimits.frameBytesMax + 1).fill(0x20)), 'PROTO_FRAME_TOO_LARGE');
});

test('PROTO_NOT_UTF8: invalid UTF-8 bytes and text without a UTF-8 encoding', () => {
  for (const bytes of [[0xff], [0x22, 0xc3, 0x22], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80]]) {
    assertRefused(() => parseStrictJson(new Uint8Array(bytes)), 'PROTO_NOT_UTF8');
  }
  const error = assertRefused(() => parseStrictJson('["\ud800"]'), 'PROTO_NOT_UTF8');
  assert.equal(error.details.offsetChars, 2);
});

test('PROTO_JSON_SYNTAX: malformed input, trailing data, BOM, with offsets', () => {
  const malformed = [
    '', ' ', '{', '[', '[1,]', '{"a":1,}', '{"a"}', '{a:1}', "{'a':1}", '01', '1.', '.5', '+1', '1e', '1e+', '-',
    'NaN', 'Infinity', 'tru', 'nul', 'True', '"abc', '"\\x"', '"\\u12"', '"\\u12G4"', '"a\tb"', '"a\nb"', '[1 2]',
    '{"a" 1}', '{"a":1 "b":2}', '1 2', '[]]', '{}x', '/* c */1', '[1,,2]', '"\u0000"', '\u00a01', '\u20281',
  ];
  for (const text of malformed) assertRefused(() => parseStrictJson(text), 'PROTO_JSON_SYNTAX');
  const trailing = assertRefused(() => parseStrictJson('{"a":1} x'), 'PROTO_JSON_SYNTAX');
  assert.equal(trailing.details.offsetChars, 8);
  const bom = assertRefused(() => parseStrictJson(new Uint8Array([0xef, 0xbb, 0xbf, 0x31])), 'PROTO_JSON_SYNTAX');
  assert.equal(bom.details.offsetBytes, 0);
  assertRefused(() => parseStrictJson('\ufeff1'), 'PROTO_JSON_SYNTAX');
  // Offsets count UTF-16 code units and UTF-8 bytes separately.
  const offset = assertRefused(() => parseStrictJson('["é😀", x]'), 'PROTO_JSON_SYNTAX');
  assert.equal(offset.details.offsetChars, 8);
  assert.equal(offset.details.offsetBytes, 11);
});

test('PROTO_JSON_DUPLICATE_KEY: including names equal only after unescaping', () => {
  assertRefused(() => parseStrictJson('{"a":1,"a":1}'), 'PROTO_JSON_DUPLICATE_KEY');
  assertRefused(() => parseStrictJson('{"a":1,"b":{"c":1},"\\u0061":2}'), 'PROTO_JSON_DUPLICATE_KEY');
  assert.ok(jsonEquals(parseStrictJson('{"a":{"a":1},"b":[{"a":1},{"a":2}]}'), { a: { a: 1 }, b: [{ a: 1 }, { a: 2 }] }));
});

test('PROTO_JSON_DUPLICATE_KEY: a duplicate after a canonical prefix, at any depth and position, is refused', () => {
  // The parser skips the own-property lookup while the names so far rose strictly (a duplicate
  // cannot be among them); each of these breaks the rise exactly at the duplicate or before it.
  assertRefused(() => parseStrictJson('{"a":1,"b":2,"c":3,"c":4}'), 'PROTO_JSON_DUPLICATE_KEY');
  assertRefused(() => parseStrictJson('{"a":1,"b":{"x":1,"y":2,"y":3},"c":3}'), 'PROTO_JSON_DUPLICATE_KEY');
  assertRefused(() => parseStrictJson('{"b":1,"a":2,"b":3}'), 'PROTO_JSON_DUPLICATE_KEY');
  assertRefused(() => parseStrictJson('{"a":1, "b":2,"a":3}'), 'PROTO_JSON_DUPLICATE_KEY');
  assertRefused(() => parseStrictJson('[{"a":1},{"a":1,"a":2}]'), 'PROTO_JSON_DUPLICATE_KEY');
});

test('property: a canonical object with any member written twice is refused', () => {
  const objects = fc.dictionary(fc.string({ unit: 'binary', maxLength: 4 }), fc.jsonValue({ maxDepth: 2 }), { minKeys: 1, maxKeys: 8 });
  fc.assert(fc.property(objects, fc.nat(), fc.nat(), (object, pick, at) => {
    const members = Object.keys(object).sort().map((name) => canonicalize({ [name]: object[name] }).slice(1, -1));
    const duplicate = members[pick % members.length]!;
    members.splice(at % (members.length + 1), 0, duplicate);
    assertRefused(() => parseStrictJson(`{${members.join(',')}}`), 'PROTO_JSON_DUPLICATE_KEY');
  }), { numRuns: 500 });
});

test('a canonical document costs no own-property lookup per member name; a non-canonical one does', () => {
  const hasOwn = Object.hasOwn;
  let lookups = 0;
  Object.hasOwn = (object, name) => {
    lookups += 1;
    return hasOwn(object, name);
  };
  try {
    parseStrictJson('{"a":1,"b":{"c":2,"d":[{"e":3,"f":4}]},"g":"h"}');
    assert.equal(lookups, 0);
    parseStrictJson('{"b":1,"a":{"c":2,"d":3}}');
    assert.equal(lookups, 3);
  } finally {
    Object.hasOwn = hasOwn;
  }
});

test('PROTO_JSON_TOO_DEEP: checked before descending; no stack overflow for any nesting', () => {
  assert.equal(canonicalize(parseStrictJson('['.repeat(32) + ']'.repeat(32))), '['.repeat(32) + ']'.repeat(32));
  assertRefused(() => parseStrictJson('['.repeat(33) + ']'.repeat(33)), 'PROTO_JSON_TOO_DEEP');
  assertRefused(() => parseStrictJson('{"a":'.repeat(33) + '1' + '}'.repeat(33)), 'PROTO_JSON_TOO_DEEP');
  assertRefused(() => parseStrictJson('['.repeat(60_000)), 'PROTO_JSON_TOO_DEEP');
  assertRefused(() => parseStrictJson('[1]', { depthMax: 0 }), 'PROTO_JSON_TOO_DEEP');
  // The parser is iterative: a caller may allow very deep documents without risking the stack.
  const deep = '['.repeat(200_000) + ']'.repeat(200_000);
  let value = parseStrictJson(deep, { depthMax: 200_000, frameBytesMax: deep.length });
  for (let depth = 0; depth < 200_000; depth++) value = (value as JsonValue[])[0] ?? null;
  assert.equal(value, null);
});

test('PROTO_STRING_TOO_LONG, PROTO_ARRAY_TOO_LONG, PROTO_OBJECT_TOO_WIDE at their exact limits', () => {
  const limits = { stringLengthMax: 4, arrayLengthMax: 3, objectMembersMax: 2 };
  assert.equal(parseStrictJson('"abcd"', limits), 'abcd');
  assert.equal(parseStrictJson('"\\u0061\\ud83d\\ude00b"', limits), 'a😀b'); // decoded length counts
  assertRefused(() => parseStrictJson('"abcde"', limits), 'PROTO_STRING_TOO_LONG');
  assertRefused(() => parseStrictJson('{"abcde":1}', limits), 'PROTO_STRING_TOO_LONG');
  assert.ok(jsonEquals(parseStrictJson('[1,2,3]', limits), [1, 2, 3]));
  assertRefused(() => parseStrictJson('[1,2,3,4]', limits), 'PROTO_ARRAY_TOO_LONG');
  assert.ok(jsonEquals(parseStrictJson('{"a":1,"b":2}', limits), { a: 1, b: 2 }));
  assertRefused(() => parseStrictJson('{"a":1,"b":2,"c":3}', limits), 'PROTO_OBJECT_TOO_WIDE');
  assertRefused(() => parseStrictJson(`"${'x'.repeat(16_385)}"`), 'PROTO_STRING_TOO_LONG');
  assertRefused(() => parseStrictJson(`[${'0,'.repeat(4_096)}0]`), 'PROTO_ARRAY_TOO_LONG');
  assertRefused(() => parseStrictJson('{' + Array.from({ length: 257 }, (_, i) => `"k${i}":0`).join(',') + '}'),
    'PROTO_OBJECT_TOO_WIDE');
  assertRefused(() => parseStrictJson('1', { depthMax: -1 }), 'PROTO_INVALID_ARGUMENT');
});

test('PROTO_JCS_NON_FINITE: numbers that overflow a double', () => {
  for (const text of ['1e309', '-1e309', '[1.8e308]', `${'9'.repeat(400)}`]) {
    assertRefused(() => parseStrictJson(text), 'PROTO_JCS_NON_FINITE');
  }
  assert.equal(parseStrictJson('1.7976931348623157e308'), Number.MAX_VALUE);
  assert.equal(parseStrictJson('1e-400'), 0); // underflow rounds to zero, as IEEE-754 and JSON.parse do
});

test('PROTO_JCS_LONE_SURROGATE: escapes that do not form a pair', () => {
  for (const text of ['"\\ud800"', '"\\udc00"', '"\\ud83d\\u0041"', '"\\ude00\\ud83d"', '{"\\ud800":1}', '"\\ud83dx"']) {
    assertRefused(() => parseStrictJson(text), 'PROTO_JCS_LONE_SURROGATE');
  }
  assert.equal(parseStrictJson('"\\uD83D\\uDE00"'), '😀');
});

const jsonValues = fc.jsonValue({ stringUnit: 'binary', maxDepth: 6 });

test('property: parseStrictJson(canonicalize(x)) equals x (with -0 as 0)', () => {
  fc.assert(fc.property(jsonValues, (value) => {
    assert.ok(jsonEquals(parseStrictJson(canonicalize(value)), withoutNegativeZero(value)));
  }), { numRuns: 500 });
});

test('property: agrees with JSON.parse on valid JSON without duplicate names', () => {
  fc.assert(fc.property(jsonValues, fc.constantFrom(undefined, 1, '\t'), (value, indent) => {
    const text = JSON.stringify(value, null, indent);
    assert.ok(jsonEquals(parseStrictJson(text), JSON.parse(text)));
    assert.ok(jsonEquals(parseStrictJson(utf8(text)), JSON.parse(text)));
  }), { numRuns: 500 });
});

/** Fragments that make random strings look like JSON, to reach deep into the parser. */
const jsonish = fc.string({
  unit: fc.constantFrom('[', ']', '{', '}', ',', ':', '"', '\\', 'u', 'd83d', 'dc00', '00', '0', '1', '-', 'e', '+', '.',
    'true', 'null', 'false', ' ', '\n', 'a', '"k"', '\\"', '\ufeff', 'é', '😀', '\u0001'),
  maxLength: 40,
});

/** Valid JSON with one random edit: mostly near-misses. */
const nearlyJson = fc.tuple(fc.json({ maxDepth: 4 }), fc.nat(), fc.constantFrom('', ',', '"', '[', '}', '\\', '1', ' ')).map(
  ([text, at, insert]) => {
    const index = at % (text.length + 1);
    return text.slice(0, index) + insert + text.slice(index + (insert === '' ? 1 : 0));
  });

/** The parser accepts only what JSON.parse accepts, and then agrees with it; anything else is an SdcError. */
function checkAgainstJsonParse(text: string): void {
  let ours: unknown;
  try {
    ours = parseStrictJson(text);
  } catch (error) {
    assert.ok(error instanceof SdcError, `non-SdcError for ${JSON.stringify(text)}: ${String(error)}`);
    return;
  }
  assert.ok(jsonEquals(ours, JSON.parse(text)), `disagrees with JSON.parse on ${JSON.stringify(text)}`);
}

test('property: arbitrary and near-JSON strings give JSON.parse\'s result or an SdcError', () => {
  fc.assert(fc.property(fc.oneof(jsonish, nearlyJson, fc.string({ unit: 'binary' })), checkAgainstJsonParse), { numRuns: 1000 });
});

test('property: arbitrary bytes never throw anything but SdcError', () => {
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), jsonish.map(utf8)), (bytes) => {
    try {
      parseStrictJson(bytes, { depthMax: 4, stringLengthMax: 8, arrayLengthMax: 4, objectMembersMax: 2 });
    } catch (error) {
      assert.ok(error instanceof SdcError, String(error));
    }
  }), { numRuns: 1000 });
});
