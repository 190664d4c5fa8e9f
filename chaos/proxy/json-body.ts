import { SdcError } from '../../core/errors/index.js';
import type { JsonObject, JsonValue } from '../../core/protocol/json-value.js';
import { parseStrictJson } from '../../core/protocol/strict-json.js';
import { badRequestBody } from './addresses.js';

/**
 * Parses a request body with the protocol's strict parser (depth, width and size bounded, no
 * duplicate members); any refusal becomes Toxiproxy's 400 "bad request body: ...".
 */
export function parseJsonBody(body: Buffer, bytesMax: number): JsonValue {
  try {
    return parseStrictJson(body, { frameBytesMax: bytesMax });
  } catch (error) {
    if (error instanceof SdcError) throw badRequestBody(error.message);
    throw error;
  }
}

export function expectObject(value: JsonValue, what: string): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequestBody(`${what} must be a JSON object`);
  return value;
}

/** A member that is absent or null reads as undefined (Go leaves the field at its default). */
export function member(object: JsonObject, name: string): JsonValue | undefined {
  const value = Object.hasOwn(object, name) ? object[name] : undefined;
  return value === null ? undefined : value;
}

export function optionalString(object: JsonObject, name: string): string | undefined {
  const value = member(object, name);
  if (value !== undefined && typeof value !== 'string') throw badRequestBody(`${name} must be a string`, { field: name });
  return value;
}

export function optionalBoolean(object: JsonObject, name: string): boolean | undefined {
  const value = member(object, name);
  if (value !== undefined && typeof value !== 'boolean') throw badRequestBody(`${name} must be true or false`, { field: name });
  return value;
}
