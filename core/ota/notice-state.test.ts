// The control plane's signed notice state (core/ota/notice-state.ts): what makes an OTA notice's
// cancel and health nonce the control plane's word and not the gateway's (threat model, risk 15).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError, type ErrorCode } from '../errors/index.js';
import { createNobleEd25519Provider } from '../crypto/ed25519-noble.js';
import { checkNoticeState, noticeStateSeq, signNoticeState, verifyNoticeState, type NoticeState } from './notice-state.js';

const provider = createNobleEd25519Provider();
const key = { kid: 'cp:1', seed: new Uint8Array(32).fill(7) };
const otherKey = { kid: 'cp:1', seed: new Uint8Array(32).fill(9) };
const trusted = (kid: string) => (kid === key.kid ? provider.publicKeyFromSeed(key.seed) : undefined);
const nonce = 'n'.repeat(43);
const base: NoticeState = { deviceId: 'dev-1', rolloutId: 'ro-1', executionId: 'ex-1', seq: 1, cancel: false, healthNonce: nonce };
const notice: { executionId: string; rolloutId: string; cancel: boolean; healthNonce: string | null } = { executionId: 'ex-1', rolloutId: 'ro-1', cancel: false, healthNonce: nonce };

function refusal(run: () => unknown): ErrorCode | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    assert.ok(SdcError.is(error), String(error));
    return error.code;
  }
}

test('a signed state verifies under the trusted key and round-trips what it says', () => {
  assert.deepEqual(verifyNoticeState(signNoticeState(base, key, provider), trusted, provider), base);
});

test('an altered state, another key, an unknown key id or a malformed statement is OTA_NOTICE_STATE_SIGNATURE', () => {
  const envelope = signNoticeState(base, key, provider);
  for (const altered of [
    { ...envelope, signed: { ...envelope.signed, cancel: true } },
    { ...envelope, signed: { ...envelope.signed, health_nonce: 'm'.repeat(43) } },
    { ...envelope, signed: { ...envelope.signed, execution_id: 'ex-2' } },
    { ...envelope, signed: { ...envelope.signed, seq: 2 } },
    signNoticeState(base, otherKey, provider),
    { ...envelope, signature: { ...envelope.signature, key_id: 'cp:2' } },
    { ...envelope, signed: { ...envelope.signed, extra: 1 } },
    { ...envelope, signed: { ...envelope.signed, type: 'ota_director' } },
    { signed: envelope.signed },
    null,
  ]) {
    assert.equal(refusal(() => verifyNoticeState(altered, trusted, provider)), 'OTA_NOTICE_STATE_SIGNATURE', JSON.stringify(altered));
  }
});

test('cancel or a nonce without a statement is OTA_NOTICE_STATE_UNSIGNED; a notice asserting neither needs none', () => {
  const check = (n: typeof notice) => refusal(() => checkNoticeState(undefined, { deviceId: 'dev-1', notice: n, held: undefined }));
  assert.equal(check({ ...notice, cancel: true, healthNonce: null }), 'OTA_NOTICE_STATE_UNSIGNED');
  assert.equal(check(notice), 'OTA_NOTICE_STATE_UNSIGNED');
  assert.equal(check({ ...notice, healthNonce: null }), undefined);
});

test('a statement for another device, rollout or execution, or saying other values than the notice, is OTA_NOTICE_STATE_BINDING', () => {
  const check = (deviceId: string, n: typeof notice) => refusal(() => checkNoticeState(base, { deviceId, notice: n, held: undefined }));
  assert.equal(check('dev-1', notice), undefined);
  assert.equal(check('dev-2', notice), 'OTA_NOTICE_STATE_BINDING');
  assert.equal(check('dev-1', { ...notice, executionId: 'ex-2' }), 'OTA_NOTICE_STATE_BINDING');
  assert.equal(check('dev-1', { ...notice, rolloutId: 'ro-2' }), 'OTA_NOTICE_STATE_BINDING');
  assert.equal(check('dev-1', { ...notice, cancel: true }), 'OTA_NOTICE_STATE_BINDING');
  assert.equal(check('dev-1', { ...notice, healthNonce: 'm'.repeat(43) }), 'OTA_NOTICE_STATE_BINDING');
  assert.equal(check('dev-1', { ...notice, healthNonce: null }), 'OTA_NOTICE_STATE_BINDING');
});

test('a statement older than the one held is OTA_NOTICE_STATE_REPLAYED; the same one again, or a newer one, is taken', () => {
  const first: NoticeState = { ...base, seq: 0, healthNonce: null };
  const canceled: NoticeState = { ...base, seq: 2, cancel: true, healthNonce: null };
  const check = (state: NoticeState, held: NoticeState) => refusal(() => checkNoticeState(state, {
    deviceId: 'dev-1', notice: { executionId: 'ex-1', rolloutId: 'ro-1', cancel: state.cancel, healthNonce: state.healthNonce }, held,
  }));
  assert.equal(check(first, base), 'OTA_NOTICE_STATE_REPLAYED');
  assert.equal(check(base, canceled), 'OTA_NOTICE_STATE_REPLAYED');
  assert.equal(check({ ...base, healthNonce: 'm'.repeat(43) }, base), 'OTA_NOTICE_STATE_REPLAYED', 'same seq, another nonce');
  assert.equal(check(base, base), undefined);
  assert.equal(check(canceled, base), undefined);
});

test('the sequence follows the only order an execution brings news in: nothing, the nonce, the cancel', () => {
  const none = noticeStateSeq({ cancel: false, healthNonce: null });
  const withNonce = noticeStateSeq({ cancel: false, healthNonce: nonce });
  const canceled = noticeStateSeq({ cancel: true, healthNonce: null });
  assert.ok(none < withNonce && withNonce < canceled);
});
