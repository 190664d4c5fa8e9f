import { SdcError } from '../errors/index.js';
import { base64urlFromBytes, bytesEqualConstantTime, bytesFromBase64url } from '../crypto/bytes.js';
import { canonicalBytes, canonicalMembers } from './canonical-json.js';
import type { JsonObject, JsonValue } from './json-value.js';
import type { ProtocolLimits } from './limits.js';
import type { Ed25519Provider, SessionKeyCrypto } from '../ports/ports.js';
import { parseStrictJson, parseStrictJsonWithForm } from './strict-json.js';
import { deviceIdPatternSource } from './device-id.js';

/**
 * The signed envelope every frame travels in (docs/protocol.md). Sans-IO: bytes in, typed
 * values or SdcErrors out; the Ed25519 provider is a parameter.
 */

export const envelopeVersion = 1;
export const envelopeSignatureAlg = 'Ed25519';

/** The signed part of an envelope. */
export interface EnvelopeFields {
  v: 1;
  type: string;
  id: string;
  device_id: string;
  session_id: string;
  seq: number;
  ts: number;
  body: JsonObject;
}

/** The session MAC's algorithm and key id (ADR 0004): HMAC-SHA256 under a key agreed at AUTH. */
export const envelopeMacAlg = 'HMAC-SHA256';
export const envelopeMacKid = 'session';

export interface EnvelopeSignature {
  /** Ed25519, or HMAC-SHA256 with kid `session` for the frames session-mac.ts names. */
  alg: typeof envelopeSignatureAlg | typeof envelopeMacAlg;
  kid: string;
  /** 64-byte Ed25519 signature or 32-byte HMAC tag, unpadded base64url. */
  value: string;
}

export interface SignedEnvelope extends EnvelopeFields {
  sig: EnvelopeSignature;
}

/**
 * Domain separation: the signature covers this ASCII prefix followed by the canonical fields.
 * Other signed objects in the system (commands, audit entries) are also canonical JSON signed
 * with Ed25519, possibly by the same key; without a distinct prefix per kind, a signature over
 * one kind of object could be replayed as a valid signature over another that happens to have
 * the same canonical bytes. The version in the prefix does the same across envelope versions.
 */
export const envelopeSigningPrefix = 'sdc-envelope-v1\n';
const utf8Encoder = new TextEncoder();

const fieldNames = ['v', 'type', 'id', 'device_id', 'session_id', 'seq', 'ts', 'body'] as const;
const fieldNameSet: ReadonlySet<string> = new Set(fieldNames);
const signedEnvelopeNames: ReadonlySet<string> = new Set([...fieldNames, 'sig']);
const signatureNames: ReadonlySet<string> = new Set(['alg', 'kid', 'value']);
/** The signed fields in RFC 8785 member order (UTF-16 code units, what Array.prototype.sort compares). */
const sortedFieldNames: readonly string[] = [...fieldNames].sort();
/** Where `sig` goes among them in the whole envelope's member order. */
const sigMemberIndex = sortedFieldNames.filter((name) => name < 'sig').length;

// Patterns shared with the message schemas (core/protocol/messages/fields.ts).
const typePattern = /^[A-Z][A-Z0-9_]{0,63}$/;
const idPattern = /^[A-Za-z0-9_-]{1,64}$/;
const deviceIdPattern = new RegExp(deviceIdPatternSource);
const sessionIdPattern = /^[A-Za-z0-9_-]{0,64}$/;
const kidPattern = /^[A-Za-z0-9_.:-]{1,128}$/;
/** alg is compared with the supported value in verifyEnvelope; here it only has to be a short string. */
const algLengthMax = 32;
/** Generous bound on the signature text; its exact form is checked when it is decoded. */
const signatureValueLengthMax = 128;

function schemaError(field: string, message: string): SdcError {
  return new SdcError('PROTO_SCHEMA_INVALID', `envelope ${field}: ${message}`, { field });
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkString(object: JsonObject, name: string, pattern: RegExp, what: string, path = name): string {
  const value = object[name];
  if (typeof value !== 'string' || !pattern.test(value)) throw schemaError(path, `must be ${what}`);
  return value;
}

function checkCount(object: JsonObject, name: string): number {
  const value = object[name];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw schemaError(name, 'must be a non-negative safe integer');
  }
  return value;
}

function checkNames(object: JsonObject, allowed: ReadonlySet<string>, where: string): void {
  for (const name of Object.keys(object)) {
    if (!allowed.has(name)) throw schemaError(where === '' ? name : `${where}.${name}`, 'is not an envelope field');
  }
}

/** Checks v..body (the signed fields); extra members are the caller's concern. */
function checkFields(value: JsonObject): EnvelopeFields {
  if (!Object.hasOwn(value, 'v')) throw schemaError('v', 'is missing');
  if (value.v !== envelopeVersion) {
    throw new SdcError('PROTO_UNSUPPORTED_VERSION', `envelope version ${JSON.stringify(value.v)} is not supported (expected ${envelopeVersion})`, { field: 'v' });
  }
  const body = value.body;
  if (!isObject(body)) throw schemaError('body', 'must be a JSON object');
  return {
    v: envelopeVersion,
    type: checkString(value, 'type', typePattern, 'an upper-case message type of 1-64 characters'),
    id: checkString(value, 'id', idPattern, '1-64 characters of [A-Za-z0-9_-]'),
    device_id: checkString(value, 'device_id', deviceIdPattern, `a device id matching ${deviceIdPatternSource}`),
    session_id: checkString(value, 'session_id', sessionIdPattern, '0-64 characters of [A-Za-z0-9_-]'),
    seq: checkCount(value, 'seq'),
    ts: checkCount(value, 'ts'),
    body,
  };
}

/**
 * Structural check of the unsigned fields, as given to `signEnvelope` (no `sig`, no extra members).
 * Throws PROTO_UNSUPPORTED_VERSION or PROTO_SCHEMA_INVALID with `details.field`.
 */
export function parseEnvelopeFields(value: JsonValue): EnvelopeFields {
  if (!isObject(value)) throw schemaError('(root)', 'must be a JSON object');
  checkNames(value, fieldNameSet, '');
  return checkFields(value);
}

/** Structural check of a whole signed envelope; the signature itself is checked by verifyEnvelope. */
export function parseSignedEnvelope(value: JsonValue): SignedEnvelope {
  if (!isObject(value)) throw schemaError('(root)', 'must be a JSON object');
  checkNames(value, signedEnvelopeNames, '');
  const fields = checkFields(value);
  const sig = value.sig;
  if (!isObject(sig)) throw schemaError('sig', 'must be an object {alg, kid, value}');
  checkNames(sig, signatureNames, 'sig');
  const alg = sig.alg;
  if (typeof alg !== 'string' || alg.length === 0 || alg.length > algLengthMax) {
    throw schemaError('sig.alg', `must be a string of 1-${algLengthMax} characters`);
  }
  const kid = checkString(sig, 'kid', kidPattern, '1-128 characters of [A-Za-z0-9_.:-]', 'sig.kid');
  const signatureValue = sig.value;
  if (typeof signatureValue !== 'string' || signatureValue.length > signatureValueLengthMax) {
    throw schemaError('sig.value', `must be a string of at most ${signatureValueLengthMax} characters`);
  }
  // The checked fields' own object with `sig` added, not a spread copy of it (every frame received passes here; issue 17).
  const envelope = fields as SignedEnvelope;
  envelope.sig = { alg: alg as EnvelopeSignature['alg'], kid, value: signatureValue };
  return envelope;
}

/**
 * The canonical `"name":value` texts of the signed fields, in member order. Written once per frame
 * sent: the signing input and the whole frame are both joined from them (the body, most of a
 * frame, used to be canonicalised twice: to sign or MAC, then to encode).
 */
function canonicalFieldMembers(fields: EnvelopeFields): string[] {
  const { v, type, id, device_id, session_id, seq, ts, body } = fields;
  return canonicalMembers({ v, type, id, device_id, session_id, seq, ts, body }, sortedFieldNames);
}

/** Prefix and fields in one encode, not two and a concatenation (the prefix is ASCII, one byte a character). */
function signingInputOf(fieldMembers: readonly string[]): Uint8Array {
  return utf8Encoder.encode(`${envelopeSigningPrefix}{${fieldMembers.join(',')}}`);
}

/** canonicalBytes of the whole envelope, from the fields' members and `sig` (the only other member). */
function frameBytesOf(fieldMembers: readonly string[], sig: EnvelopeSignature): Uint8Array {
  const [sigMember] = canonicalMembers({ sig }, ['sig']);
  const members = [...fieldMembers.slice(0, sigMemberIndex), sigMember, ...fieldMembers.slice(sigMemberIndex)];
  return utf8Encoder.encode(`{${members.join(',')}}`);
}

/** The exact bytes an envelope signature covers: the prefix, then the canonical signed fields. */
export function envelopeSigningInput(fields: EnvelopeFields): Uint8Array {
  return signingInputOf(canonicalFieldMembers(fields));
}

/** An envelope just authenticated, with its fields' canonical members for encoding it. */
interface Authenticated {
  envelope: SignedEnvelope;
  fieldMembers: string[];
}

export interface SignEnvelopeInput {
  fields: EnvelopeFields;
  kid: string;
  /** 32-byte Ed25519 private seed. */
  seed: Uint8Array;
  provider: Ed25519Provider;
}

/** Signs the fields. Refuses fields that `decodeEnvelope` would refuse, so every envelope we make can be read back. */
export function signEnvelope(input: SignEnvelopeInput): SignedEnvelope {
  return signFields(input).envelope;
}

/** signEnvelope and encodeEnvelope in one, canonicalising the fields once: the bytes are those encodeEnvelope gives. */
export function signAndEncodeEnvelope(input: SignEnvelopeInput): { envelope: SignedEnvelope; bytes: Uint8Array } {
  const { envelope, fieldMembers } = signFields(input);
  return { envelope, bytes: frameBytesOf(fieldMembers, envelope.sig) };
}

function signFields({ fields, kid, seed, provider }: SignEnvelopeInput): Authenticated {
  const checked = parseEnvelopeFields(fields as unknown as JsonValue);
  if (typeof kid !== 'string' || !kidPattern.test(kid)) throw schemaError('sig.kid', 'must be 1-128 characters of [A-Za-z0-9_.:-]');
  const fieldMembers = canonicalFieldMembers(checked);
  const signature = provider.sign(seed, signingInputOf(fieldMembers));
  // parseEnvelopeFields made `checked` for this call: `sig` is added to it, not to a spread copy.
  const envelope = checked as SignedEnvelope;
  envelope.sig = { alg: envelopeSignatureAlg, kid, value: base64urlFromBytes(signature) };
  return { envelope, fieldMembers };
}

export interface VerifyEnvelopeInput {
  envelope: SignedEnvelope;
  /**
   * The envelope's signing input when decodeEnvelopeForVerify took it from the received bytes;
   * written out from the fields when absent. Only for the envelope those bytes decoded to.
   */
  signingInput?: Uint8Array;
  /** The 32-byte public key for a key id, or undefined if the id is unknown (or not allowed here). */
  resolveKey: (kid: string) => Uint8Array | undefined;
  provider: Ed25519Provider;
}

/**
 * Checks the signature; returns the envelope when it verifies. Throws CRYPTO_UNSUPPORTED_ALG,
 * CRYPTO_UNKNOWN_KID, CRYPTO_BAD_SIGNATURE_ENCODING or CRYPTO_SIGNATURE_INVALID (and
 * PROTO_SCHEMA_INVALID for an envelope that did not come through decodeEnvelope and is malformed).
 */
export function verifyEnvelope({ envelope, resolveKey, provider }: VerifyEnvelopeInput): SignedEnvelope {
  return verifyDecodedEnvelope({ envelope: parseSignedEnvelope(envelope as unknown as JsonValue), resolveKey, provider });
}

/**
 * verifyEnvelope for an envelope exactly as decodeEnvelope (or parseSignedEnvelope) returned it,
 * not changed since, so its shape is not checked a second time (codec.ts, per received frame).
 */
export function verifyDecodedEnvelope({ envelope: checked, resolveKey, provider, signingInput }: VerifyEnvelopeInput): SignedEnvelope {
  const { alg, kid, value } = checked.sig;
  if (alg !== envelopeSignatureAlg) {
    throw new SdcError('CRYPTO_UNSUPPORTED_ALG', `signature algorithm ${JSON.stringify(alg)} is not supported (expected ${envelopeSignatureAlg})`, { alg });
  }
  const publicKey = resolveKey(kid);
  if (publicKey === undefined) throw new SdcError('CRYPTO_UNKNOWN_KID', `no key is known for kid ${JSON.stringify(kid)}`, { kid });
  const signature = bytesFromBase64url(value, { code: 'CRYPTO_BAD_SIGNATURE_ENCODING', name: 'sig.value', length: 64 });
  if (!provider.verify(publicKey, signingInput ?? envelopeSigningInput(checked), signature)) {
    throw new SdcError('CRYPTO_SIGNATURE_INVALID', `envelope ${checked.id} signature does not verify with kid ${JSON.stringify(kid)}`, { kid, id: checked.id });
  }
  return checked;
}

export interface MacEnvelopeInput {
  fields: EnvelopeFields;
  /** 32-byte HMAC-SHA256 key (one direction of a session, session-mac.ts). */
  key: Uint8Array;
  crypto: SessionKeyCrypto;
}

/**
 * Authenticates the fields with the session MAC instead of a signature: the same signing input
 * (prefix and canonical fields), so a MAC'd and a signed frame differ only in `sig`.
 */
export function macEnvelope(input: MacEnvelopeInput): SignedEnvelope {
  return macFields(input).envelope;
}

/** macEnvelope and encodeEnvelope in one, canonicalising the fields once: the bytes are those encodeEnvelope gives. */
export function macAndEncodeEnvelope(input: MacEnvelopeInput): { envelope: SignedEnvelope; bytes: Uint8Array } {
  const { envelope, fieldMembers } = macFields(input);
  return { envelope, bytes: frameBytesOf(fieldMembers, envelope.sig) };
}

function macFields({ fields, key, crypto }: MacEnvelopeInput): Authenticated {
  const checked = parseEnvelopeFields(fields as unknown as JsonValue);
  const fieldMembers = canonicalFieldMembers(checked);
  const tag = crypto.hmacSha256(key, signingInputOf(fieldMembers));
  // As signFields: `checked` is this call's own object.
  const envelope = checked as SignedEnvelope;
  envelope.sig = { alg: envelopeMacAlg, kid: envelopeMacKid, value: base64urlFromBytes(tag) };
  return { envelope, fieldMembers };
}

export interface VerifyEnvelopeMacInput {
  envelope: SignedEnvelope;
  /** As VerifyEnvelopeInput.signingInput. */
  signingInput?: Uint8Array;
  key: Uint8Array;
  crypto: SessionKeyCrypto;
}

/**
 * Checks a session MAC in constant time; returns the envelope when it verifies. Throws
 * CRYPTO_UNSUPPORTED_ALG (not a session MAC), CRYPTO_UNKNOWN_KID, CRYPTO_BAD_SIGNATURE_ENCODING
 * or CRYPTO_SIGNATURE_INVALID, the codes a bad signature gets.
 */
export function verifyEnvelopeMac({ envelope, key, crypto }: VerifyEnvelopeMacInput): SignedEnvelope {
  return verifyDecodedEnvelopeMac({ envelope: parseSignedEnvelope(envelope as unknown as JsonValue), key, crypto });
}

/** verifyEnvelopeMac for an envelope exactly as decodeEnvelope returned it (see verifyDecodedEnvelope). */
export function verifyDecodedEnvelopeMac({ envelope: checked, key, crypto, signingInput }: VerifyEnvelopeMacInput): SignedEnvelope {
  const { alg, kid, value } = checked.sig;
  if (alg !== envelopeMacAlg) {
    throw new SdcError('CRYPTO_UNSUPPORTED_ALG', `${checked.type} frames of this session carry the session MAC (${envelopeMacAlg}), not ${JSON.stringify(alg)}`, { alg });
  }
  if (kid !== envelopeMacKid) throw new SdcError('CRYPTO_UNKNOWN_KID', `a session MAC names kid ${JSON.stringify(envelopeMacKid)}, not ${JSON.stringify(kid)}`, { kid });
  const tag = bytesFromBase64url(value, { code: 'CRYPTO_BAD_SIGNATURE_ENCODING', name: 'sig.value', length: 32 });
  if (!bytesEqualConstantTime(crypto.hmacSha256(key, signingInput ?? envelopeSigningInput(checked)), tag)) {
    throw new SdcError('CRYPTO_SIGNATURE_INVALID', `envelope ${checked.id} session MAC does not verify`, { kid, id: checked.id });
  }
  return checked;
}

/**
 * Frame bytes to a structurally valid envelope: strict JSON within the limits, then the envelope
 * shape. The signature is not checked here (see verifyEnvelope), nor the body's per-type schema.
 */
export function decodeEnvelope(frameBytes: Uint8Array | string, limits?: Partial<ProtocolLimits>): SignedEnvelope {
  return parseSignedEnvelope(parseStrictJson(frameBytes, limits));
}

const signingPrefixBytes = utf8Encoder.encode(envelopeSigningPrefix);

/**
 * decodeEnvelope, and the envelope's signing input taken from the frame as received when the
 * frame is canonical (what every sender here writes): the prefix, then the bytes without
 * `,"sig":{...}`. That is exactly envelopeSigningInput(envelope), because the canonical fields
 * are the canonical envelope less its `sig` member, so the receiver does not write the fields out
 * again to check a signature or MAC (issue 17: a second canonicalisation per frame received).
 * `signingInput` is undefined for a frame the parser does not prove canonical; the verifier then
 * writes the fields out, as before, so such a frame is accepted or refused exactly as before.
 * `text` is the frame as the parser decoded it (strict UTF-8), for a receiver that forwards it as text;
 * `canonical`: the parser proved `text` is exactly canonicalize of the parsed value (StrictJsonWithForm),
 * so a receiver may take a signed member's canonical text out of it (policy-bundle.ts).
 */
export function decodeEnvelopeForVerify(frameBytes: Uint8Array, limits?: Partial<ProtocolLimits>): { envelope: SignedEnvelope; signingInput: Uint8Array | undefined; text: string; canonical: boolean } {
  const { value, memberBytes, text, canonical } = parseStrictJsonWithForm(frameBytes, 'sig', limits);
  const envelope = parseSignedEnvelope(value);
  if (memberBytes === undefined) return { envelope, signingInput: undefined, text, canonical };
  const prefixLength = signingPrefixBytes.length;
  const signingInput = new Uint8Array(prefixLength + frameBytes.length - (memberBytes.end - memberBytes.start));
  signingInput.set(signingPrefixBytes, 0);
  signingInput.set(frameBytes.subarray(0, memberBytes.start), prefixLength);
  signingInput.set(frameBytes.subarray(memberBytes.end), prefixLength + memberBytes.start);
  return { envelope, signingInput, text, canonical };
}

/** Canonical bytes of the whole envelope: what goes on the wire. */
export function encodeEnvelope(envelope: SignedEnvelope): Uint8Array {
  return canonicalBytes(envelope);
}
