import { concatBytes } from '../core/crypto/bytes.js';
import { SdcError } from '../core/errors/index.js';
import { derTag } from './der-reader.js';

/**
 * A small writer for DER (X.690), the counterpart of der-reader.ts: only what the device
 * certificate's fixed profile needs (device-certificate-der.ts). Issuing with the X.509 library
 * spent most of an enrollment's CPU in its generic ASN.1 layers (issue 15); a certificate of one
 * known shape is a few concatenations. Every encoding here is the single DER form, so the bytes
 * match what the library writes for the same values (device-certificate-der.test.ts compares them).
 */

/** Values above this are not ours to encode: a certificate is a few hundred bytes, a CRL of 100,000 entries about 5 MB. */
const valueBytesMax = 1 << 26;

function invalid(why: string): never {
  throw new SdcError('TRUST_INVALID_ARGUMENT', `DER writer: ${why}`);
}

/** Tag, definite length in its shortest form, value. */
export function derElement(tag: number, value: Uint8Array): Uint8Array {
  const length = value.length;
  if (length > valueBytesMax) invalid(`value of ${length} bytes`);
  let header: number[];
  if (length < 0x80) header = [tag, length];
  else if (length < 0x100) header = [tag, 0x81, length];
  else if (length < 0x10000) header = [tag, 0x82, length >> 8, length & 0xff];
  else if (length < 0x1000000) header = [tag, 0x83, length >> 16, (length >> 8) & 0xff, length & 0xff];
  else header = [tag, 0x84, length >>> 24, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff];
  const out = new Uint8Array(header.length + length);
  out.set(header);
  out.set(value, header.length);
  return out;
}

export const derSequence = (...children: Uint8Array[]): Uint8Array => derElement(derTag.sequence, concatBytes(...children));

export const derSet = (...children: Uint8Array[]): Uint8Array => derElement(derTag.set, concatBytes(...children));

export const derOctetString = (value: Uint8Array): Uint8Array => derElement(derTag.octetString, value);

/** A BIT STRING of whole bytes (no unused bits), as keys and signatures are. */
export const derBitString = (value: Uint8Array): Uint8Array => derElement(derTag.bitString, concatBytes(Uint8Array.of(0), value));

export function derUtf8String(text: string): Uint8Array {
  return derElement(derTag.utf8String, new Uint8Array(Buffer.from(text, 'utf8')));
}

/** IA5String content with a caller's tag (a GeneralName's uniformResourceIdentifier is [6] IMPLICIT IA5String). */
export function derIa5(tag: number, text: string): Uint8Array {
  // eslint-disable-next-line no-control-regex
  if (!/^[\x00-\x7f]*$/.test(text)) invalid('non-ASCII text in an IA5String');
  return derElement(tag, new Uint8Array(Buffer.from(text, 'latin1')));
}

/** A non-negative INTEGER from hex digits, in minimal two's-complement form. */
export function derPositiveIntegerFromHex(hex: string): Uint8Array {
  if (!/^[0-9a-fA-F]{1,80}$/.test(hex)) invalid('INTEGER hex must be 1-80 hex digits');
  let digits = hex.replace(/^0+/, '');
  if (digits === '') digits = '0';
  if (digits.length % 2 === 1) digits = '0' + digits;
  let value: Uint8Array = new Uint8Array(Buffer.from(digits, 'hex'));
  // A set top bit would read as negative: DER puts one zero byte in front.
  if ((value[0]! & 0x80) !== 0) value = concatBytes(Uint8Array.of(0), value);
  return derElement(derTag.integer, value);
}

export function derSmallInteger(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0x7f) invalid('small INTEGER must be 0-127');
  return derElement(derTag.integer, Uint8Array.of(value));
}

/** An OBJECT IDENTIFIER from dotted decimal. */
export function derOid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((arc) => !Number.isSafeInteger(arc) || arc < 0) || arcs[0]! > 2 || (arcs[0]! < 2 && arcs[1]! >= 40)) {
    invalid(`bad OID ${dotted}`);
  }
  const bytes: number[] = [];
  const pushArc = (arc: number): void => {
    const base128: number[] = [arc % 128];
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128)) base128.unshift((rest % 128) | 0x80);
    bytes.push(...base128);
  };
  pushArc(arcs[0]! * 40 + arcs[1]!);
  for (const arc of arcs.slice(2)) pushArc(arc);
  return derElement(derTag.objectIdentifier, Uint8Array.from(bytes));
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/**
 * RFC 5280 section 4.1.2.5: UTCTime (YYMMDDHHMMSSZ) for years 1950-2049, GeneralizedTime
 * (YYYYMMDDHHMMSSZ) from 2050; whole seconds, always Z.
 */
export function derTime(ms: number): Uint8Array {
  const date = new Date(ms);
  const year = date.getUTCFullYear();
  if (!Number.isFinite(ms) || year < 1950 || year > 9999) invalid(`time ${ms} outside 1950-9999`);
  const rest = pad(date.getUTCMonth() + 1, 2) + pad(date.getUTCDate(), 2) + pad(date.getUTCHours(), 2)
    + pad(date.getUTCMinutes(), 2) + pad(date.getUTCSeconds(), 2) + 'Z';
  if (year < 2050) return derElement(derTag.utcTime, new Uint8Array(Buffer.from(pad(year % 100, 2) + rest, 'latin1')));
  return derElement(derTag.generalizedTime, new Uint8Array(Buffer.from(pad(year, 4) + rest, 'latin1')));
}
