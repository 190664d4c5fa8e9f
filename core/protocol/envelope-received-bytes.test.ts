import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fc from 'fast-check';
import { createNobleEd25519Provider } from '../crypto/ed25519-noble.js';
import { createNobleSessionKeyCrypto } from '../crypto/session-crypto-noble.js';
import { assertRefused } from '../errors/assert-refused.js';
import { decodeEnvelopeForVerify, envelopeSigningInput, macAndEncodeEnvelope, signAndEncodeEnvelope, type EnvelopeFields } from './envelope.js';
import type { JsonObject } from './json-value.js';
import { parseStrictJsonWithForm } from './strict-json.js';
import { decodeAndVerify, decodeAndVerifyFrame } from './session/codec.js';
import type { SessionMacKeys } from './session/session-mac.js';

// Issue 17: a receiver takes a canonical frame's signing input from the bytes it received
// (without `,"sig":{...}`) instead of writing the fields out again. These tests hold it to
// exactly envelopeSigningInput, and keep every other frame on the old path.
const provider = createNobleEd25519Provider();
const crypto = createNobleSessionKeyCrypto();
const seed = Uint8Array.from({ length: 32 }, (_, i) => 7 + i);
const kid = 'dev-0001.k1';
const macKey = new Uint8Array(32).fill(5);
const utf8 = new TextEncoder();
const text = new TextDecoder();

const fieldsWith = (body: JsonObject, seq = 17): EnvelopeFields => ({
  v: 1, type: 'TELEMETRY', id: 'f_0001', device_id: 'dev-0001', session_id: 'sess_7f3a', seq, ts: 1764000000000, body,
});

describe('strict JSON: canonical form and a member range, proved while parsing', () => {
  test('canonical only without whitespace, in member order, with Number::toString numbers and no escapes', () => {
    const canonical = (input: string) => parseStrictJsonWithForm(utf8.encode(input), 'sig').canonical;
    assert.equal(canonical('{"a":1,"b":[true,null,"x"],"c":{"d":-2.5}}'), true);
    for (const input of ['{"b":1,"a":2}', '{"a":1,"a0":2,"A":3}', '{"a":1.0}', '{"a":1e2}', '{"a":-0}', '{"a":0.10}', '{"a": 1}', ' {"a":1}', '{"a":1}\n', '{"a":"\\u0041"}', '{"a":"\\n"}']) {
      assert.equal(canonical(input), false, input);
    }
    // UTF-16 order, as canonicalize sorts: U+FB01 (one unit) after U+1F600 (a surrogate pair, 0xD83D first).
    assert.equal(canonical('{"\u{1F600}":1,"\uFB01":2}'), true);
    assert.equal(canonical('{"\uFB01":1,"\u{1F600}":2}'), false);
  });

  test('gives the byte range of `,"sig":value` at the top level only, in bytes past non-ASCII text', () => {
    const input = '{"a":{"sig":1},"body":"é\u{1F600}","sig":{"k":"v"},"z":0}';
    const bytes = utf8.encode(input);
    const { memberBytes } = parseStrictJsonWithForm(bytes, 'sig');
    assert.ok(memberBytes);
    assert.equal(text.decode(bytes.subarray(memberBytes.start, memberBytes.end)), ',"sig":{"k":"v"}');
    assert.equal(parseStrictJsonWithForm(utf8.encode('{"sig":1,"z":0}'), 'sig').memberBytes, undefined, 'not after a comma: no range');
    assert.equal(parseStrictJsonWithForm(utf8.encode('{"a":0, "sig":1}'), 'sig').memberBytes, undefined, 'not canonical: no range');
  });
});

describe('decodeEnvelopeForVerify: the signing input of a canonical frame is its bytes less sig', () => {
  test('equals envelopeSigningInput for signed and MAC\'d frames of any body', () => {
    fc.assert(fc.property(fc.dictionary(fc.string({ unit: 'grapheme' }), fc.jsonValue({ maxDepth: 3 })), fc.boolean(), (body, signed) => {
      const fields = fieldsWith(body as JsonObject);
      const { bytes } = signed ? signAndEncodeEnvelope({ fields, kid, seed, provider }) : macAndEncodeEnvelope({ fields, key: macKey, crypto });
      const { envelope, signingInput } = decodeEnvelopeForVerify(bytes);
      // A string with an escape is canonical too but not proved so: such frames keep the old path.
      if (signingInput === undefined) return /\\/.test(text.decode(bytes));
      assert.deepEqual(signingInput, envelopeSigningInput(envelope));
      return true;
    }), { numRuns: 500 });
  });

  test('is taken from the bytes for an ordinary frame, non-ASCII body included', () => {
    const { bytes } = macAndEncodeEnvelope({ fields: fieldsWith({ cpu_pct: 12.5, note: 'café ☕', list: [1, 2e-7, 1e21] }), key: macKey, crypto });
    const { envelope, signingInput } = decodeEnvelopeForVerify(bytes);
    assert.ok(signingInput !== undefined);
    assert.deepEqual(signingInput, envelopeSigningInput(envelope));
  });

  test('the frame\'s text comes back as the parser decoded it, for a forwarder (canonical or not, non-ASCII included)', () => {
    const mac: SessionMacKeys = { send: macKey, receive: macKey, crypto };
    const { bytes } = macAndEncodeEnvelope({ fields: fieldsWith({ cpu_pct: 12.5, note: 'café ☕' }), key: macKey, crypto });
    const spaced = utf8.encode(text.decode(bytes).replace('"seq":17', '"seq": 17'));
    for (const frame of [bytes, spaced]) {
      const decoded = decodeAndVerifyFrame({ bytes: frame, expectDeviceId: 'dev-0001', expectSessionId: 'sess_7f3a', resolveKey: () => undefined, provider, mac });
      assert.equal(decoded.text, text.decode(frame));
      assert.equal(decoded.envelope.id, 'f_0001');
      assert.equal(decodeEnvelopeForVerify(frame).text, text.decode(frame));
    }
  });

  test('a frame MAC\'d over its canonical fields but sent in another form is verified as before; a changed byte is refused', () => {
    const mac: SessionMacKeys = { send: macKey, receive: macKey, crypto };
    const verify = (bytes: Uint8Array) => decodeAndVerify({ bytes, expectDeviceId: 'dev-0001', expectSessionId: 'sess_7f3a', resolveKey: () => undefined, provider, mac });
    const { bytes, envelope } = macAndEncodeEnvelope({ fields: fieldsWith({ cpu_pct: 12.5, note: 'ok' }), key: macKey, crypto });
    assert.equal(verify(bytes).id, 'f_0001');
    const canonicalText = text.decode(bytes);
    const variants = [
      canonicalText.replace('"seq":17', '"seq": 17'),
      canonicalText.replace('"cpu_pct":12.5', '"cpu_pct":125e-1'),
      canonicalText.replace('"note":"ok"', '"note":"\\u006fk"'),
      JSON.stringify({ ...envelope, body: { note: 'ok', cpu_pct: 12.5 } }),
    ];
    for (const variant of variants) {
      assert.equal(decodeEnvelopeForVerify(utf8.encode(variant)).signingInput, undefined, variant);
      assert.equal(verify(utf8.encode(variant)).id, 'f_0001', variant);
    }
    assertRefused(() => verify(utf8.encode(canonicalText.replace('"note":"ok"', '"note":"ko"'))), 'CRYPTO_SIGNATURE_INVALID');
    assertRefused(() => verify(utf8.encode(canonicalText.replace('"seq":17', '"seq":18'))), 'CRYPTO_SIGNATURE_INVALID');
  });
});
