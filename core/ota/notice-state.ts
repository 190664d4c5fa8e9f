import { SdcError, type ErrorCode } from '../errors/index.js';
import { base64urlFromBytes, bytesFromBase64url } from '../crypto/bytes.js';
import { ed25519SignatureBytes } from '../crypto/ed25519-sizes.js';
import type { Ed25519Provider } from '../ports/ports.js';
import { canonicalBytes } from '../protocol/canonical-json.js';

/**
 * The control plane's signed word on what an OTA notice tells a device beyond the director's
 * document: whether the execution is canceled, and the health check's nonce (docs/ota.md,
 * "Signed notice state"; threat model, residual risk 15). The gateway relays notices and could
 * otherwise set `cancel` (stopping an update, or rolling back a committed one) or replace the
 * nonce (failing the health check) at will. Signed, as the director's document is, by the key
 * that signs it: Ed25519 over the RFC 8785 canonical JSON of `signed`.
 *
 * ```json
 * { "signed": { "type": "ota_notice_state", "device_id": "lab-01", "rollout_id": "ro-7",
 *     "execution_id": "ex-91", "seq": 1, "cancel": false, "health_nonce": "<43 base64url>" },
 *   "signature": { "key_id": "cp:…", "sig": "<base64url>" } }
 * ```
 *
 * `seq` orders the statements of one execution, so an older one replayed by the gateway (the
 * nonce-less one after the nonce came, say) is told apart from news: the device keeps the
 * highest it took and refuses a lower one. The execution id (random, never reused) and the
 * device id bind a statement to one execution of one device, so no statement counts for another.
 */
export interface NoticeState {
  readonly deviceId: string;
  readonly rolloutId: string;
  readonly executionId: string;
  readonly seq: number;
  readonly cancel: boolean;
  readonly healthNonce: string | null;
}

export interface NoticeStateEnvelope {
  readonly signed: Record<string, unknown>;
  readonly signature: { readonly key_id: string; readonly sig: string };
}

const statementType = 'ota_notice_state';
const signedKeys = ['type', 'device_id', 'rollout_id', 'execution_id', 'seq', 'cancel', 'health_nonce'];
const idPattern = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const noncePattern = /^[A-Za-z0-9_-]{43}$/;
/** seq fits in 31 bits: a handful of statements per execution today (noticeStateSeq), room for a counter later. */
const seqMax = 2 ** 31 - 1;

/**
 * The statement's sequence number for what it says. An execution's news only ever comes in
 * this order, since its state table only moves forward: nothing (0), the health check's nonce
 * (1, issued once, on entering health_checking), the cancel (2; a cancel in health_checking
 * clears the nonce). Derived, not counted, so every control plane signs the same number for the
 * same state, and no column is needed.
 */
export function noticeStateSeq(state: { readonly cancel: boolean; readonly healthNonce: string | null }): number {
  if (state.cancel) return 2;
  return state.healthNonce === null ? 0 : 1;
}

export function noticeStateSignedJson(state: NoticeState): Record<string, unknown> {
  return {
    type: statementType, device_id: state.deviceId, rollout_id: state.rolloutId, execution_id: state.executionId,
    seq: state.seq, cancel: state.cancel, health_nonce: state.healthNonce,
  };
}

/** Signs a statement with the director's key (the control plane's command key). */
export function signNoticeState(state: NoticeState, key: { readonly kid: string; readonly seed: Uint8Array }, ed25519: Ed25519Provider): NoticeStateEnvelope {
  const signed = noticeStateSignedJson(state);
  return { signed, signature: { key_id: key.kid, sig: base64urlFromBytes(ed25519.sign(key.seed, canonicalBytes(signed))) } };
}

/**
 * Parses and verifies a received statement: its shape (OTA_NOTICE_STATE_SIGNATURE when
 * malformed: a statement that does not parse is no signature of anything) and its signature under
 * a key the device trusts (`resolveKey` by key id). The binding to a notice is checkNoticeState's.
 */
export function verifyNoticeState(envelope: unknown, resolveKey: (kid: string) => Uint8Array | undefined, ed25519: Ed25519Provider): NoticeState {
  const outer = record(envelope, 'envelope', ['signed', 'signature']);
  const state = parseSigned(outer['signed']);
  const signature = record(outer['signature'], 'signature', ['key_id', 'sig']);
  const kid = signature['key_id'];
  const publicKey = typeof kid === 'string' ? resolveKey(kid) : undefined;
  if (publicKey === undefined) refuse('OTA_NOTICE_STATE_SIGNATURE', `notice state is signed by key ${String(kid)}, which this device does not trust`);
  if (typeof signature['sig'] !== 'string') refuse('OTA_NOTICE_STATE_SIGNATURE', 'notice state signature is not a string');
  const sig = bytesFromBase64url(signature['sig'], { code: 'OTA_NOTICE_STATE_SIGNATURE', name: 'signature.sig', length: ed25519SignatureBytes });
  // The signed bytes are re-derived from the parsed statement, so nothing unparsed can ride along.
  if (!ed25519.verify(publicKey, canonicalBytes(noticeStateSignedJson(state)), sig)) refuse('OTA_NOTICE_STATE_SIGNATURE', 'notice state signature does not verify');
  return state;
}

/** What a notice claims beside its statement, and what the device already took for the execution. */
export interface NoticeStateCheck {
  readonly deviceId: string;
  readonly notice: { readonly executionId: string; readonly rolloutId: string; readonly cancel: boolean; readonly healthNonce: string | null };
  /** The highest statement taken for this execution before (journaled with the notice), if any. */
  readonly held: NoticeState | undefined;
}

/**
 * The device's decision on a verified statement (or its absence): the notice's `cancel` and
 * `health_nonce` count only when the statement says exactly them, for this device and execution,
 * and is not older than the one the device holds. Throws the refusal's code:
 * OTA_NOTICE_STATE_UNSIGNED (cancel or a nonce without a statement), OTA_NOTICE_STATE_BINDING
 * (another device, rollout or execution, or other values than the notice's),
 * OTA_NOTICE_STATE_REPLAYED (a lower seq than held, or the same seq saying something else).
 * A notice with neither cancel nor nonce needs no statement: it asserts nothing the gateway could forge.
 */
export function checkNoticeState(state: NoticeState | undefined, check: NoticeStateCheck): void {
  const { notice, held } = check;
  if (state === undefined) {
    if (notice.cancel || notice.healthNonce !== null) refuse('OTA_NOTICE_STATE_UNSIGNED', `the notice says ${notice.cancel ? 'cancel' : 'a health nonce'} without the control plane's signed state`);
    return;
  }
  if (state.deviceId !== check.deviceId || state.executionId !== notice.executionId || state.rolloutId !== notice.rolloutId) {
    refuse('OTA_NOTICE_STATE_BINDING', 'the signed notice state is for another device, rollout or execution');
  }
  if (state.cancel !== notice.cancel || state.healthNonce !== notice.healthNonce) {
    refuse('OTA_NOTICE_STATE_BINDING', 'the notice\'s cancel or health nonce differs from its signed state');
  }
  if (held === undefined) return;
  if (state.seq < held.seq) refuse('OTA_NOTICE_STATE_REPLAYED', `signed notice state ${state.seq} is older than the ${held.seq} already taken`);
  if (state.seq === held.seq && (state.cancel !== held.cancel || state.healthNonce !== held.healthNonce)) {
    refuse('OTA_NOTICE_STATE_REPLAYED', `signed notice state ${state.seq} says otherwise than the one already taken with that number`);
  }
}

function parseSigned(value: unknown): NoticeState {
  const signed = record(value, 'signed', signedKeys);
  if (signed['type'] !== statementType) malformed(`type is not ${statementType}`);
  const text = (name: string): string => {
    const field = signed[name];
    if (typeof field !== 'string' || !idPattern.test(field)) malformed(`${name} is malformed`);
    return field;
  };
  const seq = signed['seq'];
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0 || seq > seqMax) malformed('seq is malformed');
  const cancel = signed['cancel'];
  if (typeof cancel !== 'boolean') malformed('cancel is not a boolean');
  const healthNonce = signed['health_nonce'];
  if (healthNonce !== null && (typeof healthNonce !== 'string' || !noncePattern.test(healthNonce))) malformed('health_nonce is malformed');
  return { deviceId: text('device_id'), rolloutId: text('rollout_id'), executionId: text('execution_id'), seq, cancel, healthNonce };
}

/** An object with exactly `keys` (any keys when null). */
function record(value: unknown, name: string, keys: readonly string[] | null): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) malformed(`${name} is not an object`);
  const object = value as Record<string, unknown>;
  if (keys !== null) {
    const actual = Object.keys(object);
    if (actual.length !== keys.length || !keys.every((key) => Object.hasOwn(object, key))) malformed(`${name} does not have exactly ${keys.join(', ')}`);
  }
  return object;
}

function malformed(message: string): never {
  refuse('OTA_NOTICE_STATE_SIGNATURE', `notice state is malformed: ${message}`);
}

function refuse(code: ErrorCode, message: string): never {
  throw new SdcError(code, message);
}
