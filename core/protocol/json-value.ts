/** A value that JSON can represent exactly: what the strict parser returns and what canonicalization accepts. */
export type JsonPrimitive = null | boolean | number | string;
export type JsonArray = JsonValue[];
export interface JsonObject {
  [member: string]: JsonValue;
}
export type JsonValue = JsonPrimitive | JsonArray | JsonObject;
