import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { SdcError } from '../../core/errors/index.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { decodeEnvelope } from '../../core/protocol/envelope.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { deviceFrame, makeHarness, refusalCodeOf, sqlJsTarget, type Harness } from './test-support.js';

const provider = createNodeEd25519Provider();

/**
 * verifyDeviceFrame of a frame the gateway forwards without vouching for it (a command's ACK or
 * RESULT): the signed bytes are taken from the frame's text when it is canonical (issue 17), and
 * written out from the parsed fields otherwise. Both must accept and refuse exactly what the
 * strict decode and the signature accepted and refused before: the device's frame in either
 * spelling, nothing with a changed signed byte, a text without a UTF-8 form with decodeEnvelope's code.
 */
describe('verifyDeviceFrame of signed frames (the signed bytes from the text)', () => {
  let h: Harness;
  const seed = new Uint8Array(randomBytes(32));
  const device = `dev-verify-${randomBytes(3).toString('hex')}`;
  const ackBody = { command_id: 'cmd-1', device_seq: 3, stage: 'received' };
  const verdict = (frame: string, deviceId = device) => refusalCodeOf(h.cp.devices.verifyDeviceFrame(deviceId, frame, 'COMMAND_ACK'));

  before(async () => {
    h = await makeHarness(sqlJsTarget);
    await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', ?, ?)",
      [device, h.clock.nowMs(), base64urlFromBytes(provider.publicKeyFromSeed(seed))]);
  });
  after(async () => {
    await h.close();
    await sqlJsTarget.cleanup();
  });

  it('accepts the device frame as written (canonical) and in another spelling of the same fields', async () => {
    const frame = deviceFrame({ deviceId: device, seed, type: 'COMMAND_ACK', body: ackBody, ts: h.clock.nowMs() });
    const { body } = await h.cp.devices.verifyDeviceFrame(device, frame, 'COMMAND_ACK');
    assert.deepEqual(body, ackBody);
    // Members reordered and spaced: not canonical, so the signed bytes are written from the fields.
    const parsed = JSON.parse(frame) as Record<string, unknown>;
    const respelled = '{ ' + Object.keys(parsed).reverse().map((name) => `${JSON.stringify(name)} : ${JSON.stringify(parsed[name])}`).join(' , ') + ' }';
    assert.notEqual(respelled, frame);
    assert.equal(await verdict(respelled), 'accepted');
  });

  it('refuses a frame with any signed byte changed, from another device, or without a UTF-8 form', async () => {
    const frame = deviceFrame({ deviceId: device, seed, type: 'COMMAND_ACK', body: ackBody, ts: h.clock.nowMs() });
    // Still canonical, one signed value changed: the bytes taken from the text no longer verify.
    assert.equal(await verdict(frame.replace('"device_seq":3', '"device_seq":4')), 'CRYPTO_SIGNATURE_INVALID');
    assert.equal(await verdict(frame.replace('"received"', '"executing"')), 'CRYPTO_SIGNATURE_INVALID');
    // Any byte of the frame outside `sig` is signed (here the frame id's last character).
    const changedId = frame.replace(/"id":"f(\d+)"/, (_m, n: string) => `"id":"f${Number(n) + 1}"`);
    assert.notEqual(changedId, frame);
    assert.equal(await verdict(changedId), 'CRYPTO_SIGNATURE_INVALID');
    assert.equal(await verdict(frame, `${device}-other`), 'COMMAND_DEVICE_MISMATCH');
    // A lone surrogate: refused with the code the strict decode gives it, never replaced and verified.
    const lone = canonicalize({ ...(JSON.parse(frame) as object) }).replace('cmd-1', 'cmd-\ud800');
    let expected = 'accepted';
    try { decodeEnvelope(lone); } catch (error) { expected = SdcError.is(error) ? error.code : String(error); }
    assert.notEqual(expected, 'accepted');
    assert.equal(await verdict(lone), expected);
  });
});
