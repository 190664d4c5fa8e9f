// The forwarder passes a device's frame on as the text the strict parser already decoded (issue 17:
// a TELEMETRY frame was decoded from UTF-8 twice on the gateway, once to parse, once to forward).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DecodedMessage } from '../../core/protocol/session/codec.js';
import { frameText } from './forward-message.js';

const utf8 = new TextEncoder();

test('frameText hands on the text a session end kept, without decoding the bytes again', () => {
  const frame = '{"body":{},"type":"TELEMETRY"}';
  // Bytes that would decode to something else: only the kept text can be what comes back.
  const message = { type: 'TELEMETRY', body: {}, envelope: {}, bytes: utf8.encode('{"other":1}'), text: frame } as unknown as DecodedMessage;
  assert.equal(frameText(message), frame);
});

test('frameText decodes the bytes when no text was kept (a message made without a session end)', () => {
  const message = { type: 'TELEMETRY', body: {}, envelope: {}, bytes: utf8.encode('{"note":"café"}') } as unknown as DecodedMessage;
  assert.equal(frameText(message), '{"note":"café"}');
});
