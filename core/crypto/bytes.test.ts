import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as fc from 'fast-check';
import { SdcError } from '../errors/index.js';
import { base64urlFromBytes, bytesFromBase64url, bytesFromHex, ensureBytes, hexFromBytes } from './bytes.js';

const opts = { code: 'CRYPTO_BAD_SIGNATURE_ENCODING', name: 'sig' } as const;
const isSigEncoding = (error: unknown) => SdcError.is(error, 'CRYPTO_BAD_SIGNATURE_ENCODING');

test('base64url matches node Buffer and round-trips', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
    const text = base64urlFromBytes(bytes);
    assert.equal(text, Buffer.from(bytes).toString('base64url'));
    assert.deepEqual(bytesFromBase64url(text, opts), bytes);
  }), { numRuns: 500 });
});

test('base64url decoding refuses padding, foreign characters, impossible lengths and non-canonical trailing bits', () => {
  for (const bad of ['AA==', 'AAA=', 'AA+A', 'AA/A', 'AA A', 'A', 'AAAAA', 'AB', 'AAB', 'Aé', 'AA\n']) {
    assert.throws(() => bytesFromBase64url(bad, opts), isSigEncoding, bad);
  }
  assert.deepEqual(bytesFromBase64url('AA', opts), Uint8Array.of(0));
  assert.deepEqual(bytesFromBase64url('AAE', opts), Uint8Array.of(0, 1));
  assert.deepEqual(bytesFromBase64url('', opts), new Uint8Array(0));
});

test('every byte string has exactly one accepted base64url text', () => {
  // Changing any one character to any other character yields a refusal or different bytes.
  fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 20 }), fc.nat(), fc.nat(63), (bytes, at, replacement) => {
    const text = base64urlFromBytes(bytes);
    const index = at % text.length;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const other = text.slice(0, index) + alphabet[replacement] + text.slice(index + 1);
    fc.pre(other !== text);
    let decoded: Uint8Array | undefined;
    try { decoded = bytesFromBase64url(other, opts); } catch (error) { assert.ok(isSigEncoding(error)); }
    if (decoded) assert.notDeepEqual(decoded, bytes);
  }), { numRuns: 1000 });
});

test('a length requirement is enforced', () => {
  assert.throws(() => bytesFromBase64url(base64urlFromBytes(new Uint8Array(63)), { ...opts, length: 64 }), isSigEncoding);
  assert.equal(bytesFromBase64url(base64urlFromBytes(new Uint8Array(64)), { ...opts, length: 64 }).length, 64);
});

test('hex round-trips and refuses odd lengths and non-hex', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
    assert.equal(hexFromBytes(bytes), Buffer.from(bytes).toString('hex'));
    assert.deepEqual(bytesFromHex(hexFromBytes(bytes), opts), bytes);
  }), { numRuns: 200 });
  assert.deepEqual(bytesFromHex('0aFF', opts), Uint8Array.of(10, 255));
  for (const bad of ['0', 'zz', '0x00', '00 ']) assert.throws(() => bytesFromHex(bad, opts), isSigEncoding, bad);
});

test('hex strings are flat: a kept 32-byte hash costs about 80 B of heap, not a rope of 32 cons cells (about 1.5 KB)', () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const count = 20_000;
  const digests = Array.from({ length: count }, (_, i) => Uint8Array.from({ length: 32 }, (_, j) => (i * 31 + j * 7) & 0xff));
  gc();
  const before = getHeapStatistics().used_heap_size;
  const kept = digests.map((bytes) => hexFromBytes(bytes));
  gc();
  const perString = (getHeapStatistics().used_heap_size - before) / count;
  assert.equal(kept.length, count);
  // A flat one-byte string of 64 characters is 80 B, plus the array slot; the rope was about 1,500 B.
  assert.ok(perString < 400, `${perString.toFixed(0)} B of heap per kept 32-byte hex string`);
});

test('ensureBytes checks type and length and throws the code it is given', () => {
  const key = new Uint8Array(32);
  assert.equal(ensureBytes('key', key, { code: 'CRYPTO_BAD_KEY', length: 32 }), key);
  assert.throws(() => ensureBytes('key', new Uint8Array(31), { code: 'CRYPTO_BAD_KEY', length: 32 }),
    (error: unknown) => SdcError.is(error, 'CRYPTO_BAD_KEY') && error.details.field === 'key' && error.details.actualBytes === 31);
  assert.throws(() => ensureBytes('key', [1, 2], { code: 'CRYPTO_BAD_KEY' }), (error: unknown) => SdcError.is(error, 'CRYPTO_BAD_KEY'));
  assert.throws(() => ensureBytes('sig', 'abc', { code: 'CRYPTO_BAD_SIGNATURE_ENCODING' }), isSigEncoding);
});
