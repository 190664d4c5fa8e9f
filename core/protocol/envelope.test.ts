import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fc from 'fast-check';
import { SdcError } from '../errors/index.js';
import { base64urlFromBytes } from '../crypto/bytes.js';
import { createNobleEd25519Provider } from '../crypto/ed25519-noble.js';
import { canonicalBytes } from './canonical-json.js';
import {
  decodeEnvelope, encodeEnvelope, envelopeSigningInput, envelopeSigningPrefix, macAndEncodeEnvelope, macEnvelope, signAndEncodeEnvelope,
  signEnvelope, verifyEnvelope, verifyEnvelopeMac, type EnvelopeFields, type SignedEnvelope,
} from './envelope.js';
import { createNobleSessionKeyCrypto } from '../crypto/session-crypto-noble.js';
import { assertRefused } from '../errors/assert-refused.js';
import type { JsonObject } from './json-value.js';

// core tests use core's own provider; runtime/ed25519-providers.test.ts checks that node:crypto agrees.
const node = createNobleEd25519Provider();
const noble = createNobleEd25519Provider();
const seed = Uint8Array.from({ length: 32 }, (_, i) => 200 - i);
const publicKey = node.publicKeyFromSeed(seed);
const otherSeed = new Uint8Array(32).fill(9);
const kid = 'dev-0001.k1';
const resolveKey = (k: string) => (k === kid ? publicKey : undefined);
const utf8 = new TextEncoder();

const baseFields: EnvelopeFields = {
  v: 1, type: 'TELEMETRY', id: 'f_0001', device_id: 'dev-0001', session_id: 'sess_7f3a', seq: 17, ts: 1764000000000,
  body: { cpu_pct: 12.5, note: 'ok' },
};

function expectCode(code: string, field?: string) {
  return (error: unknown) => {
    assert.ok(SdcError.is(error), `expected SdcError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (field !== undefined) assert.equal(error.details.field, field);
    return true;
  };
}

function signed(fields: EnvelopeFields = baseFields): SignedEnvelope {
  return signEnvelope({ fields, kid, seed, provider: node });
}

/** What a receiver does with a frame: decode, then verify. */
function receive(frame: Uint8Array): SignedEnvelope {
  return verifyEnvelope({ envelope: decodeEnvelope(frame), resolveKey, provider: node });
}

const fieldsArbitrary: fc.Arbitrary<EnvelopeFields> = fc.record({
  v: fc.constant(1 as const),
  type: fc.stringMatching(/^[A-Z][A-Z0-9_]{0,20}$/),
  id: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
  device_id: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/),
  session_id: fc.stringMatching(/^[A-Za-z0-9_-]{0,64}$/),
  seq: fc.maxSafeNat(),
  ts: fc.maxSafeNat(),
  body: fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }) as fc.Arbitrary<JsonObject>,
});

describe('sign and verify', () => {
  test('round trip: whatever is signed decodes and verifies, and re-encodes to the same bytes (property)', () => {
    fc.assert(fc.property(fieldsArbitrary, (fields) => {
      const envelope = signed(fields);
      const frame = encodeEnvelope(envelope);
      const received = receive(frame);
      assert.deepEqual(encodeEnvelope(received), frame);
      assert.equal(received.sig.kid, kid);
    }), { numRuns: 300 });
  });

  test('the signature covers the domain prefix followed by the canonical signed fields', () => {
    const envelope = signed();
    const { sig: _sig, ...fields } = envelope;
    const input = envelopeSigningInput(fields);
    assert.deepEqual(input, new Uint8Array([...utf8.encode('sdc-envelope-v1\n'), ...canonicalBytes(fields)]));
    assert.equal(envelopeSigningPrefix, 'sdc-envelope-v1\n');
    // A signature over the bare canonical object (no prefix) is not an envelope signature.
    const bare = { ...envelope, sig: { ...envelope.sig, value: base64urlFromBytes(node.sign(seed, canonicalBytes(fields))) } };
    assert.throws(() => verifyEnvelope({ envelope: bare, resolveKey, provider: node }), expectCode('CRYPTO_SIGNATURE_INVALID'));
  });

  test('every signed field is covered: changing any one of them breaks the signature', () => {
    const envelope = signed();
    const changes: Partial<EnvelopeFields>[] = [
      { type: 'HEARTBEAT' }, { id: 'f_0002' }, { device_id: 'dev-0002' }, { session_id: 'sess_7f3b' },
      { seq: 18 }, { ts: 1764000000001 }, { body: { cpu_pct: 12.5, note: 'ok!' } },
    ];
    for (const change of changes) {
      assert.throws(() => verifyEnvelope({ envelope: { ...envelope, ...change }, resolveKey, provider: node }),
        expectCode('CRYPTO_SIGNATURE_INVALID'), JSON.stringify(change));
    }
  });

  test('unknown kid, wrong key, other alg and malformed signature text are refused with their codes', () => {
    const envelope = signed();
    assert.throws(() => verifyEnvelope({ envelope: { ...envelope, sig: { ...envelope.sig, kid: 'dev-0001.k2' } }, resolveKey, provider: node }),
      expectCode('CRYPTO_UNKNOWN_KID'));
    const otherKey = node.publicKeyFromSeed(otherSeed);
    assert.throws(() => verifyEnvelope({ envelope, resolveKey: () => otherKey, provider: node }), expectCode('CRYPTO_SIGNATURE_INVALID'));
    const forged = signEnvelope({ fields: baseFields, kid, seed: otherSeed, provider: node });
    assert.throws(() => verifyEnvelope({ envelope: forged, resolveKey, provider: node }), expectCode('CRYPTO_SIGNATURE_INVALID'));
    for (const alg of ['HS256', 'EdDSA', 'ed25519', 'none']) {
      const other = { ...envelope, sig: { ...envelope.sig, alg } } as unknown as SignedEnvelope;
      assert.throws(() => verifyEnvelope({ envelope: other, resolveKey, provider: node }), expectCode('CRYPTO_UNSUPPORTED_ALG'), alg);
      // Also through the wire path: decode lets the alg through, verify refuses it.
      assert.throws(() => receive(encodeEnvelope(other)), expectCode('CRYPTO_UNSUPPORTED_ALG'), alg);
    }
    for (const value of [envelope.sig.value + '==', envelope.sig.value.slice(1), envelope.sig.value.replace(/^./, '+'), '']) {
      assert.throws(() => verifyEnvelope({ envelope: { ...envelope, sig: { ...envelope.sig, value } }, resolveKey, provider: node }),
        expectCode('CRYPTO_BAD_SIGNATURE_ENCODING'), value);
    }
  });

  test('a public key of the wrong length from resolveKey is refused as a bad key', () => {
    assert.throws(() => verifyEnvelope({ envelope: signed(), resolveKey: () => new Uint8Array(31), provider: node }), expectCode('CRYPTO_BAD_KEY'));
  });

  test('signEnvelope refuses fields that decodeEnvelope would refuse', () => {
    assert.throws(() => signed({ ...baseFields, device_id: 'Dev-1' }), expectCode('PROTO_SCHEMA_INVALID', 'device_id'));
    assert.throws(() => signEnvelope({ fields: baseFields, kid: 'has space', seed, provider: node }), expectCode('PROTO_SCHEMA_INVALID', 'sig.kid'));
    assert.throws(() => signed({ ...baseFields, sig: {} } as unknown as EnvelopeFields), expectCode('PROTO_SCHEMA_INVALID', 'sig'));
  });

  test('node and noble interoperate on envelopes (property)', () => {
    fc.assert(fc.property(fieldsArbitrary, fc.uint8Array({ minLength: 32, maxLength: 32 }), (fields, keySeed) => {
      const key = node.publicKeyFromSeed(keySeed);
      const byNode = signEnvelope({ fields, kid, seed: keySeed, provider: node });
      const byNoble = signEnvelope({ fields, kid, seed: keySeed, provider: noble });
      assert.deepEqual(byNoble, byNode);
      verifyEnvelope({ envelope: byNode, resolveKey: () => key, provider: noble });
      verifyEnvelope({ envelope: byNoble, resolveKey: () => key, provider: node });
    }), { numRuns: 40 });
  });
});

describe('decodeEnvelope', () => {
  const frameOf = (value: unknown) => utf8.encode(JSON.stringify(value));
  const valid = (): Record<string, unknown> => JSON.parse(JSON.stringify(signed())) as Record<string, unknown>;

  test('a valid frame decodes, also from a string', () => {
    const envelope = signed();
    assert.deepEqual(decodeEnvelope(frameOf(envelope)), envelope);
    assert.deepEqual(decodeEnvelope(JSON.stringify(envelope)), envelope);
  });

  test('any version other than 1 is PROTO_UNSUPPORTED_VERSION', () => {
    for (const v of [0, 2, '1', 1.5, null]) {
      assert.throws(() => decodeEnvelope(frameOf({ ...valid(), v })), expectCode('PROTO_UNSUPPORTED_VERSION', 'v'), String(v));
    }
  });

  test('each malformed field is PROTO_SCHEMA_INVALID naming the field', () => {
    const cases: ReadonlyArray<readonly [string, (e: Record<string, unknown>) => void]> = [
      ['v', (e) => { delete e.v; }],
      ['type', (e) => { e.type = ''; }],
      ['type', (e) => { delete e.type; }],
      ['id', (e) => { e.id = ''; }],
      ['id', (e) => { e.id = 'a'.repeat(65); }],
      ['id', (e) => { e.id = 'a.b'; }],
      ['device_id', (e) => { e.device_id = 'Dev'; }],
      ['device_id', (e) => { e.device_id = '-dev'; }],
      ['device_id', (e) => { e.device_id = 'd'.repeat(65); }],
      ['session_id', (e) => { e.session_id = 's'.repeat(65); }],
      ['session_id', (e) => { e.session_id = 7; }],
      ['seq', (e) => { e.seq = -1; }],
      ['seq', (e) => { e.seq = 1.5; }],
      ['seq', (e) => { e.seq = 2 ** 53; }],
      ['ts', (e) => { e.ts = '1'; }],
      ['body', (e) => { e.body = []; }],
      ['body', (e) => { e.body = null; }],
      ['body', (e) => { e.body = 'x'; }],
      ['sig', (e) => { delete e.sig; }],
      ['sig', (e) => { e.sig = 'AAAA'; }],
      ['sig.alg', (e) => { (e.sig as Record<string, unknown>).alg = 1; }],
      ['sig.kid', (e) => { delete (e.sig as Record<string, unknown>).kid; }],
      ['sig.kid', (e) => { (e.sig as Record<string, unknown>).kid = 'a b'; }],
      ['sig.value', (e) => { (e.sig as Record<string, unknown>).value = 5; }],
      ['sig.extra', (e) => { (e.sig as Record<string, unknown>).extra = true; }],
      ['extra', (e) => { e.extra = 1; }],
    ];
    for (const [field, mutate] of cases) {
      const envelope = valid();
      mutate(envelope);
      assert.throws(() => decodeEnvelope(frameOf(envelope)), expectCode('PROTO_SCHEMA_INVALID', field), `${field}: ${JSON.stringify(envelope)}`);
    }
    assert.throws(() => decodeEnvelope(frameOf([1])), expectCode('PROTO_SCHEMA_INVALID', '(root)'));
  });

  test('parser refusals come through with their own codes, and limits apply', () => {
    assert.throws(() => decodeEnvelope(utf8.encode('{"v":1,')), expectCode('PROTO_JSON_SYNTAX'));
    assert.throws(() => decodeEnvelope(utf8.encode('{"v":1,"v":1}')), expectCode('PROTO_JSON_DUPLICATE_KEY'));
    const frame = encodeEnvelope(signed());
    assert.throws(() => decodeEnvelope(frame, { frameBytesMax: frame.length - 1 }), expectCode('PROTO_FRAME_TOO_LARGE'));
    assert.ok(decodeEnvelope(frame, { frameBytesMax: frame.length }));
  });
});

describe('tamper evidence', () => {
  /**
   * Flips one bit. The receiver must refuse the frame with a typed error (decode or signature),
   * unless the flipped text parses to exactly the same values: JSON allows `E` for `e` in an
   * exponent (`1e+21` -> `1E+21`), and a 17-digit number's last digit can change without changing
   * the double it denotes (`...562e-24` -> `...563e-24`). The signature covers the canonical
   * form, so such a frame verifies, and it carries exactly the signed content: its canonical
   * bytes are the original frame. No flip may ever change what the receiver accepts.
   */
  function assertFlipRefused(frame: Uint8Array, bit: number): 'refused' | 'same-content' {
    const tampered = frame.slice();
    tampered[bit >> 3]! ^= 1 << (bit & 7);
    let accepted: SignedEnvelope;
    try {
      accepted = receive(tampered);
    } catch (error) {
      assert.ok(SdcError.is(error), `bit ${bit}: untyped error ${String(error)}`);
      return 'refused';
    }
    assert.deepEqual(encodeEnvelope(accepted), frame, `bit ${bit} flipped and a different envelope was accepted: ${JSON.stringify(accepted)}`);
    return 'same-content';
  }

  test('every single-bit flip of one small frame is refused (exhaustive)', () => {
    const frame = encodeEnvelope(signed({ v: 1, type: 'HEARTBEAT', id: 'h1', device_id: 'd1', session_id: 's', seq: 1, ts: 2, body: {} }));
    assert.ok(receive(frame), 'the untampered frame is accepted');
    for (let bit = 0; bit < frame.length * 8; bit++) assert.equal(assertFlipRefused(frame, bit), 'refused', `bit ${bit}`);
  });

  test('in a frame with an exponent, the only accepted flip is e -> E, which changes nothing signed (exhaustive)', () => {
    // 1e21 is the only number, and has one significant digit, so no digit flip keeps its value.
    const frame = encodeEnvelope(signed({ v: 1, type: 'TELEMETRY', id: 't1', device_id: 'd1', session_id: 's', seq: 1, ts: 2, body: { n: 1e21 } }));
    assert.ok(new TextDecoder().decode(frame).includes('"n":1e+21'));
    const outcomes = new Map<string, number>();
    for (let bit = 0; bit < frame.length * 8; bit++) {
      const outcome = assertFlipRefused(frame, bit);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    assert.equal(outcomes.get('same-content'), 1);
    const frameText = new TextDecoder().decode(frame);
    const upper = utf8.encode(frameText.replace('1e+21', '1E+21'));
    assert.deepEqual(encodeEnvelope(receive(upper)), frame, 'the accepted flip is e -> E');
  });

  test('a single-bit flip anywhere in any signed frame is refused or changes nothing signed (property)', () => {
    fc.assert(fc.property(fieldsArbitrary, fc.nat(), (fields, position) => {
      const frame = encodeEnvelope(signed(fields));
      assertFlipRefused(frame, position % (frame.length * 8));
    }), { numRuns: 500 });
  });
});

describe('one canonicalisation per frame sent (issue 17)', () => {
  const sessionCrypto = createNobleSessionKeyCrypto();
  const macKey = new Uint8Array(32).fill(3);
  // Bodies with any well-formed UTF-16 (escapes, astral characters) and nesting, beside the envelope's own fields.
  const anyFields = fieldsArbitrary.chain((fields) => fc.dictionary(fc.string({ unit: 'binary', maxLength: 12 }), fc.jsonValue({ stringUnit: 'binary', maxDepth: 4 }), { maxKeys: 6 })
    .map((body) => ({ ...fields, body: body as JsonObject })));

  test('property: sign/MAC and encode in one give the bytes encodeEnvelope gives, over the signing input of the canonical fields', () => {
    fc.assert(fc.property(anyFields, (fields) => {
      const signedAndEncoded = signAndEncodeEnvelope({ fields, kid, seed, provider: node });
      assert.deepEqual(signedAndEncoded.envelope, signEnvelope({ fields, kid, seed, provider: node }));
      assert.deepEqual(signedAndEncoded.bytes, encodeEnvelope(signedAndEncoded.envelope));
      const macd = macAndEncodeEnvelope({ fields, key: macKey, crypto: sessionCrypto });
      assert.deepEqual(macd.envelope, macEnvelope({ fields, key: macKey, crypto: sessionCrypto }));
      assert.deepEqual(macd.bytes, encodeEnvelope(macd.envelope));
      assert.deepEqual(encodeEnvelope(verifyEnvelopeMac({ envelope: decodeEnvelope(macd.bytes), key: macKey, crypto: sessionCrypto })), macd.bytes);
      assert.deepEqual(envelopeSigningInput(fields), new Uint8Array([...utf8.encode(envelopeSigningPrefix), ...canonicalBytes(fields)]));
    }), { numRuns: 300 });
  });

  test('a body canonicalize refuses is refused with the same code and path as before: inside the envelope, under /body', () => {
    const nest = (depth: number): JsonObject => (depth === 1 ? { x: 0 } : { x: nest(depth - 1) });
    const refused = [[{ x: Number.NaN }, 'PROTO_JCS_NON_FINITE'], [{ x: 'a\udc00' }, 'PROTO_JCS_LONE_SURROGATE'], [nest(32), 'PROTO_JSON_TOO_DEEP']] as const;
    for (const [body, code] of refused) {
      const fields = { ...baseFields, body: body as unknown as JsonObject };
      const whole = assertRefused(() => canonicalBytes(fields), code);
      assert.match(String(whole.details.path), /^\/body\//);
      for (const run of [() => signAndEncodeEnvelope({ fields, kid, seed, provider: node }), () => macAndEncodeEnvelope({ fields, key: macKey, crypto: sessionCrypto }), () => envelopeSigningInput(fields)]) {
        assert.equal(assertRefused(run, code).details.path, whole.details.path);
      }
    }
    // 31 levels in the body is 32 in the envelope: still within the default depth.
    const deep = { ...baseFields, body: nest(31) };
    assert.deepEqual(signAndEncodeEnvelope({ fields: deep, kid, seed, provider: node }).bytes, encodeEnvelope(signEnvelope({ fields: deep, kid, seed, provider: node })));
  });
});
