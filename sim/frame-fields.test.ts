import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../core/random/prng.js';
import { canonicalBytes } from '../core/protocol/canonical-json.js';
import type { JsonValue } from '../core/protocol/json-value.js';
import { frameSeqFields } from './frame-fields.js';

const encoder = new TextEncoder();
const bytesOf = (text: string) => encoder.encode(text);

/** What the observer read before: the whole frame through JSON.parse. */
function parsed(text: string): { sessionId: unknown; seq: unknown } {
  const value = JSON.parse(text) as { session_id?: unknown; seq?: unknown };
  return { sessionId: value.session_id, seq: value.seq };
}

describe('frameSeqFields: the seq checker reads two top-level members as JSON.parse would', () => {
  it('reads the top level only: a body that has its own seq and session_id (first, as canonical order puts it) is skipped', () => {
    const text = '{"body":{"seq":99,"session_id":"inner","list":[{"seq":7}],"s":"}]\\"{["},"id":"m1","seq":3,"session_id":"s-1","v":1}';
    assert.deepEqual(frameSeqFields(bytesOf(text)), { sessionId: 's-1', seq: 3 });
    assert.deepEqual(frameSeqFields(bytesOf(text)), parsed(text));
  });

  it('gives what JSON.parse gives for duplicates, escaped names, non-ASCII, other types and spacing', () => {
    const texts = [
      '{"seq":1,"seq":2,"session_id":"a"}',
      '{"se\\u0071":4,"session_id":"a"}',
      '{"seq":5,"session_id":"caf\\u00e9"}',
      '{"seq":5,"session_id":"café"}',
      '{"seq":"5","session_id":7}',
      '{"seq":-0.5e2,"session_id":null}',
      ' { "seq" : 12 , "session_id" : "b" } ',
      '{"seq":[1],"session_id":{"x":1}}',
      '{"seq":true}',
      '{}',
      '[1,2]',
      '"frame"',
    ];
    for (const text of texts) assert.deepEqual(frameSeqFields(bytesOf(text)), parsed(text), text);
  });

  it('throws on bytes that are not JSON, as JSON.parse did', () => {
    for (const text of ['{"seq":1', '{"seq":1}x', '{"seq":01}', 'seq', '{"seq":1,}', '']) {
      assert.throws(() => frameSeqFields(bytesOf(text)), SyntaxError, text);
    }
  });

  it('agrees with JSON.parse over 3,000 random canonical frames', () => {
    const random = new SeededRandom(17);
    const strings = ['', 'a', 's-1', 'seq', 'session_id', '}', '{', ']', '[', '"', '\\', ',', ':', 'é', '\u0001', ' x '];
    const value = (depth: number): JsonValue => {
      switch (random.intBelow(depth > 2 ? 3 : 5)) {
        case 0: return random.intBelow(2_000_000) - 1_000_000;
        case 1: return strings[random.intBelow(strings.length)]!;
        case 2: return random.intBelow(3) === 0 ? null : random.intBelow(2) === 0;
        case 3: return Array.from({ length: random.intBelow(4) }, () => value(depth + 1));
        default: return object(depth + 1);
      }
    };
    const object = (depth: number): { [name: string]: JsonValue } => {
      const result: { [name: string]: JsonValue } = {};
      for (let n = random.intBelow(5); n > 0; n--) result[strings[random.intBelow(strings.length)]!] = value(depth);
      return result;
    };
    for (let i = 0; i < 3_000; i++) {
      const frame = object(0);
      if (random.intBelow(2) === 0) frame.seq = random.intBelow(1_000_000);
      if (random.intBelow(2) === 0) frame.session_id = strings[random.intBelow(strings.length)]!;
      const bytes = canonicalBytes(frame);
      assert.deepEqual(frameSeqFields(bytes), parsed(new TextDecoder().decode(bytes)), new TextDecoder().decode(bytes));
    }
  });
});
