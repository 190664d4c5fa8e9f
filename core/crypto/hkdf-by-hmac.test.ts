import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesFromHex, hexFromBytes } from './bytes.js';
import { hkdfSha256ByHmac, type HmacSha256 } from './hkdf-by-hmac.js';

const hex = (text: string) => bytesFromHex(text, { code: 'PROTO_INVALID_ARGUMENT', name: 'vector' });
const nobleHmac: HmacSha256 = (key, message) => hmac(sha256, key, message);

/** RFC 5869 appendix A, the SHA-256 cases 1 to 3. */
const vectors = [
  {
    name: 'case 1 (basic)', ikm: '0b'.repeat(22), salt: '000102030405060708090a0b0c', info: 'f0f1f2f3f4f5f6f7f8f9', length: 42,
    okm: '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
  },
  {
    name: 'case 2 (longer inputs, three blocks)',
    ikm: Array.from({ length: 80 }, (_, i) => i.toString(16).padStart(2, '0')).join(''),
    salt: Array.from({ length: 80 }, (_, i) => (0x60 + i).toString(16).padStart(2, '0')).join(''),
    info: Array.from({ length: 80 }, (_, i) => (0xb0 + i).toString(16).padStart(2, '0')).join(''),
    length: 82,
    okm: 'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87',
  },
  {
    name: 'case 3 (empty salt and info)', ikm: '0b'.repeat(22), salt: '', info: '', length: 42,
    okm: '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
  },
];

describe('HKDF-SHA256 as its HMACs (core, the HMAC a parameter)', () => {
  for (const vector of vectors) {
    it(`gives RFC 5869's ${vector.name}`, () => {
      const okm = hkdfSha256ByHmac(nobleHmac, { ikm: hex(vector.ikm), salt: hex(vector.salt), info: hex(vector.info), length: vector.length });
      assert.equal(hexFromBytes(okm), vector.okm);
    });
  }

  it('calls the HMAC once for the PRK and once per 32-byte block, in that order, and a prefix of a longer output is the shorter one', () => {
    const calls: number[] = [];
    const counting: HmacSha256 = (key, message) => { calls.push(message.length); return nobleHmac(key, message); };
    const input = { ikm: hex('0b'.repeat(22)), salt: hex('000102030405060708090a0b0c'), info: hex('f0f1f2f3f4f5f6f7f8f9') };
    const long = hkdfSha256ByHmac(counting, { ...input, length: 65 });
    // PRK over the 22-byte ikm; T(1) over info || 1 (11 bytes); T(2), T(3) over T(n-1) || info || n (43 bytes).
    assert.deepEqual(calls, [22, 11, 43, 43]);
    assert.deepEqual(hkdfSha256ByHmac(nobleHmac, { ...input, length: 33 }), long.subarray(0, 33));
    assert.deepEqual(hkdfSha256ByHmac(nobleHmac, { ...input, length: 32 }), long.subarray(0, 32));
  });
});
