import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../errors/index.js';
import { canonicalize } from '../protocol/canonical-json.js';
import { canonicalBytes, encodeCanonical, parseTufJson, type TufJson } from './olpc-json.js';

const utf8 = new TextEncoder();
const parse = (text: string): TufJson => parseTufJson(utf8.encode(text));

test('writes the forms securesystemslib encode_canonical writes (its own test vectors)', () => {
  const vectors: ReadonlyArray<readonly [TufJson, string]> = [
    ['', '""'],
    [[1, 2, 3], '[1,2,3]'],
    [[], '[]'],
    [{}, '{}'],
    [{ A: [99] }, '{"A":[99]}'],
    [{ A: true }, '{"A":true}'],
    [{ B: false }, '{"B":false}'],
    [{ y: 2, x: 3 }, '{"x":3,"y":2}'],
    [{ x: 3, y: null }, '{"x":3,"y":null}'],
    ['"', '"\\""'],
    ['\\', '"\\\\"'],
    ['\\"', '"\\\\\\""'],
  ];
  for (const [value, expected] of vectors) assert.equal(encodeCanonical(value), expected);
});

test('escapes only quote and backslash: control characters and non-ASCII go out as themselves, unlike RFC 8785', () => {
  const value = { text: 'a\nb\u0000c\t\u00e9\u2028' };
  assert.equal(encodeCanonical(value), '{"text":"a\nb\u0000c\t\u00e9\u2028"}');
  assert.equal(canonicalize(value), '{"text":"a\\nb\\u0000c\\t\u00e9\u2028"}');
  assert.deepEqual([...canonicalBytes({ e: '\u00e9' })], [...utf8.encode('{"e":"é"}')]);
});

test('sorts member names by code point, as Python sorts str (RFC 8785 sorts by UTF-16 unit)', () => {
  // U+1F600 is a surrogate pair starting 0xD83D, which sorts before U+FF01 by UTF-16 unit but after it by code point.
  const value = { '\u{1F600}': 1, '\uFF01': 2, a: 3 };
  assert.equal(encodeCanonical(value), '{"a":3,"\uFF01":2,"\u{1F600}":1}');
  assert.equal(canonicalize(value), '{"a":3,"\u{1F600}":1,"\uFF01":2}');
});

test('refuses what encode_canonical refuses: floats, lone surrogates, non-JSON values', () => {
  for (const value of [1.5, Number.NaN, Infinity, 2 ** 53, '\ud800', { k: '\udc00x' }, undefined, new Date(0)] as unknown[]) {
    assert.throws(() => encodeCanonical(value as TufJson), (e) => SdcError.is(e, 'TUF_CANONICAL_UNSUPPORTED'), String(value));
  }
  assert.equal(encodeCanonical(-0), '0');
  assert.equal(encodeCanonical(['\u{1F600}']), '["\u{1F600}"]');
});

test('parses integers beyond 2^53 exactly and writes them back', () => {
  const value = parse('{"big": 123456789012345678901234567890, "small": -42}');
  assert.equal(encodeCanonical(value), '{"big":123456789012345678901234567890,"small":-42}');
});

test('parses to canonical form independent of layout, and keeps __proto__ as a member', () => {
  const value = parse(' {\n "b" : [ 1 , {"\\u0041":"\\n\\/"} ],\r\n\t"a":true, "__proto__": 1 } ');
  assert.equal(encodeCanonical(value), '{"__proto__":1,"a":true,"b":[1,{"A":"\n/"}]}');
});

test('refuses malformed metadata with TUF_METADATA_INVALID, never another exception', () => {
  const bad = [
    '', '{', '{"a":1,"a":2}', '[1.0]', '[1e3]', '[01]', '[-]', '{"a" 1}', '[1,]', '"\\ud800"', '"\\x"', '"a\nb"',
    '\ufeff{}', '{} x', 'tru', '[' .repeat(100) + ']'.repeat(100), 'NaN',
  ];
  for (const text of bad) {
    assert.throws(() => parse(text), (e) => SdcError.is(e, 'TUF_METADATA_INVALID'), JSON.stringify(text));
  }
  assert.throws(() => parseTufJson(new Uint8Array([0x22, 0xff, 0x22])), (e) => SdcError.is(e, 'TUF_METADATA_INVALID'));
});
