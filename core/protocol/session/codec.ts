import { SdcError } from '../../errors/index.js';
import { decodeEnvelopeForVerify, envelopeMacAlg, macAndEncodeEnvelope, signAndEncodeEnvelope, verifyDecodedEnvelope, verifyDecodedEnvelopeMac, type EnvelopeFields, type SignedEnvelope } from '../envelope.js';
import type { JsonObject } from '../json-value.js';
import type { ProtocolLimits } from '../limits.js';
import { isMessageType, type MessageBody, type MessageType } from '../messages/catalog.js';
import { validateMessageBody } from '../messages/validate.js';
import type { Ed25519Provider } from '../../ports/ports.js';
import { sessionMacTypes, type SessionMacKeys } from './session-mac.js';

/** Who signs the frames one side sends. */
export interface FrameSigner {
  readonly kid: string;
  /** 32-byte Ed25519 private seed. */
  readonly seed: Uint8Array;
  readonly provider: Ed25519Provider;
}

export interface FrameAddress {
  readonly id: string;
  readonly deviceId: string;
  readonly sessionId: string;
  readonly seq: number;
  readonly ts: number;
}

/** A received frame after every check: a known type whose body matches its schema. */
export interface DecodedMessage<T extends MessageType = MessageType> {
  readonly type: T;
  readonly body: MessageBody<T>;
  readonly envelope: SignedEnvelope;
  /** The frame exactly as received (set by the session ends), so a forwarder need not encode it again. */
  readonly bytes?: Uint8Array;
  /** The same frame as text, as the strict parser decoded it (set with `bytes`), so a forwarder need not decode it again. */
  readonly text?: string;
  /**
   * True when the parser proved `text` is exactly canonicalize of the parsed frame (set with
   * `text`): a signed member's canonical text can then be cut out of it instead of written again
   * (the agent's policy bundle check, issue 17).
   */
  readonly canonical?: boolean;
}

/**
 * Builds, authenticates and encodes one frame: with the session MAC when `mac` is given and the
 * type carries it (session-mac.ts), else signed. The body is validated first: we never send what
 * we would refuse.
 */
export function encodeMessage<T extends MessageType>(type: T, body: MessageBody<T>, address: FrameAddress, signer: FrameSigner, mac?: SessionMacKeys): { envelope: SignedEnvelope; bytes: Uint8Array } {
  validateMessageBody(type, body);
  return encodeValidated(type, body, address, signer, mac);
}

/**
 * encodeMessage for the body of a message this side has just decoded (checkBody validated it for
 * its type, and nothing has run since that could change it): the gateway's HEARTBEAT echo. The
 * body is not validated a second time.
 */
export function encodeDecodedBody(message: DecodedMessage, address: FrameAddress, signer: FrameSigner, mac?: SessionMacKeys): { envelope: SignedEnvelope; bytes: Uint8Array } {
  return encodeValidated(message.type, message.body, address, signer, mac);
}

function encodeValidated(type: MessageType, body: MessageBody<MessageType>, address: FrameAddress, signer: FrameSigner, mac: SessionMacKeys | undefined): { envelope: SignedEnvelope; bytes: Uint8Array } {
  const fields: EnvelopeFields = { v: 1, type, id: address.id, device_id: address.deviceId, session_id: address.sessionId, seq: address.seq, ts: address.ts, body: body as unknown as JsonObject };
  // The fields are canonicalised once, for both the MAC or signature and the frame's bytes.
  return mac !== undefined && sessionMacTypes.has(type)
    ? macAndEncodeEnvelope({ fields, key: mac.send, crypto: mac.crypto })
    : signAndEncodeEnvelope({ fields, kid: signer.kid, seed: signer.seed, provider: signer.provider });
}

/**
 * Decodes and authenticates a frame in the order docs/protocol.md gives: limits and syntax,
 * envelope shape, session binding, signature, then the body schema. The replay guard runs
 * between signature and schema, in the session (it needs the session's state).
 */
export function decodeAndVerify(options: DecodeAndVerifyOptions): SignedEnvelope {
  return decodeAndVerifyFrame(options).envelope;
}

/** decodeAndVerify, with the frame's text as the parser decoded it (DecodedMessage.text). */
export function decodeAndVerifyFrame(options: DecodeAndVerifyOptions): { envelope: SignedEnvelope; text: string; canonical: boolean } {
  // The signing input comes from the received bytes when they are canonical (no second canonicalisation).
  const { envelope, signingInput, text, canonical } = decodeEnvelopeForVerify(options.bytes, options.limits);
  return { envelope: verifyDecoded(options, envelope, signingInput), text, canonical };
}

export interface DecodeAndVerifyOptions {
  bytes: Uint8Array;
  /** Resolved once per session (resolveProtocolLimits), so a frame's parse does not merge them again. */
  limits?: Partial<ProtocolLimits>;
  expectDeviceId: string;
  expectSessionId: string;
  resolveKey: (kid: string) => Uint8Array | undefined;
  provider: Ed25519Provider;
  /** The session's MAC keys once agreed: the types that carry the MAC must, the others must not. */
  mac?: SessionMacKeys;
}

function verifyDecoded(options: DecodeAndVerifyOptions, envelope: SignedEnvelope, signingInput: Uint8Array | undefined): SignedEnvelope {
  if (envelope.device_id !== options.expectDeviceId || envelope.session_id !== options.expectSessionId) {
    throw new SdcError('PROTO_SESSION_MISMATCH', 'frame is addressed to another device or session', { refId: envelope.id });
  }
  // One accepted form per type and session: a MAC'd session never pays for an Ed25519 verify of
  // its frequent frames, and a MAC is never accepted where a signature is the evidence.
  // A batch is a MAC'd frame by design (decision 0004, "Batches"): never verified as a signed one.
  if (options.mac === undefined && envelope.type === 'TELEMETRY_BATCH') {
    throw new SdcError('PROTO_TELEMETRY_BATCH_WITHOUT_MAC', 'TELEMETRY_BATCH needs the session MAC, which this session did not agree', { refId: envelope.id });
  }
  if (options.mac !== undefined && sessionMacTypes.has(envelope.type as MessageType)) {
    const { receive: key, crypto } = options.mac;
    return verifyDecodedEnvelopeMac(signingInput === undefined ? { envelope, key, crypto } : { envelope, key, crypto, signingInput });
  }
  if (envelope.sig.alg === envelopeMacAlg) {
    throw new SdcError('CRYPTO_UNSUPPORTED_ALG', `${envelope.type} frames ${options.mac === undefined ? 'of a session without an agreed MAC key ' : ''}must be signed, not MAC'd`, { alg: envelope.sig.alg, refId: envelope.id });
  }
  return verifyDecodedEnvelope({ envelope, resolveKey: options.resolveKey, provider: options.provider, ...(signingInput === undefined ? {} : { signingInput }) });
}

/** The envelope's type known and its body valid for it: PROTO_UNKNOWN_TYPE or the body's schema refusal otherwise. */
function checkedBody(envelope: SignedEnvelope): unknown {
  if (!isMessageType(envelope.type)) throw new SdcError('PROTO_UNKNOWN_TYPE', `unknown message type ${envelope.type}`, { refId: envelope.id });
  return validateMessageBody(envelope.type, envelope.body);
}

export function checkBody(envelope: SignedEnvelope): DecodedMessage {
  return { type: envelope.type, body: checkedBody(envelope), envelope } as DecodedMessage;
}

/** checkBody, with the frame as received (DecodedMessage.bytes, .text and .canonical) in the same object. */
export function checkedMessage(envelope: SignedEnvelope, bytes: Uint8Array, text: string, canonical = false): DecodedMessage {
  return { type: envelope.type, body: checkedBody(envelope), envelope, bytes, text, canonical } as DecodedMessage;
}
