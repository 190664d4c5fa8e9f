import { SdcError } from '../core/errors/index.js';

/**
 * A small reader for the DER (X.690 distinguished encoding) that X.509 certificates use: only
 * what the device-certificate check needs to read fields node:crypto does not expose. Elements
 * are offsets into the caller's bytes, never copies. Everything is bounded: single-byte tags,
 * definite lengths of at most 4 length bytes in minimal form, and a cap on the children read from
 * one element. Any breach is TRUST_CERT_INVALID with what was wrong, so bad input from a peer is a
 * typed refusal, never an exception from deep inside.
 */

/** One TLV: `tag` is the identifier byte; the value is bytes[valueStart, end). */
export interface DerElement {
  readonly tag: number;
  readonly headerStart: number;
  readonly valueStart: number;
  readonly end: number;
}

export const derTag = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  objectIdentifier: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

/** Context-specific tags: [n] constructed (EXPLICIT) and [n] primitive (IMPLICIT over a primitive). */
export const contextConstructed = (n: number): number => 0xa0 | n;
export const contextPrimitive = (n: number): number => 0x80 | n;

/** A certificate is a few hundred bytes; 4 length bytes (4 GiB) is far beyond anything we read. */
const lengthBytesMax = 4;
/** Children read from one element: a certificate's TBS has 10 at most, its extensions a dozen. */
export const childrenMax = 64;
/** Arcs in one OBJECT IDENTIFIER; real ones have about 10. */
const oidArcsMax = 32;

function invalid(why: string): never {
  throw new SdcError('TRUST_CERT_INVALID', `certificate DER: ${why}`);
}

/** The element starting at `offset`, which must end at or before `limit`. */
export function readElement(bytes: Uint8Array, offset = 0, limit: number = bytes.length): DerElement {
  if (!(offset >= 0 && offset + 2 <= limit && limit <= bytes.length)) invalid(`element header at ${offset} runs past ${limit}`);
  const tag = bytes[offset]!;
  if ((tag & 0x1f) === 0x1f) invalid(`multi-byte tag at ${offset}`);
  const first = bytes[offset + 1]!;
  let length = first;
  let valueStart = offset + 2;
  if (first >= 0x80) {
    const count = first & 0x7f;
    if (count === 0) invalid(`indefinite length at ${offset}`);
    if (count > lengthBytesMax) invalid(`${count} length bytes at ${offset}`);
    if (valueStart + count > limit) invalid(`length at ${offset} runs past ${limit}`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[valueStart + i]!;
    // DER: the shortest form, so no leading zero byte and no long form for a length under 128.
    if (bytes[valueStart] === 0 || length < 0x80) invalid(`non-minimal length at ${offset}`);
    valueStart += count;
  }
  const end = valueStart + length;
  if (end > limit) invalid(`element at ${offset} (${length} bytes) runs past ${limit}`);
  return { tag, headerStart: offset, valueStart, end };
}

/** Like readElement, and its tag must be `tag`. */
export function expectElement(bytes: Uint8Array, offset: number, limit: number, tag: number, what: string): DerElement {
  const element = readElement(bytes, offset, limit);
  if (element.tag !== tag) invalid(`${what}: tag 0x${element.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  return element;
}

/** The one element that fills `bytes` exactly (no trailing bytes), with tag `tag`. */
export function readWhole(bytes: Uint8Array, tag: number, what: string): DerElement {
  const element = expectElement(bytes, 0, bytes.length, tag, what);
  if (element.end !== bytes.length) invalid(`${what}: ${bytes.length - element.end} trailing bytes`);
  return element;
}

/** The elements inside a constructed element, in order, filling it exactly; at most childrenMax. */
export function childrenOf(bytes: Uint8Array, parent: DerElement): DerElement[] {
  if ((parent.tag & 0x20) === 0) invalid(`children of primitive tag 0x${parent.tag.toString(16)}`);
  const children: DerElement[] = [];
  for (let at = parent.valueStart; at < parent.end; at = children[children.length - 1]!.end) {
    if (children.length === childrenMax) invalid(`more than ${childrenMax} elements in one`);
    children.push(readElement(bytes, at, parent.end));
  }
  return children;
}

export function valueOf(bytes: Uint8Array, element: DerElement): Uint8Array {
  return bytes.subarray(element.valueStart, element.end);
}

/** The whole encoding of the element, header included. */
export function encodingOf(bytes: Uint8Array, element: DerElement): Uint8Array {
  return bytes.subarray(element.headerStart, element.end);
}

/** An OBJECT IDENTIFIER's value as dotted decimal (`2.5.29.15`). */
export function readOid(bytes: Uint8Array, element: DerElement): string {
  if (element.tag !== derTag.objectIdentifier) invalid(`OID: tag 0x${element.tag.toString(16)}`);
  const value = valueOf(bytes, element);
  if (value.length === 0) invalid('empty OID');
  const arcs: number[] = [];
  let arc = 0;
  let arcBytes = 0;
  for (const byte of value) {
    if (arcBytes === 0 && byte === 0x80) invalid('OID arc with a leading zero byte');
    arc = arc * 128 + (byte & 0x7f);
    arcBytes += 1;
    if (arc > Number.MAX_SAFE_INTEGER / 128) invalid('OID arc too large');
    if ((byte & 0x80) !== 0) continue;
    if (arcs.length === 0) arcs.push(arc < 80 ? Math.floor(arc / 40) : 2, arc < 80 ? arc % 40 : arc - 80);
    else arcs.push(arc);
    if (arcs.length > oidArcsMax) invalid(`OID with more than ${oidArcsMax} arcs`);
    arc = 0;
    arcBytes = 0;
  }
  if (arcBytes !== 0) invalid('OID ends inside an arc');
  return arcs.join('.');
}

/** A BOOLEAN: DER allows only 0x00 and 0xff. */
export function readBoolean(bytes: Uint8Array, element: DerElement): boolean {
  const value = valueOf(bytes, element);
  if (element.tag !== derTag.boolean || value.length !== 1 || (value[0] !== 0 && value[0] !== 0xff)) invalid('BOOLEAN not 00 or ff');
  return value[0] === 0xff;
}

/** A non-negative INTEGER small enough for a number (pathLenConstraint and the like). */
export function readSmallNonNegativeInteger(bytes: Uint8Array, element: DerElement): number {
  const value = integerValue(bytes, element);
  if ((value[0]! & 0x80) !== 0) invalid('negative INTEGER where a count belongs');
  if (value.length > 4) invalid('INTEGER too large for a count');
  return value.reduce((n, byte) => n * 256 + byte, 0);
}

/** An INTEGER's content bytes (two's complement), checked for minimal DER form. */
export function integerValue(bytes: Uint8Array, element: DerElement): Uint8Array {
  const value = valueOf(bytes, element);
  if (element.tag !== derTag.integer || value.length === 0) invalid('INTEGER expected');
  if (value.length > 1 && ((value[0] === 0 && (value[1]! & 0x80) === 0) || (value[0] === 0xff && (value[1]! & 0x80) !== 0))) {
    invalid('non-minimal INTEGER');
  }
  return value;
}

/**
 * A BIT STRING as a number whose bit i is the string's bit i (bit 0 the first, RFC 5280's
 * numbering of named bits like keyUsage); only the first 31 bits are read, enough for any
 * named-bit list we check. DER: unused bits are zero.
 */
export function readNamedBits(bytes: Uint8Array, element: DerElement): number {
  const value = valueOf(bytes, element);
  if (element.tag !== derTag.bitString || value.length === 0) invalid('BIT STRING expected');
  const unused = value[0]!;
  if (unused > 7 || (value.length === 1 && unused !== 0)) invalid('BIT STRING with a bad unused-bits count');
  if (value.length > 1 && (value[value.length - 1]! & ((1 << unused) - 1)) !== 0) invalid('BIT STRING with unused bits set');
  let bits = 0;
  for (let i = 0; i < Math.min(value.length - 1, 4) * 8 && i < 31; i++) {
    if ((value[1 + (i >> 3)]! & (0x80 >> (i & 7))) !== 0) bits |= 1 << i;
  }
  return bits;
}

/** A string of one of the types a name or a general name uses here, as text. */
export function readText(bytes: Uint8Array, element: DerElement): string {
  const value = valueOf(bytes, element);
  if (element.tag === derTag.utf8String) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
  if (element.tag === derTag.printableString || element.tag === derTag.ia5String || element.tag === contextPrimitive(6)) {
    if (value.some((byte) => byte > 0x7f)) invalid('non-ASCII byte in an ASCII string');
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1');
  }
  return invalid(`string of tag 0x${element.tag.toString(16)}`);
}

const twoDigits = (text: string, at: number): number => Number(text.slice(at, at + 2));

/**
 * UTCTime (YYMMDDHHMMSSZ, years 1950-2049 per RFC 5280) or GeneralizedTime (YYYYMMDDHHMMSSZ),
 * as ms since the epoch. RFC 5280 fixes both forms: seconds present, no fraction, always Z.
 */
export function readTime(bytes: Uint8Array, element: DerElement): number {
  const text = Buffer.from(valueOf(bytes, element)).toString('latin1');
  let year: number;
  let rest: string;
  if (element.tag === derTag.utcTime && /^\d{12}Z$/.test(text)) {
    const yy = twoDigits(text, 0);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
    rest = text.slice(2);
  } else if (element.tag === derTag.generalizedTime && /^\d{14}Z$/.test(text)) {
    year = Number(text.slice(0, 4));
    rest = text.slice(4);
  } else {
    return invalid(`time '${text}' is not UTCTime or GeneralizedTime in RFC 5280 form`);
  }
  // RFC 5280 dates start in 1950; this also keeps Date.UTC from reading a year under 100 as 19xx.
  if (year < 1950) invalid(`time '${text}' is before 1950`);
  const [month, day, hour, minute, second] = [0, 2, 4, 6, 8].map((at) => twoDigits(rest, at)) as [number, number, number, number, number];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const back = new Date(ms);
  if (back.getUTCMonth() !== month - 1 || back.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) invalid(`time '${text}' is not a date`);
  return ms;
}
