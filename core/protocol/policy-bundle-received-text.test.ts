import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createNobleEd25519Provider } from '../crypto/ed25519-noble.js';
import { base64urlFromBytes } from '../crypto/bytes.js';
import { canonicalize } from './canonical-json.js';
import { decodeEnvelopeForVerify, signAndEncodeEnvelope, type EnvelopeFields } from './envelope.js';
import type { JsonObject } from './json-value.js';
import { parsePolicy, type Policy } from './policy.js';
import { cutPolicyBundle, receivedBundleText, signPolicyBundle, verifyPolicyBundle, type ReceivedBundleText, type SignedPolicyBundle } from './policy-bundle.js';

// Issue 17: the agent checks a pushed bundle's signature over the bundle's canonical text as it
// came in the frame (when the parser proved the frame canonical) instead of writing the bundle out
// again. These tests hold the cut text to exactly canonicalize(bundle), keep every other frame on
// the old path, and show that a text which does not frame the parsed bundle is not trusted.
const provider = createNobleEd25519Provider();
const seed = new Uint8Array(32).fill(7);
const gatewaySeed = new Uint8Array(32).fill(3);
const publicKey = provider.publicKeyFromSeed(seed);
const resolveKey = (kid: string) => (kid === 'cp-1' ? publicKey : undefined);
const issuedAtMs = 1_764_000_000_000;
const utf8 = new TextEncoder();
const text = new TextDecoder();

const policy: Policy = parsePolicy({
  version: 1, revision: 5,
  rules: [
    { id: 'ops-basic', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_GET_STATUS'], devices: '*', description: 'Büro } {x: plain ☃ 😀' },
    { id: 'kiosk-only', effect: 'deny', roles: '*', opcodes: ['EXEC_GET_PROCESS_LIST'], devices: { tags: ['kiosk'] } },
  ],
});

function bundleFor(deviceId: string, options: { tags?: string[]; approvers?: boolean } = {}): SignedPolicyBundle {
  const approvers = options.approvers ? [{ approver: 'alice', role: 'admin' as const, kid: 'u-alice.1', public_key: base64urlFromBytes(provider.publicKeyFromSeed(new Uint8Array(32).fill(11))) }] : undefined;
  const bundle = cutPolicyBundle({ policy, version: 5, device: { id: deviceId, tags: options.tags ?? [] }, issuedAtMs, ...(approvers ? { approvers } : {}) });
  return signPolicyBundle({ bundle, kid: 'cp-1', seed, provider });
}

/** The frame as the gateway sends it (canonical), and as the agent's session decodes it. */
function receivedFrame(signed: SignedPolicyBundle, deviceId = 'lab-1'): { bytes: Uint8Array; message: Parameters<typeof receivedBundleText>[0] } {
  const fields: EnvelopeFields = { v: 1, type: 'POLICY_BUNDLE', id: 'f_0009', device_id: deviceId, session_id: 'sess_7f3a', seq: 4, ts: issuedAtMs, body: { signed } as unknown as JsonObject };
  const { bytes } = signAndEncodeEnvelope({ fields, kid: 'gw-1', seed: gatewaySeed, provider });
  return { bytes, message: decoded(bytes) };
}

function decoded(bytes: Uint8Array): Parameters<typeof receivedBundleText>[0] {
  const { envelope, text: frameText, canonical } = decodeEnvelopeForVerify(bytes);
  return { envelope, body: envelope.body, text: frameText, canonical };
}

const signedOf = (message: Parameters<typeof receivedBundleText>[0]): unknown => (message.body as { signed: unknown }).signed;

const verify = (signed: unknown, receivedText?: ReceivedBundleText) => verifyPolicyBundle({
  signed, deviceId: 'lab-1', resolveKey, provider, nowMs: issuedAtMs + 1_000, ...(receivedText === undefined ? {} : { receivedBundleText: receivedText }),
});

describe('receivedBundleText: the bundle\'s canonical text cut from a canonical POLICY_BUNDLE frame', () => {
  test('is exactly canonicalize(bundle), with non-ASCII text, braces in strings, tags and approvers', () => {
    for (const signed of [bundleFor('lab-1'), bundleFor('lab-1', { tags: ['kiosk', 'zone-ä'] }), bundleFor('lab-1', { approvers: true })]) {
      const { message } = receivedFrame(signed);
      assert.equal(message.canonical, true);
      const cut = receivedBundleText(message);
      assert.notEqual(cut, undefined);
      // The same verdict and the same kept text as the bundle written out again.
      const verified = verify(signedOf(message), cut);
      assert.deepEqual(verified, verify(signed));
      assert.equal(verified.signedText, canonicalize(signed));
    }
  });

  test('is used: with it the parsed policy is not written out again (without it, it is)', () => {
    const { message } = receivedFrame(bundleFor('lab-1'));
    const cut = receivedBundleText(message);
    const received = signedOf(message) as { bundle: { policy: { rules: unknown } } };
    // A getter that counts reads and returns the same rules: the content is unchanged.
    const rules = received.bundle.policy.rules;
    let reads = 0;
    Object.defineProperty(received.bundle.policy, 'rules', { enumerable: true, configurable: true, get: () => { reads += 1; return rules; } });
    const verified = verify(received, cut);
    assert.equal(reads, 0);
    assert.equal(verified.signedText, canonicalize(bundleFor('lab-1')));
    // The old path writes the policy out, and canonicalize refuses an accessor: the bundle has no canonical form.
    assert.throws(() => verify(received), (error: unknown) => (error as { code?: string }).code === 'POLICY_BUNDLE_INVALID');
  });

  test('undefined for a frame not proven canonical, another type, or a message whose body is not the frame\'s', () => {
    const signed = bundleFor('lab-1');
    const { bytes, message } = receivedFrame(signed);
    const spaced = text.decode(bytes).replace('{"bundle":', '{"bundle": ');
    const loose = decoded(utf8.encode(spaced));
    assert.equal(loose.canonical, false);
    assert.equal(receivedBundleText(loose), undefined);
    assert.equal(receivedBundleText({ ...message, canonical: undefined }), undefined);
    assert.equal(receivedBundleText({ ...message, body: { signed: bundleFor('lab-2') } }), undefined);
    assert.equal(receivedBundleText({ ...message, envelope: { ...message.envelope, type: 'OTA_NOTICE' } }), undefined);
  });

  test('a text issued for another bundle object is not used: the bundle is written out and its own signature decides', () => {
    const mine = bundleFor('lab-1');
    const other = receivedFrame(bundleFor('lab-2'), 'lab-2').message;
    // Another device's validly signed text offered beside this bundle: not issued for it, so not used.
    assert.deepEqual(verify(mine, receivedBundleText(other)), verify(mine));
    // A handle not issued by receivedBundleText is ignored too.
    assert.deepEqual(verify(mine, Object.freeze({}) as unknown as ReceivedBundleText), verify(mine));
  });

  test('review h13: the signed text of the same device and version beside a bundle whose policy was altered is refused', () => {
    const { message } = receivedFrame(bundleFor('lab-1'));
    const cut = receivedBundleText(message);
    const received = signedOf(message) as SignedPolicyBundle;
    // The same members around the policy, so the text frames it; the policy allows one more opcode, which nobody signed.
    const policyText = JSON.stringify(received.bundle.policy).replace('["EXEC_GET_STATUS"]', '["EXEC_GET_STATUS","EXEC_REBOOT"]');
    assert.notEqual(policyText, JSON.stringify(received.bundle.policy));
    const forged = { bundle: { ...received.bundle, policy: JSON.parse(policyText) as unknown }, sig: received.sig };
    for (const receivedText of [undefined, cut]) {
      assert.throws(() => verify(forged, receivedText), (error: unknown) => (error as { code?: string }).code === 'POLICY_BUNDLE_SIGNATURE_INVALID');
    }
  });
});
