import { SdcError } from '../../core/errors/index.js';
import type { JsonObject, JsonValue } from '../../core/protocol/json-value.js';
import { badRequestBody } from './addresses.js';
import { expectObject, member, optionalString } from './json-body.js';
import type { ChaosLimits } from './limits.js';
import { checkName } from './names.js';
import { makeToxicState, type ToxicState } from './toxic-state.js';
import { toxicKinds } from './toxics/index.js';
import type { AttributeValues, ToxicKind, ToxicStream } from './toxics/types.js';

function parseStream(body: JsonObject): ToxicStream {
  const stream = optionalString(body, 'stream') ?? 'downstream';
  if (stream !== 'upstream' && stream !== 'downstream') {
    throw new SdcError('CHAOS_INVALID_STREAM', 'stream was invalid, can be either upstream or downstream', { field: 'stream' });
  }
  return stream;
}

function parseKind(body: JsonObject): ToxicKind {
  const kind = toxicKinds.get(optionalString(body, 'type') ?? '');
  if (kind === undefined) throw new SdcError('CHAOS_INVALID_TOXIC_TYPE', 'invalid toxic type', { field: 'type' });
  return kind;
}

/** A probability from 0 to 1 (Toxiproxy takes any number; above 1 is always, below 0 never). */
function parseToxicity(body: JsonObject, fallback: number): number {
  const value = member(body, 'toxicity') ?? fallback;
  if (typeof value !== 'number' || value < 0 || value > 1) throw badRequestBody('toxicity must be a number from 0 to 1', { field: 'toxicity' });
  return value;
}

function checkAttribute(kind: ToxicKind, name: string, value: JsonValue, limits: ChaosLimits): number {
  const spec = kind.attributes.find((a) => a.name === name);
  if (spec === undefined) throw badRequestBody(`${kind.type} has no attribute ${name}`, { field: `attributes.${name}` });
  const max = spec.max(limits);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < spec.min || value > max) {
    throw badRequestBody(`attribute ${name} must be an integer from ${spec.min} to ${max}`, { field: `attributes.${name}` });
  }
  return value;
}

/**
 * The attributes given, over `base` (the defaults, or the toxic's current values for an update:
 * Toxiproxy decodes an update onto a copy of the toxic). Unknown names are refused, so a typo
 * (`jiter`) is not silently a toxic without jitter.
 */
function parseAttributes(kind: ToxicKind, value: JsonValue | undefined, base: AttributeValues, limits: ChaosLimits): AttributeValues {
  const given = value === undefined ? {} : expectObject(value, 'attributes');
  const values: Record<string, number> = { ...base };
  for (const [name, raw] of Object.entries(given)) values[name] = checkAttribute(kind, name, raw, limits);
  for (const spec of kind.attributes) checkAttribute(kind, spec.name, values[spec.name]!, limits);
  const problem = kind.crossCheck?.(values);
  if (problem !== undefined) throw badRequestBody(problem, { field: 'attributes' });
  return values;
}

function defaults(kind: ToxicKind): AttributeValues {
  return Object.fromEntries(kind.attributes.map((a) => [a.name, a.fallback]));
}

/** POST /proxies/{proxy}/toxics, in Toxiproxy's order: stream, default name, type, then attributes. */
export function parseToxicCreate(value: JsonValue, limits: ChaosLimits): ToxicState {
  const body = expectObject(value, 'toxic');
  const stream = parseStream(body);
  const kind = parseKind(body);
  const name = checkName(optionalString(body, 'name') || `${kind.type}_${stream}`, 'name', limits.nameLengthMax);
  const toxicity = parseToxicity(body, 1);
  const attributes = parseAttributes(kind, member(body, 'attributes'), defaults(kind), limits);
  return makeToxicState({ name, kind, stream, toxicity, attributes });
}

/** POST/PATCH /proxies/{proxy}/toxics/{toxic}: new attributes and toxicity; name, type and stream stay. */
export function parseToxicUpdate(value: JsonValue, current: ToxicState, limits: ChaosLimits): ToxicState {
  const body = expectObject(value, 'toxic');
  const toxicity = parseToxicity(body, current.toxicity);
  const attributes = parseAttributes(current.kind, member(body, 'attributes'), current.attributes, limits);
  return makeToxicState({ ...current, toxicity, attributes });
}
