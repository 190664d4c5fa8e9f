import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { SdcError } from '../../core/errors/index.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import type { JsonValue } from '../../core/protocol/json-value.js';
import { deviceIdPatternSource } from '../../core/protocol/device-id.js';
import { resolveProtocolLimits } from '../../core/protocol/limits.js';
import { parseStrictJson } from '../../core/protocol/strict-json.js';
import { DeviceId, EpochMs, FrameId, SessionId, Seq, Traceparent } from '../../core/protocol/messages/fields.js';
import { SignedCommandSchema } from '../../core/protocol/messages/command.js';
import { DevicePostureSchema } from '../../core/protocol/messages/posture.js';

/**
 * The `reason` of a presence online entry a gateway reports because a refresh wrote a lapsed key
 * again (server/gateway/presence.ts): the session never ended. The control plane handles it
 * cheaply when its record already names that gateway (events.ts #presence).
 */
export const presenceRestoredReason = 'presence key restored';

/**
 * The typed entries carried on the service streams (streams.ts). Each is stored as two bus
 * fields, `kind` and `data` (canonical JSON), and validated on read: a store is a boundary too,
 * and a malformed entry is dead-lettered by the reader, never allowed to crash it.
 */
const strict = { additionalProperties: false } as const;
const gatewayIdPatternSource = '^[A-Za-z0-9_.-]{1,64}$';
const GatewayId = Type.String({ pattern: gatewayIdPatternSource });
/** A signed device frame, kept verbatim (canonical JSON text) so its signature can be re-checked and audited. */
const signedFrameTextLengthMax = 65_536;
const SignedFrameText = Type.String({ maxLength: signedFrameTextLengthMax });
/** Device clock minus the gateway's, measured at AUTH (core/protocol/clock-offset.ts); any size a device's AUTH can show. */
const ClockOffsetMs = Type.Integer({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER });

/**
 * Bounds of a telemetry_frames entry (decision 0023): frames per entry (the schema's maxItems) and
 * UTF-8 bytes of its `frames` field, the bus's bound on one field (busLimits.fieldBytesMax, 64 KiB).
 * A frame that does not fit an entry alone (its bytes above the field bound) goes as a `telemetry`
 * entry of its own, as every frame did before.
 */
export const telemetryFramesLimits = Object.freeze({ framesPerEntryMax: 64, frameBytesPerEntryMax: 64 * 1024 });

export const busEntrySchemas = {
  /**
   * control plane -> gateway: deliver this command to the device (held by this gateway). With the
   * W3C traceparent of the operation that created it (the API request's), which the gateway logs
   * with and puts into COMMAND_DELIVERY; absent for a command stored without one.
   */
  deliver: Type.Object({
    command: SignedCommandSchema, traceparent: Type.Optional(Traceparent),
    /**
     * An operator's retry of a dead letter: its number (1 for the first). Absent on a first dispatch
     * and on redeliveries, which a gateway that has just dead-lettered the command drops as late
     * copies (server/gateway/given-up-commands.ts); a retry is always delivered.
     */
    retry: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
  }, strict),

  /** gateway -> control plane: a device session opened or closed. */
  presence: Type.Object({
    device_id: DeviceId, gateway_id: GatewayId, session_id: SessionId, online: Type.Boolean(), at_ms: EpochMs,
    last_command_seq: Type.Optional(Seq), reason: Type.Optional(Type.String({ maxLength: 256 })),
    clock_offset_ms: Type.Optional(ClockOffsetMs),
    /** From the device's AUTH (online only): its agent version and compliance posture, for the compliance evaluator. */
    agent_version: Type.Optional(Type.String({ maxLength: 64 })),
    posture: Type.Optional(DevicePostureSchema),
  }, strict),

  /** gateway -> control plane: a command moved (delivered, acked, executing), or must go back to the queue. */
  command_progress: Type.Object({
    command_id: FrameId, device_id: DeviceId, gateway_id: GatewayId, at_ms: EpochMs,
    event: Type.Union([Type.Literal('deliver'), Type.Literal('ack'), Type.Literal('start'), Type.Literal('dead_letter'), Type.Literal('requeue')]),
    attempt: Type.Integer({ minimum: 0, maximum: 100 }),
    detail: Type.Optional(Type.String({ maxLength: 512 })),
    /**
     * The device's signed COMMAND_ACK frame: required for `ack` and `start` (checkDeviceWord, on
     * encode and decode), absent for the gateway's own events (deliver, dead_letter, requeue).
     */
    frame: Type.Optional(SignedFrameText),
    /** The command's trace (from its delivery, or the device's ACK), so the control plane logs the event under it. */
    traceparent: Type.Optional(Traceparent),
  }, strict),

  /** gateway -> control plane: the device's signed COMMAND_RESULT frame. */
  command_result: Type.Object({
    command_id: FrameId, device_id: DeviceId, gateway_id: GatewayId, at_ms: EpochMs, frame: SignedFrameText,
    /** The command's trace, as for command_progress (the device also signs it inside the frame). */
    traceparent: Type.Optional(Traceparent),
  }, strict),

  /** gateway -> control plane: an ALERT frame from a device, or one the gateway raised. */
  alert: Type.Object({ device_id: DeviceId, gateway_id: GatewayId, at_ms: EpochMs, frame: Type.Optional(SignedFrameText),
    severity: Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('critical')]),
    kind: Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$' }), message: Type.String({ maxLength: 1024 }),
    /** A `clock_skew` alert's measured offset; the control plane records it on the device. */
    clock_offset_ms: Type.Optional(ClockOffsetMs) }, strict),

  /** gateway -> control plane: the device's signed OTA_REPORT frame (docs/ota.md), verified again by the control plane. */
  ota_report: Type.Object({ device_id: DeviceId, gateway_id: GatewayId, at_ms: EpochMs, frame: SignedFrameText }, strict),

  /** gateway -> control plane: the device's signed POLICY_BUNDLE_REPORT frame (audited once per device, version and outcome). */
  policy_bundle_report: Type.Object({ device_id: DeviceId, gateway_id: GatewayId, at_ms: EpochMs, frame: SignedFrameText }, strict),

  /** gateway -> telemetry writer: a verified TELEMETRY frame. */
  telemetry: Type.Object({ device_id: DeviceId, gateway_id: GatewayId, received_at_ms: EpochMs, frame: SignedFrameText }, strict),

  /**
   * gateway -> telemetry writer: several devices' verified telemetry frames in one entry, each as
   * a `telemetry` entry would carry it (decision 0023). The decoded form; on the bus the frames
   * travel in one field of their own (encodeTelemetryFrames).
   */
  telemetry_frames: Type.Object({
    gateway_id: GatewayId,
    frames: Type.Array(Type.Object({ device_id: DeviceId, received_at_ms: EpochMs, frame: SignedFrameText }, strict), { minItems: 1, maxItems: telemetryFramesLimits.framesPerEntryMax }),
  }, strict),
} as const satisfies Record<string, TSchema>;

export type BusEntryKind = keyof typeof busEntrySchemas;
export type BusEntryData<K extends BusEntryKind> = Static<(typeof busEntrySchemas)[K]>;

// Compiled once at load.
const checks = Object.fromEntries(
  Object.entries(busEntrySchemas).map(([kind, schema]) => [kind, TypeCompiler.Compile(schema as TSchema)]),
) as Record<BusEntryKind, TypeCheck<TSchema>>;

/**
 * Kinds whose signed device frame travels in a bus field of its own (`frame`, the text as the
 * gateway received it) beside `data` (the other members), not as a JSON string inside `data`.
 * Inside `data` every quote of the frame was escaped by the gateway's canonicalize and unescaped
 * by the reader's strict parse: about a tenth of the ingest path's CPU per telemetry sample
 * (issue 17, docs/benchmarks.md 2026-12-04 night). Telemetry, the high-volume kind, and since
 * 2026-12-06 a command's device frames (the ACKs in command_progress, the RESULT in
 * command_result: three a command, each escaped and unescaped as a string of 400-600 bytes, about
 * 20 us a frame). A command_progress without a frame (deliver, requeue, dead_letter) is written
 * whole in `data` as before. A reader still takes the older form (frame inside `data`), so
 * entries appended before an upgrade are read as they were. An older reader refuses the new form
 * (PROTO_SCHEMA_INVALID, so it is dead-lettered, not lost; a command's ACK or RESULT is asked of
 * the device again by the redelivery sweep): upgrade the control planes before the gateways.
 */
const frameFieldKinds: ReadonlySet<BusEntryKind> = new Set<BusEntryKind>(['telemetry', 'command_progress', 'command_result']);

export function encodeBusEntry<K extends BusEntryKind>(kind: K, data: BusEntryData<K>): Record<string, string> {
  if (kind === 'telemetry_frames') return encodeTelemetryFrames(data as BusEntryData<'telemetry_frames'>);
  if (kind === 'telemetry') {
    const fields = encodeTelemetryCanonical(data as BusEntryData<'telemetry'>);
    if (fields !== undefined) return fields;
  }
  if (!checks[kind].Check(data)) {
    const first = checks[kind].Errors(data).First();
    throw new SdcError('PROTO_SCHEMA_INVALID', `bus entry ${kind} ${first?.path ?? ''}: ${first?.message ?? 'invalid'}`);
  }
  checkDeviceWord(kind, data);
  if (frameFieldKinds.has(kind) && 'frame' in data && typeof data.frame === 'string') {
    const { frame, ...rest } = data;
    return { kind, data: canonicalize(rest), frame };
  }
  return { kind, data: canonicalize(data) };
}

export type DecodedBusEntry = { [K in BusEntryKind]: { kind: K; data: BusEntryData<K> } }[BusEntryKind];

/**
 * An entry's decoding, kept on its fields object: the control plane reads one events entry in
 * the stream consumer (its partition key), the events handler and the compliance hook, and each
 * strict parse and schema check of the same text was done again (three per presence entry, two
 * per other entry; issue 17). A bus entry's fields are immutable once read (BusEntry.fields is
 * Readonly, each read makes new objects), so the same object decodes to the same value. A
 * non-enumerable symbol property, not a WeakMap: a WeakMap entry per telemetry entry made the
 * decode 3x dearer (5 -> 15 us, GC of its entries), a property costs about 0.3 us. Only
 * successes are kept: a malformed entry is parsed again by each reader and refused with the same
 * typed error every time.
 */
const decodedKey = Symbol('sdc.decodedBusEntry');

/**
 * Decodes and validates; throws PROTO_UNKNOWN_TYPE / PROTO_SCHEMA_INVALID / PROTO_JSON_* for a bad entry.
 * The value is shared by every reader of the same fields object (see decodedKey): read it, never change it.
 */
export function decodeBusEntry(fields: Readonly<Record<string, string>>): DecodedBusEntry {
  const known = (fields as { [decodedKey]?: DecodedBusEntry })[decodedKey];
  if (known !== undefined) return known;
  const entry = decodeBusEntryText(fields);
  if (Object.isExtensible(fields)) Object.defineProperty(fields, decodedKey, { value: entry, enumerable: false });
  return entry;
}

/** Resolved once per call otherwise (a caller's limits object is never cached by resolveProtocolLimits). */
const entryDataLimits = resolveProtocolLimits({ frameBytesMax: 256 * 1024 });

/**
 * The value of an entry whose frame came in its own field (frameFieldKinds): `data` must be an
 * object without a frame of its own, and the kind must be one that carries it so.
 */
function withFrameField(kind: BusEntryKind, parsed: JsonValue, frame: string): JsonValue {
  if (!frameFieldKinds.has(kind)) throw new SdcError('PROTO_SCHEMA_INVALID', `bus entry ${kind} carries no frame field`);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || Object.hasOwn(parsed, 'frame')) {
    throw new SdcError('PROTO_SCHEMA_INVALID', `bus entry ${kind} has a frame field and data that is not an object without a frame`);
  }
  return { ...parsed, frame };
}

function decodeBusEntryText(fields: Readonly<Record<string, string>>): DecodedBusEntry {
  const kind = fields.kind;
  if (kind === 'telemetry_frames') return { kind, data: decodeTelemetryFrames(fields) };
  if (kind === 'telemetry' && fields.frame !== undefined) {
    const data = decodeTelemetryCanonical(fields.data, fields.frame);
    if (data !== undefined) return { kind, data };
  }
  if (kind === undefined || !Object.hasOwn(busEntrySchemas, kind)) throw new SdcError('PROTO_UNKNOWN_TYPE', `unknown bus entry kind ${String(kind).slice(0, 64)}`);
  const parsed = parseStrictJson(fields.data ?? '', entryDataLimits);
  const data = fields.frame === undefined ? parsed : withFrameField(kind as BusEntryKind, parsed, fields.frame);
  const check = checks[kind as BusEntryKind];
  if (!check.Check(data)) {
    const first = check.Errors(data).First();
    throw new SdcError('PROTO_SCHEMA_INVALID', `bus entry ${kind} ${first?.path ?? ''}: ${first?.message ?? 'invalid'}`);
  }
  checkDeviceWord(kind as BusEntryKind, data);
  return { kind, data } as DecodedBusEntry;
}

/** command_progress events that only the device's signed COMMAND_ACK may cause (its stage `received` or `executing`). */
const deviceSignedProgressEvents: ReadonlySet<string> = new Set(['ack', 'start']);

/**
 * An `ack` or `start` is the device's word (docs/security/threat-model.md: the ACK frame is
 * verified and audited as `command.ack`), so an entry claiming one without the device's frame is
 * refused here, in either form (frame in its own field or inside `data`: both are merged before
 * this check), by every reader and writer: otherwise anything that can append to `sdc:events` (a
 * hostile gateway) would move a command to ack_received and executing with nothing signed. No
 * gateway writes one (CommandRouter.onAck always forwards the frame). Refused COMMAND_ACK_UNSIGNED,
 * a remote fault, so the control plane dead-letters the entry with that code and logs it, as it
 * does an ACK whose frame fails verification.
 */
function checkDeviceWord(kind: BusEntryKind, data: unknown): void {
  if (kind !== 'command_progress') return;
  const progress = data as BusEntryData<'command_progress'>;
  if (deviceSignedProgressEvents.has(progress.event) && progress.frame === undefined) {
    throw new SdcError('COMMAND_ACK_UNSIGNED', `command_progress ${progress.event} for command ${progress.command_id} from gateway ${progress.gateway_id} carries no device frame`, {
      commandId: progress.command_id, deviceId: progress.device_id, gatewayId: progress.gateway_id,
    });
  }
}

/**
 * The telemetry entry, the one written per sample, in the exact text every gateway writes (issue
 * 17): its `data` is canonical JSON of three members whose values the schema limits to ASCII
 * names and a safe integer, so that text can be written and recognised without the general
 * canonicalize, strict parse and compiled schema check (their encode and decode were 5.4 % of the
 * ingest bench's busy CPU, about 7 us per sample; with this 1.7 %: docs/benchmarks.md,
 * 2026-12-05). Both are only shortcuts: what they accept is exactly what the general path accepts
 * (same bytes written, same value read), and anything else (another spelling of the same JSON, a
 * value out of bounds, an extra member) takes the general path, so it is read or refused as
 * before with the same typed error.
 */
const deviceIdPattern = new RegExp(deviceIdPatternSource);
const gatewayIdPattern = new RegExp(gatewayIdPatternSource);
/** Canonical data of a telemetry entry: the names in sorted order, no whitespace, strings needing no escapes, a plain non-negative integer. */
const telemetryDataPattern = new RegExp(
  `^\\{"device_id":"(${deviceIdPatternSource.slice(1, -1)})","gateway_id":"(${gatewayIdPatternSource.slice(1, -1)})","received_at_ms":(0|[1-9][0-9]{0,15})\\}$`,
);

/** The fields encodeBusEntry writes for a telemetry entry the schema accepts with exactly its four members; undefined otherwise (the general path decides). */
function encodeTelemetryCanonical(data: BusEntryData<'telemetry'>): Record<string, string> | undefined {
  if (data === null || typeof data !== 'object' || Object.getPrototypeOf(data) !== Object.prototype) return undefined;
  // Exactly the four members, own and enumerable (the schema counts own names, canonicalize writes the enumerable ones).
  if (Object.keys(data).length !== 4 || Object.getOwnPropertyNames(data).length !== 4) return undefined;
  if (!(Object.hasOwn(data, 'device_id') && Object.hasOwn(data, 'gateway_id') && Object.hasOwn(data, 'received_at_ms') && Object.hasOwn(data, 'frame'))) return undefined;
  const { device_id: deviceId, gateway_id: gatewayId, received_at_ms: receivedAtMs, frame } = data;
  if (typeof deviceId !== 'string' || typeof gatewayId !== 'string' || typeof frame !== 'string' || typeof receivedAtMs !== 'number') return undefined;
  if (!Number.isSafeInteger(receivedAtMs) || receivedAtMs < 0 || frame.length > signedFrameTextLengthMax) return undefined;
  if (!deviceIdPattern.test(deviceId) || !gatewayIdPattern.test(gatewayId)) return undefined;
  // The names match patterns without quote, backslash or control characters, so their JSON text is themselves; String(-0) is "0" as in JCS.
  return { kind: 'telemetry', data: `{"device_id":"${deviceId}","gateway_id":"${gatewayId}","received_at_ms":${String(receivedAtMs)}}`, frame };
}

/** The value of a telemetry entry whose data is in the canonical form above and whose frame is within bounds; undefined otherwise. */
function decodeTelemetryCanonical(dataText: string | undefined, frame: string): BusEntryData<'telemetry'> | undefined {
  if (dataText === undefined || frame.length > signedFrameTextLengthMax) return undefined;
  const match = telemetryDataPattern.exec(dataText);
  if (match === null) return undefined;
  const receivedAtMs = Number(match[3]);
  if (!Number.isSafeInteger(receivedAtMs)) return undefined;
  return { device_id: match[1]!, gateway_id: match[2]!, received_at_ms: receivedAtMs, frame };
}

/** For tests: whether a telemetry entry's fields take the canonical shortcut (they must decode the same either way). */
export function telemetryEntryIsCanonical(fields: Readonly<Record<string, string>>): boolean {
  return fields.kind === 'telemetry' && fields.frame !== undefined && decodeTelemetryCanonical(fields.data, fields.frame) !== undefined;
}

/**
 * A telemetry_frames entry on the bus (decision 0023): `data` is canonical JSON of the gateway and,
 * per frame, its device, receive time and length in UTF-16 units (`chars`); `frames` is the frames'
 * texts one after another, as received (no escaping, as for a `telemetry` entry's own `frame`
 * field). The reader cuts `frames` by the lengths, which must add up to it exactly.
 */
const TelemetryFramesWire = Type.Object({
  gateway_id: GatewayId,
  frames: Type.Array(Type.Object({
    device_id: DeviceId, received_at_ms: EpochMs, chars: Type.Integer({ minimum: 1, maximum: signedFrameTextLengthMax }),
  }, strict), { minItems: 1, maxItems: telemetryFramesLimits.framesPerEntryMax }),
}, strict);
const telemetryFramesWireCheck = TypeCompiler.Compile(TelemetryFramesWire);

function encodeTelemetryFrames(data: BusEntryData<'telemetry_frames'>): Record<string, string> {
  if (!checks.telemetry_frames.Check(data)) {
    const first = checks.telemetry_frames.Errors(data).First();
    throw new SdcError('PROTO_SCHEMA_INVALID', `bus entry telemetry_frames ${first?.path ?? ''}: ${first?.message ?? 'invalid'}`);
  }
  const wire = { gateway_id: data.gateway_id, frames: data.frames.map((f) => ({ device_id: f.device_id, received_at_ms: f.received_at_ms, chars: f.frame.length })) };
  return { kind: 'telemetry_frames', data: canonicalize(wire), frames: data.frames.map((f) => f.frame).join('') };
}

function decodeTelemetryFrames(fields: Readonly<Record<string, string>>): BusEntryData<'telemetry_frames'> {
  const text = fields.frames;
  if (text === undefined) throw new SdcError('PROTO_SCHEMA_INVALID', 'bus entry telemetry_frames has no frames field');
  const parsed = parseStrictJson(fields.data ?? '', entryDataLimits);
  if (!telemetryFramesWireCheck.Check(parsed)) {
    const first = telemetryFramesWireCheck.Errors(parsed).First();
    throw new SdcError('PROTO_SCHEMA_INVALID', `bus entry telemetry_frames ${first?.path ?? ''}: ${first?.message ?? 'invalid'}`);
  }
  const wire = parsed as Static<typeof TelemetryFramesWire>;
  let at = 0;
  const frames = wire.frames.map((f) => {
    const frame = text.slice(at, at + f.chars);
    at += f.chars;
    return { device_id: f.device_id, received_at_ms: f.received_at_ms, frame };
  });
  if (at !== text.length) throw new SdcError('PROTO_SCHEMA_INVALID', `bus entry telemetry_frames: the frames' lengths add up to ${at}, its frames field has ${text.length}`);
  return { gateway_id: wire.gateway_id, frames };
}
