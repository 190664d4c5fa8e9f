import { SdcError } from '../errors/index.js';

/**
 * JSON as TUF signs it: the OLPC canonical form that python-securesystemslib's encode_canonical
 * writes and TUF's reference implementation verifies. Kept apart from RFC 8785
 * (core/protocol/canonical-json.ts), which our own envelopes use: the two disagree on strings
 * (OLPC escapes only `"` and `\`, control characters go out raw), on numbers (OLPC has integers
 * only) and on key order (OLPC sorts by code point, as Python sorts str; RFC 8785 by UTF-16 unit).
 * A signature made over one form never verifies over the other, so they never share a writer.
 *
 * Values come from parseTufJson below, which keeps what JSON.parse would lose: integers beyond
 * 2^53 (as bigint, since Python's int has no bound and a signer may have used one) and whether a
 * number was written as an integer at all (Python reads 1.0 as a float, which has no OLPC form).
 */
export type TufJson = null | boolean | number | bigint | string | TufJson[] | TufJsonObject;
export interface TufJsonObject { [name: string]: TufJson }

/** The parser recurses per nesting level; TUF metadata nests about six deep, custom fields a little more. */
export const tufJsonDepthMax = 64;

const utf8Encoder = new TextEncoder();

/** The OLPC canonical text of `value`; TUF_CANONICAL_UNSUPPORTED for anything encode_canonical refuses. */
export function encodeCanonical(value: TufJson): string {
  const out: string[] = [];
  writeCanonical(value, out, 0);
  return out.join('');
}

/** UTF-8 bytes of the canonical form: what TUF signatures cover. Lone surrogates were refused above, so this is lossless. */
export function canonicalBytes(value: TufJson): Uint8Array {
  return utf8Encoder.encode(encodeCanonical(value));
}

function writeCanonical(value: TufJson, out: string[], depth: number): void {
  if (depth > tufJsonDepthMax) throw unsupported(`nesting exceeds ${tufJsonDepthMax} levels`);
  if (value === null) out.push('null');
  else if (typeof value === 'boolean') out.push(value ? 'true' : 'false');
  else if (typeof value === 'bigint') out.push(value.toString());
  else if (typeof value === 'number') {
    // Python's encode_canonical writes int only; a float (even 2.0) raises FormatError.
    if (!Number.isSafeInteger(value)) throw unsupported(`${value} is not an integer OLPC canonical JSON can write exactly`);
    out.push(String(value === 0 ? 0 : value)); // -0 is Python's int 0
  } else if (typeof value === 'string') out.push(quoteOlpc(value));
  else if (Array.isArray(value)) writeArray(value, out, depth);
  else if (typeof value === 'object' && isPlainRecord(value)) writeObject(value, out, depth);
  else throw unsupported(`a ${typeof value} has no OLPC canonical JSON form`);
}

function writeArray(values: TufJson[], out: string[], depth: number): void {
  out.push('[');
  values.forEach((item, index) => {
    if (index > 0) out.push(',');
    writeCanonical(item, out, depth + 1);
  });
  out.push(']');
}

function writeObject(object: TufJsonObject, out: string[], depth: number): void {
  const names = Object.keys(object).sort(compareCodePoints);
  out.push('{');
  names.forEach((name, index) => {
    if (index > 0) out.push(',');
    const member = object[name];
    if (member === undefined) throw unsupported(`member ${JSON.stringify(name)} is undefined`);
    out.push(quoteOlpc(name), ':');
    writeCanonical(member, out, depth + 1);
  });
  out.push('}');
}

function isPlainRecord(value: object): value is TufJsonObject {
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

/** Only `"` and `\` are escaped; everything else (newlines, U+0000) is written as itself, as securesystemslib does. */
function quoteOlpc(text: string): string {
  refuseLoneSurrogates(text);
  return '"' + text.replace(/["\\]/g, (character) => '\\' + character) + '"';
}

function refuseLoneSurrogates(text: string): void {
  // Python cannot UTF-8-encode a lone surrogate, so encode_canonical(...).encode() fails on one.
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text)) {
    throw unsupported('a string holds a lone surrogate, which has no UTF-8 form');
  }
}

/** Python's str ordering: by code point. Differs from JS's UTF-16 order above U+FFFF versus U+E000..U+FFFF. */
export function compareCodePoints(a: string, b: string): number {
  const left = Array.from(a);
  const right = Array.from(b);
  const length = Math.min(left.length, right.length);
  for (let index = 0; index < length; index++) {
    const difference = left[index]!.codePointAt(0)! - right[index]!.codePointAt(0)!;
    if (difference !== 0) return difference;
  }
  return left.length - right.length;
}

function unsupported(message: string): SdcError {
  return new SdcError('TUF_CANONICAL_UNSUPPORTED', message);
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parses TUF metadata bytes. Refuses (TUF_METADATA_INVALID): invalid UTF-8, a BOM, duplicate
 * member names (two readers could see two values in one signed file), non-integer numbers (Python
 * reads them as floats, which TUF cannot sign), lone surrogate escapes, and nesting deeper than
 * tufJsonDepthMax. The caller bounds the byte length before calling (every download has a limit).
 */
export function parseTufJson(bytes: Uint8Array): TufJson {
  let text: string;
  try {
    text = utf8Decoder.decode(bytes);
  } catch {
    throw invalid('metadata is not valid UTF-8');
  }
  const parser = new TufJsonParser(text);
  const value = parser.parseDocument();
  return value;
}

class TufJsonParser {
  private index = 0;

  constructor(private readonly text: string) {}

  parseDocument(): TufJson {
    this.skipWhitespace();
    const value = this.parseValue(0);
    this.skipWhitespace();
    if (this.index !== this.text.length) throw this.error('trailing characters after the JSON value');
    return value;
  }

  private parseValue(depth: number): TufJson {
    if (depth > tufJsonDepthMax) throw this.error(`nesting exceeds ${tufJsonDepthMax} levels`);
    const character = this.text[this.index];
    if (character === '{') return this.parseObject(depth);
    if (character === '[') return this.parseArray(depth);
    if (character === '"') return this.parseString();
    if (character === '-' || (character !== undefined && character >= '0' && character <= '9')) return this.parseNumber();
    for (const [literal, value] of literals) {
      if (this.text.startsWith(literal, this.index)) {
        this.index += literal.length;
        return value;
      }
    }
    throw this.error('unexpected character');
  }

  private parseObject(depth: number): TufJsonObject {
    // A null prototype: a member named __proto__ stays a member, never the object's prototype.
    const object: TufJsonObject = Object.create(null) as TufJsonObject;
    this.index++;
    this.skipWhitespace();
    if (this.text[this.index] === '}') {
      this.index++;
      return object;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.index] !== '"') throw this.error('expected a member name');
      const name = this.parseString();
      if (Object.hasOwn(object, name)) throw this.error(`duplicate member name ${JSON.stringify(name)}`);
      this.skipWhitespace();
      this.expect(':');
      this.skipWhitespace();
      object[name] = this.parseValue(depth + 1);
      this.skipWhitespace();
      if (this.text[this.index] === '}') {
        this.index++;
        return object;
      }
      this.expect(',');
    }
  }

  private parseArray(depth: number): TufJson[] {
    const values: TufJson[] = [];
    this.index++;
    this.skipWhitespace();
    if (this.text[this.index] === ']') {
      this.index++;
      return values;
    }
    for (;;) {
      this.skipWhitespace();
      values.push(this.parseValue(depth + 1));
      this.skipWhitespace();
      if (this.text[this.index] === ']') {
        this.index++;
        return values;
      }
      this.expect(',');
    }
  }

  private parseNumber(): number | bigint {
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.text.slice(this.index, this.index + 4096));
    if (match === null || match[0] === '-') throw this.error('malformed number');
    this.index += match[0].length;
    if (match[2] !== undefined || match[3] !== undefined) throw this.error(`${match[0]} is not an integer (TUF metadata has integers only)`);
    const big = BigInt(match[0]);
    const small = Number(big);
    return Number.isSafeInteger(small) ? small : big;
  }

  private parseString(): string {
    this.index++;
    let result = '';
    let runStart = this.index;
    for (;;) {
      const code = this.text.charCodeAt(this.index);
      if (Number.isNaN(code)) throw this.error('unterminated string');
      if (code === 0x22) break;
      if (code < 0x20) throw this.error('unescaped control character in a string');
      if (code === 0x5c) {
        result += this.text.slice(runStart, this.index) + this.parseEscape();
        runStart = this.index;
        continue;
      }
      this.index++;
    }
    result += this.text.slice(runStart, this.index);
    this.index++;
    refuseLoneSurrogatesInMetadata(result, () => this.error('a string holds a lone surrogate'));
    return result;
  }

  private parseEscape(): string {
    const escape = this.text[this.index + 1];
    this.index += 2;
    const simple = simpleEscapes[escape ?? ''];
    if (simple !== undefined) return simple;
    if (escape !== 'u') throw this.error('invalid escape');
    const hex = this.text.slice(this.index, this.index + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw this.error('invalid \\u escape');
    this.index += 4;
    return String.fromCharCode(parseInt(hex, 16));
  }

  private skipWhitespace(): void {
    while (this.index < this.text.length) {
      const code = this.text.charCodeAt(this.index);
      if (code !== 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) return;
      this.index++;
    }
  }

  private expect(character: string): void {
    if (this.text[this.index] !== character) throw this.error(`expected '${character}'`);
    this.index++;
  }

  private error(message: string): SdcError {
    return invalid(`${message} at character ${this.index}`);
  }
}

const literals: ReadonlyArray<readonly [string, TufJson]> = [['true', true], ['false', false], ['null', null]];
const simpleEscapes: Readonly<Record<string, string>> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

function refuseLoneSurrogatesInMetadata(text: string, error: () => SdcError): void {
  try {
    refuseLoneSurrogates(text);
  } catch {
    throw error();
  }
}

function invalid(message: string): SdcError {
  return new SdcError('TUF_METADATA_INVALID', message);
}
