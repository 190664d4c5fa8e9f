import { SdcError } from '../errors/index.js';
import type { JsonArray, JsonObject, JsonValue } from './json-value.js';
import { resolveProtocolLimits, type ProtocolLimits } from './limits.js';

/**
 * The strict JSON parser for untrusted frames (RFC 8259 grammar, I-JSON restrictions).
 *
 * Why not JSON.parse: it accepts duplicate member names (last one wins, so two parties can read
 * different values from one signed frame), lets `__proto__` reach object prototypes in careless
 * consumers, has no depth, width or length limits, and its errors are untyped.
 *
 * The parser is iterative with an explicit container stack bounded by depthMax, so no input
 * (`[[[[…`) and no caller-chosen limit can overflow the call stack. Every refusal is an SdcError;
 * no other exception escapes for any input.
 */

// fatal: invalid UTF-8 is an error, not U+FFFD. ignoreBOM: keep a BOM in the text so the
// parser can refuse it (RFC 8259 section 8.1: senders must not add one).
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function parseStrictJson(input: Uint8Array | string, limits?: Partial<ProtocolLimits>): JsonValue {
  const resolved = resolveProtocolLimits(limits);
  const text = decodeFrame(input, resolved.frameBytesMax);
  return new StrictJsonParser(text, resolved).parseDocument();
}

/** parseStrictJson's value, with what a verifier needs to authenticate the bytes as received. */
export interface StrictJsonWithForm {
  readonly value: JsonValue;
  /**
   * The input is exactly canonicalize(value) (RFC 8785, canonical-json.ts): no whitespace,
   * members in UTF-16 order, every number as Number::toString writes it, no escape in any string.
   * False also for canonical text this parser does not prove so (a string with an escape).
   */
  readonly canonical: boolean;
  /**
   * UTF-8 byte range of the top-level object's member named `member` with the ',' before it:
   * [start, end) cuts `,"name":value` out of the bytes. Set only when `canonical` and the member
   * exists and is not the first.
   */
  readonly memberBytes: { readonly start: number; readonly end: number } | undefined;
  /** The input as the parser read it (decoded as strict UTF-8): a caller that passes the document on as text need not decode it again. */
  readonly text: string;
}

/**
 * parseStrictJson, and whether the input is canonical JSON, and where one top-level member lies
 * in it. For envelope.ts: the signature of a canonical frame covers its bytes without `sig`, so a
 * verifier need not write the fields out again (issue 17). Same refusals as parseStrictJson.
 */
export function parseStrictJsonWithForm(input: Uint8Array | string, member: string, limits?: Partial<ProtocolLimits>): StrictJsonWithForm {
  const resolved = resolveProtocolLimits(limits);
  const text = decodeFrame(input, resolved.frameBytesMax);
  const parser = new StrictJsonParser(text, resolved, member);
  const value = parser.parseDocument();
  const range = parser.memberChars;
  if (!parser.canonical || range === undefined) return { value, canonical: parser.canonical, memberBytes: undefined, text };
  const byteLength = typeof input === 'string' ? utf8ByteLength(text, text.length, false) : input.byteLength;
  // All ASCII (the usual frame): characters are bytes.
  if (byteLength === text.length) return { value, canonical: true, memberBytes: range, text };
  return { value, canonical: true, memberBytes: { start: utf8ByteLength(text, range.start, false), end: utf8ByteLength(text, range.end, false) }, text };
}

/** Checks the size before any decoding work, then decodes strictly. */
function decodeFrame(input: Uint8Array | string, frameBytesMax: number): string {
  if (typeof input === 'string') {
    // Every code unit is at least one UTF-8 byte, so this bounds the exact count below.
    if (input.length > frameBytesMax) {
      throw new SdcError('PROTO_FRAME_TOO_LARGE', `frame exceeds ${frameBytesMax} bytes`, { frameBytesMax });
    }
    const frameBytes = utf8ByteLength(input, input.length, true);
    if (frameBytes > frameBytesMax) {
      throw new SdcError('PROTO_FRAME_TOO_LARGE', `frame of ${frameBytes} bytes exceeds ${frameBytesMax}`, { frameBytes, frameBytesMax });
    }
    return input;
  }
  if (!(input instanceof Uint8Array)) {
    throw new SdcError('PROTO_INVALID_ARGUMENT', 'parseStrictJson takes a Uint8Array or a string');
  }
  if (input.byteLength > frameBytesMax) {
    throw new SdcError('PROTO_FRAME_TOO_LARGE', `frame of ${input.byteLength} bytes exceeds ${frameBytesMax}`,
      { frameBytes: input.byteLength, frameBytesMax });
  }
  try {
    return utf8Decoder.decode(input);
  } catch (error) {
    throw new SdcError('PROTO_NOT_UTF8', 'frame is not valid UTF-8', {}, { cause: error });
  }
}

/**
 * UTF-8 length of text[0, end). With `refuseLoneSurrogates`, a lone surrogate (text that has no
 * UTF-8 encoding, so could not have arrived as a frame) is PROTO_NOT_UTF8; otherwise it counts 3.
 */
function utf8ByteLength(text: string, end: number, refuseLoneSurrogates: boolean): number {
  let bytes = 0;
  for (let index = 0; index < end; index++) {
    const code = text.charCodeAt(index);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && isLowSurrogate(text.charCodeAt(index + 1)) && index + 1 < end) {
      bytes += 4;
      index++;
    } else if (refuseLoneSurrogates && code >= 0xd800 && code <= 0xdfff) {
      throw new SdcError('PROTO_NOT_UTF8', `text has a lone surrogate at index ${index}, so no UTF-8 encoding`, { offsetChars: index });
    } else bytes += 3;
  }
  return bytes;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/** Value of one hex digit, or -1. */
function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  return -1;
}

const simpleEscapes: Readonly<Record<number, string>> = {
  0x22: '"', 0x5c: '\\', 0x2f: '/', 0x62: '\b', 0x66: '\f', 0x6e: '\n', 0x72: '\r', 0x74: '\t',
};

/** An array or object whose members are still being read. */
type OpenContainer =
  | { kind: 'array'; items: JsonArray }
  | { kind: 'object'; members: JsonObject; name: string; count: number };

class StrictJsonParser {
  private pos = 0;
  /** Nothing read so far departs from canonical form (see StrictJsonWithForm.canonical). */
  canonical = true;
  /** The character range of `,"<trackedMember>":value` in the top-level object, once read. */
  memberChars: { start: number; end: number } | undefined;
  /** Where the tracked member's ',' was, while its value is read. */
  private trackedStart = -1;

  constructor(private readonly text: string, private readonly limits: Readonly<ProtocolLimits>, private readonly trackedMember?: string) {}

  parseDocument(): JsonValue {
    if (this.text.charCodeAt(0) === 0xfeff) this.fail('a byte order mark is not allowed', 0);
    const stack: OpenContainer[] = [];
    this.skipWhitespace();
    for (;;) {
      // Read one value; an opened non-empty container is pushed and its first member read next.
      let value: JsonValue;
      const code = this.text.charCodeAt(this.pos);
      if (code === 0x5b /* [ */ || code === 0x7b /* { */) {
        if (stack.length >= this.limits.depthMax) {
          throw new SdcError('PROTO_JSON_TOO_DEEP', `nesting exceeds ${this.limits.depthMax} levels`,
            { depthMax: this.limits.depthMax, ...this.offsets(this.pos) });
        }
        this.pos++;
        this.skipWhitespace();
        if (code === 0x5b) {
          if (this.text.charCodeAt(this.pos) !== 0x5d /* ] */) {
            stack.push({ kind: 'array', items: [] });
            continue;
          }
          this.pos++;
          value = [];
        } else {
          if (this.text.charCodeAt(this.pos) !== 0x7d /* } */) {
            const members: JsonObject = {};
            stack.push({ kind: 'object', members, name: this.parseMemberName(members, 0, undefined), count: 0 });
            continue;
          }
          this.pos++;
          value = {};
        }
      } else {
        value = this.parseScalar();
      }

      // Attach the value to its container; close every container that ends here.
      for (;;) {
        const top = stack[stack.length - 1];
        this.skipWhitespace();
        if (top === undefined) {
          if (this.pos !== this.text.length) this.fail('unexpected data after the JSON value', this.pos);
          return value;
        }
        const next = this.text.charCodeAt(this.pos);
        if (top.kind === 'array') {
          if (top.items.length >= this.limits.arrayLengthMax) {
            throw new SdcError('PROTO_ARRAY_TOO_LONG', `array has more than ${this.limits.arrayLengthMax} elements`,
              { arrayLengthMax: this.limits.arrayLengthMax, ...this.offsets(this.pos) });
          }
          top.items.push(value);
          if (next === 0x2c /* , */) {
            this.pos++;
            this.skipWhitespace();
            break;
          }
          if (next !== 0x5d /* ] */) this.fail("expected ',' or ']' after an array element", this.pos);
          this.pos++;
          value = top.items;
        } else {
          // "__proto__" as a data property, never by assignment, which would replace the prototype. Any
          // other name: assignment makes the same own, writable, enumerable data property (a plain
          // object's prototype has no other setter), and costs no runtime call and no descriptor
          // object per member, as defineProperty did (about 2.5 % of a gateway's CPU in the hold).
          if (top.name === '__proto__') Object.defineProperty(top.members, top.name, { value, writable: true, enumerable: true, configurable: true });
          else top.members[top.name] = value;
          top.count++;
          if (this.trackedStart >= 0 && stack.length === 1) {
            this.memberChars = { start: this.trackedStart, end: this.pos };
            this.trackedStart = -1;
          }
          if (next === 0x2c /* , */) {
            const comma = this.pos;
            this.pos++;
            this.skipWhitespace();
            const name = this.parseMemberName(top.members, top.count, top.name);
            if (stack.length === 1 && name === this.trackedMember) this.trackedStart = comma;
            top.name = name;
            break;
          }
          if (next !== 0x7d /* } */) this.fail("expected ',' or '}' after an object member", this.pos);
          this.pos++;
          value = top.members;
        }
        stack.pop();
      }
    }
  }

  /**
   * Reads `"name" :` and refuses a duplicate or one member too many before the value is read.
   * `previous` (the member before, if any) must sort before it for the text to be canonical.
   */
  private parseMemberName(members: JsonObject, count: number, previous: string | undefined): string {
    const start = this.pos;
    if (this.text.charCodeAt(start) !== 0x22 /* " */) this.fail('expected a member name in double quotes', start);
    if (count >= this.limits.objectMembersMax) {
      throw new SdcError('PROTO_OBJECT_TOO_WIDE', `object has more than ${this.limits.objectMembersMax} members`,
        { objectMembersMax: this.limits.objectMembersMax, ...this.offsets(start) });
    }
    const name = this.parseString();
    // UTF-16 code unit order, as canonicalize sorts (Array.prototype.sort) and `<` compares.
    if (previous !== undefined && !(previous < name)) this.canonical = false;
    // While the text is canonical, every object's names so far rose strictly (the line above), so
    // this one differs from each of them and cannot be a duplicate: the own-property lookup (a
    // string-table search per member name, about 1 % of a gateway's CPU per frame) is needed only
    // once the order departed from canonical, and then it is made for every later name.
    if (!this.canonical && Object.hasOwn(members, name)) {
      throw new SdcError('PROTO_JSON_DUPLICATE_KEY', `duplicate member name ${JSON.stringify(name.slice(0, 64))}`,
        this.offsets(start));
    }
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) !== 0x3a /* : */) this.fail("expected ':' after a member name", this.pos);
    this.pos++;
    this.skipWhitespace();
    return name;
  }

  private parseScalar(): JsonValue {
    const code = this.text.charCodeAt(this.pos);
    if (code === 0x22 /* " */) return this.parseString();
    if (code === 0x2d /* - */ || isDigit(code)) return this.parseNumber();
    if (this.text.startsWith('true', this.pos)) return this.literal(4, true);
    if (this.text.startsWith('false', this.pos)) return this.literal(5, false);
    if (this.text.startsWith('null', this.pos)) return this.literal(4, null);
    if (this.pos >= this.text.length) this.fail('unexpected end of input', this.pos);
    this.fail('unexpected character', this.pos);
  }

  private literal<T>(length: number, value: T): T {
    this.pos += length;
    return value;
  }

  /** RFC 8259 section 6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
  private parseNumber(): number {
    const text = this.text;
    const start = this.pos;
    let index = start;
    if (text.charCodeAt(index) === 0x2d) index++;
    if (text.charCodeAt(index) === 0x30) index++;
    else if (isDigit(text.charCodeAt(index))) while (isDigit(text.charCodeAt(index))) index++;
    else this.fail('expected a digit', index);
    if (text.charCodeAt(index) === 0x2e /* . */) {
      index++;
      if (!isDigit(text.charCodeAt(index))) this.fail('expected a digit after the decimal point', index);
      while (isDigit(text.charCodeAt(index))) index++;
    }
    const exponent = text.charCodeAt(index);
    if (exponent === 0x65 || exponent === 0x45) {
      index++;
      const sign = text.charCodeAt(index);
      if (sign === 0x2b || sign === 0x2d) index++;
      if (!isDigit(text.charCodeAt(index))) this.fail('expected a digit in the exponent', index);
      while (isDigit(text.charCodeAt(index))) index++;
    }
    // Number() of text matching the grammar above is the correctly rounded IEEE-754 double.
    const token = text.slice(start, index);
    const value = Number(token);
    if (!Number.isFinite(value)) {
      throw new SdcError('PROTO_JCS_NON_FINITE', 'number is too large for an IEEE-754 double', this.offsets(start));
    }
    // Canonical numbers are written by Number::toString (canonical-json.ts): `1.0`, `1e2`, `-0` are not.
    if (this.canonical && String(value) !== token) this.canonical = false;
    this.pos = index;
    return value;
  }

  /** Reads a string starting at its opening quote; decodes escapes, refuses lone surrogates. */
  private parseString(): string {
    const text = this.text;
    const start = this.pos;
    let index = start + 1;
    let decoded = '';
    let runStart = index;
    for (;;) {
      if (index >= text.length) this.fail('unterminated string', start);
      const code = text.charCodeAt(index);
      if (code === 0x22 /* " */) {
        decoded += text.slice(runStart, index);
        index++;
        break;
      }
      if (code < 0x20) this.fail('control characters must be escaped in strings', index);
      if (code !== 0x5c /* \ */) {
        index++;
        continue;
      }
      decoded += text.slice(runStart, index);
      // Canonical form escapes only controls, '"' and '\\'; whether this escape is that form is not worked out here.
      this.canonical = false;
      const escape = text.charCodeAt(index + 1);
      const simple = simpleEscapes[escape];
      if (simple !== undefined) {
        decoded += simple;
        index += 2;
      } else if (escape === 0x75 /* u */) {
        const unit = this.hex4(index + 2);
        if (isHighSurrogate(unit) && text.charCodeAt(index + 6) === 0x5c && text.charCodeAt(index + 7) === 0x75
          && isLowSurrogate(this.hex4(index + 8))) {
          decoded += String.fromCharCode(unit, this.hex4(index + 8));
          index += 12;
        } else if (isHighSurrogate(unit) || isLowSurrogate(unit)) {
          throw new SdcError('PROTO_JCS_LONE_SURROGATE', `string escape \\u${unit.toString(16)} is a lone surrogate`,
            this.offsets(index));
        } else {
          decoded += String.fromCharCode(unit);
          index += 6;
        }
      } else {
        this.fail('invalid escape sequence', index);
      }
      runStart = index;
    }
    if (decoded.length > this.limits.stringLengthMax) {
      throw new SdcError('PROTO_STRING_TOO_LONG', `string is longer than ${this.limits.stringLengthMax} characters`,
        { stringLengthMax: this.limits.stringLengthMax, ...this.offsets(start) });
    }
    this.pos = index;
    return decoded;
  }

  /** The code unit of the four hex digits at `at`. */
  private hex4(at: number): number {
    let unit = 0;
    for (let index = at; index < at + 4; index++) {
      const digit = hexValue(this.text.charCodeAt(index));
      if (digit < 0) this.fail('expected four hex digits after \\u', index);
      unit = unit * 16 + digit;
    }
    return unit;
  }

  private skipWhitespace(): void {
    for (;;) {
      const code = this.text.charCodeAt(this.pos);
      // RFC 8259 whitespace only: space, tab, line feed, carriage return.
      if (code !== 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) return;
      this.pos++;
      this.canonical = false;
    }
  }

  /** Where a problem is, in UTF-16 code units of the text and in bytes of the UTF-8 frame. */
  private offsets(offsetChars: number): { offsetChars: number; offsetBytes: number } {
    const end = Math.min(offsetChars, this.text.length);
    return { offsetChars: end, offsetBytes: utf8ByteLength(this.text, end, false) };
  }

  private fail(message: string, offsetChars: number): never {
    const offsets = this.offsets(offsetChars);
    throw new SdcError('PROTO_JSON_SYNTAX', `${message} at offset ${offsets.offsetChars}`, offsets);
  }
}
