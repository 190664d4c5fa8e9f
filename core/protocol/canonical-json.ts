import { assert, SdcError } from '../errors/index.js';
import { defaultProtocolLimits, type ProtocolLimits } from './limits.js';

/**
 * JSON Canonicalization Scheme (RFC 8785): the one byte form that signatures and digests cover.
 * Numbers use ECMAScript Number::toString, strings escape only what JSON requires, object
 * members are sorted by UTF-16 code units, and there is no whitespace.
 *
 * Anything JCS cannot represent exactly is refused with a typed error instead of being coerced
 * the way JSON.stringify coerces it (NaN -> null, undefined members dropped, Date -> toJSON()):
 * a signer and a verifier that silently disagree on the signed bytes are worse than a refusal.
 */

export interface CanonicalizeOptions {
  /** Only `depthMax` applies here; the rest of the limits are the parser's business. */
  limits?: Partial<Pick<ProtocolLimits, 'depthMax'>>;
}

/** The writer recurses once per nesting level, so the depth limit also bounds the call stack. */
const depthCeiling = 1_000;

const utf8Encoder = new TextEncoder();

/** Canonical JSON text of `value`; throws SdcError PROTO_JCS_* / PROTO_JSON_TOO_DEEP on values JCS cannot represent. */
export function canonicalize(value: unknown, options: CanonicalizeOptions = {}): string {
  const depthMax = options.limits?.depthMax ?? defaultProtocolLimits.depthMax;
  assert(Number.isSafeInteger(depthMax) && depthMax >= 0 && depthMax <= depthCeiling,
    `canonicalize depthMax must be an integer from 0 to ${depthCeiling}`);
  const writer = new CanonicalWriter(depthMax);
  writer.write(value);
  return writer.take();
}

/** UTF-8 bytes of the canonical form: exactly what gets hashed or signed. */
export function canonicalBytes(value: unknown, options: CanonicalizeOptions = {}): Uint8Array {
  // Lossless: canonicalize() refuses lone surrogates, the only strings UTF-8 cannot encode.
  return utf8Encoder.encode(canonicalize(value, options));
}

/**
 * The canonical `"name":value` text of each named member of `object`, in the order given: exactly
 * the text canonicalize(object) writes for that member (its depth and error paths are those inside
 * `object`). For a caller that assembles a canonical object from parts (envelope.ts writes the
 * signed fields once and the whole frame from the same parts); that caller owns what
 * canonicalize would otherwise check of `object` itself: a plain object whose enumerable own
 * data members are exactly the names, which it joins with ',' in sorted order inside braces.
 */
export function canonicalMembers(object: object, names: readonly string[], options: CanonicalizeOptions = {}): string[] {
  const depthMax = options.limits?.depthMax ?? defaultProtocolLimits.depthMax;
  assert(Number.isSafeInteger(depthMax) && depthMax >= 1 && depthMax <= depthCeiling,
    `canonicalMembers depthMax must be an integer from 1 to ${depthCeiling}`);
  const writer = new CanonicalWriter(depthMax, object);
  return names.map((name) => {
    writer.writeMember(object, name);
    return writer.take();
  });
}

class CanonicalWriter {
  /** Containers currently being written, outermost first: the depth and the cycle check. */
  private readonly ancestors: object[] = [];
  /** Member names and indexes leading to the current value, for error details only. */
  private readonly path: (string | number)[] = [];

  /**
   * The text so far: appended to, not pushed and joined (V8 concatenates into a rope, then
   * flattens once; an array of small strings cost more per frame, docs/benchmarks.md 2026-12-04).
   */
  private out = '';
  /** Made once, not per string written: only an error reads it. */
  private readonly pointerOf = (): string => this.pointer();

  constructor(private readonly depthMax: number, parent?: object) {
    // Writing members of `parent` on their own: it is their container, as writeContainer would have made it.
    if (parent !== undefined) this.ancestors.push(parent);
  }

  /** The text written since the last take. */
  take(): string {
    const text = this.out;
    this.out = '';
    return text;
  }

  write(value: unknown): void {
    switch (typeof value) {
      case 'string':
        this.out += quoteString(value, this.pointerOf);
        return;
      case 'number':
        if (!Number.isFinite(value)) {
          throw new SdcError('PROTO_JCS_NON_FINITE', `${value} has no JSON representation`, { path: this.pointer() });
        }
        // ECMAScript Number::toString is exactly the serialisation RFC 8785 section 3.2.2.3 requires; it maps -0 to "0".
        this.out += String(value);
        return;
      case 'boolean':
        this.out += value ? 'true' : 'false';
        return;
      case 'object':
        if (value === null) {
          this.out += 'null';
          return;
        }
        this.writeContainer(value);
        return;
      default:
        // undefined, function, symbol, bigint: JSON has no such value, and JSON.stringify's
        // habit of dropping or throwing on them differs by position, so refuse them all.
        throw this.unsupported(`a ${typeof value} has no JSON representation`);
    }
  }

  private writeContainer(value: object): void {
    const isArray = Array.isArray(value) && Object.getPrototypeOf(value) === Array.prototype;
    const prototype = Object.getPrototypeOf(value) as unknown;
    if (!isArray && prototype !== Object.prototype && prototype !== null) {
      const name = (value.constructor as { name?: unknown } | undefined)?.name;
      throw this.unsupported(`only arrays and plain objects are JSON, not ${typeof name === 'string' && name ? name : 'this object'}`);
    }
    if (this.ancestors.includes(value)) {
      throw new SdcError('PROTO_JSON_TOO_DEEP', 'value contains a cycle', { path: this.pointer() });
    }
    if (this.ancestors.length >= this.depthMax) {
      throw new SdcError('PROTO_JSON_TOO_DEEP', `nesting exceeds ${this.depthMax} levels`, { path: this.pointer(), depthMax: this.depthMax });
    }
    this.ancestors.push(value);
    if (isArray) this.writeArray(value as unknown[]);
    else this.writeObject(value);
    this.ancestors.pop();
  }

  private writeArray(array: unknown[]): void {
    // Own keys are the indexes plus "length" exactly when the array has no holes and no extra
    // properties; either would be silently lost in JSON.
    if (Reflect.ownKeys(array).length !== array.length + 1) {
      throw this.unsupported('sparse arrays and arrays with extra properties have no exact JSON representation');
    }
    this.out += '[';
    for (let index = 0; index < array.length; index++) {
      if (index > 0) this.out += ',';
      this.path.push(index);
      this.write(array[index]);
      this.path.pop();
    }
    this.out += ']';
  }

  private writeObject(object: object): void {
    // The own keys' array is new and ours, so it is checked, then sorted in place, as the names.
    const names = Reflect.ownKeys(object) as string[];
    /** Whether the names came in canonical order already (a parsed canonical text's objects do). */
    let sorted = true;
    for (let at = 0; at < names.length; at++) {
      const key = names[at] as string | symbol;
      if (typeof key === 'symbol') throw this.unsupported('symbol-keyed properties have no JSON representation');
      const descriptor = Object.getOwnPropertyDescriptor(object, key);
      // Accessors would run code mid-serialisation and could answer differently on each read;
      // non-enumerable data is invisible to JSON. Only enumerable own data properties are JSON.
      if (descriptor === undefined || !descriptor.enumerable || !('value' in descriptor)) {
        this.path.push(key);
        throw this.unsupported('only enumerable data properties have a JSON representation');
      }
      if (sorted && at > 0 && !(names[at - 1]! < key)) sorted = false;
    }
    // Default sort compares UTF-16 code units, which is the order RFC 8785 section 3.2.3 requires;
    // so does `<` on strings, so names that rose at every step are in that order already, and the
    // sort (which copies the array it sorts: 6 % of the bytes a simulated agent's start-up
    // allocates, issue 17) is skipped.
    if (!sorted) names.sort();
    this.out += '{';
    for (let index = 0; index < names.length; index++) {
      if (index > 0) this.out += ',';
      this.writeMember(object, names[index] as string);
    }
    this.out += '}';
  }

  /** `"name":value` of one member of `object`, the object being the innermost ancestor. */
  writeMember(object: object, name: string): void {
    this.path.push(name);
    this.out += quoteString(name, this.pointerOf) + ':';
    const member = (object as Record<string, unknown>)[name];
    // Refused, not dropped: JSON.stringify drops undefined members, so a signer using it and
    // a verifier using us would sign different bytes for the "same" object. Callers omit the key instead.
    if (member === undefined) throw this.unsupported('an undefined member has no JSON representation (omit the member instead)');
    this.write(member);
    this.path.pop();
  }

  private unsupported(message: string): SdcError {
    return new SdcError('PROTO_JCS_UNSUPPORTED_VALUE', message, { path: this.pointer() });
  }

  /** JSON Pointer (RFC 6901) to the value being written. */
  private pointer(): string {
    return this.path.map((part) => '/' + String(part).replaceAll('~', '~0').replaceAll('/', '~1')).join('');
  }
}

/** Characters that need attention: the two JSON metacharacters, C0 controls and any surrogate. */
const needsAttention = /["\\\u0000-\u001f\ud800-\udfff]/;

/** Escapes for U+0000..U+001F: the five short forms JCS prescribes, else lowercase \u00xx. */
const controlEscapes: readonly string[] = Array.from({ length: 0x20 }, (_, code) => {
  const short: Record<number, string> = { 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0c: '\\f', 0x0d: '\\r' };
  return short[code] ?? '\\u' + code.toString(16).padStart(4, '0');
});

function quoteString(text: string, pointer: () => string): string {
  if (!needsAttention.test(text)) return '"' + text + '"';
  let quoted = '"';
  let runStart = 0;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    let escape: string;
    if (code < 0x20) escape = controlEscapes[code] as string;
    else if (code === 0x22) escape = '\\"';
    else if (code === 0x5c) escape = '\\\\';
    else if (code >= 0xd800 && code <= 0xdfff) {
      const next = text.charCodeAt(index + 1);
      if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        index++; // a well-formed pair is written literally, as UTF-8 will encode it
        continue;
      }
      throw new SdcError('PROTO_JCS_LONE_SURROGATE', `lone surrogate U+${code.toString(16).toUpperCase()} at index ${index}`,
        { path: pointer(), index });
    } else continue;
    quoted += text.slice(runStart, index) + escape;
    runStart = index + 1;
  }
  return quoted + text.slice(runStart) + '"';
}
