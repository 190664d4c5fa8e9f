import { SdcError, type ErrorCode } from '../errors/index.js';

/*
 * Byte helpers shared by the crypto providers and the envelope. Pure JavaScript (no Buffer),
 * so the same code runs in core/protocol, in browsers and under the simulator.
 */

/**
 * The one input check for key, signature and message bytes (noble's `abytes` idea): the value
 * must be a Uint8Array and, when `length` is given, exactly that long. The caller names the
 * code because the same check means "bad key" for a key and "bad signature" for a signature.
 */
export function ensureBytes(name: string, value: unknown, options: { code: ErrorCode; length?: number }): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new SdcError(options.code, `${name} must be a Uint8Array`, { field: name });
  }
  if (options.length !== undefined && value.length !== options.length) {
    throw new SdcError(options.code, `${name} must be ${options.length} bytes, got ${value.length}`, {
      field: name, expectedBytes: options.length, actualBytes: value.length,
    });
  }
  return value;
}

const base64urlAlphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Maps a char code to its 6-bit value, -1 for anything outside the base64url alphabet. */
const base64urlValues: Int8Array = (() => {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < base64urlAlphabet.length; i++) table[base64urlAlphabet.charCodeAt(i)] = i;
  return table;
})();

/** Unpadded base64url (RFC 4648 section 5), the only form we ever emit. */
export function base64urlFromBytes(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += base64urlAlphabet[(n >> 18) & 63]! + base64urlAlphabet[(n >> 12) & 63]!
      + base64urlAlphabet[(n >> 6) & 63]! + base64urlAlphabet[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += base64urlAlphabet[(n >> 18) & 63]! + base64urlAlphabet[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += base64urlAlphabet[(n >> 18) & 63]! + base64urlAlphabet[(n >> 12) & 63]! + base64urlAlphabet[(n >> 6) & 63]!;
  }
  return out;
}

/**
 * Strict unpadded base64url decoding. Refuses padding, characters outside the alphabet, an
 * impossible length (4k+1) and non-canonical trailing bits, so every byte string has exactly
 * one accepted text form: a flipped bit in a signature's last character cannot slip through
 * as "the same signature".
 */
export function bytesFromBase64url(text: string, options: { code: ErrorCode; name: string; length?: number }): Uint8Array {
  const refuse = (reason: string): never => {
    throw new SdcError(options.code, `${options.name} is not canonical unpadded base64url: ${reason}`, { field: options.name });
  };
  if (typeof text !== 'string') refuse('not a string');
  if (text.length % 4 === 1) refuse(`impossible length ${text.length}`);
  const outLength = Math.floor((text.length * 3) / 4);
  if (options.length !== undefined && outLength !== options.length) {
    refuse(`decodes to ${outLength} bytes, expected ${options.length}`);
  }
  const out = new Uint8Array(outLength);
  let buffer = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const value = code < 128 ? base64urlValues[code]! : -1;
    if (value < 0) refuse(`character ${JSON.stringify(text[i])} at ${i}`);
    buffer = ((buffer << 6) | value) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (buffer >> bits) & 0xff;
    }
  }
  // Leftover bits (2 or 4) carry no data; a canonical encoder writes them as zero.
  if (bits > 0 && (buffer & ((1 << bits) - 1)) !== 0) refuse('non-zero trailing bits');
  return out;
}

/** Each byte value's two lower-case hex digits. */
const hexPairs = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

/**
 * Lower-case hex. Joined, not built with `+=`: V8 keeps a string grown by `+=` as a rope of one
 * cons cell per byte (about 1.5 KB for a 32-byte hash instead of 80 B), and hashes kept per
 * session or per device (the agent's telemetry prev_hash) held that rope for their lifetime.
 */
export function hexFromBytes(bytes: Uint8Array): string {
  const pairs = new Array<string>(bytes.length);
  for (let i = 0; i < bytes.length; i += 1) pairs[i] = hexPairs[bytes[i]!]!;
  return pairs.join('');
}

/** Strict hex (either case, even length, nothing else). */
export function bytesFromHex(text: string, options: { code: ErrorCode; name: string; length?: number }): Uint8Array {
  if (typeof text !== 'string' || text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) {
    throw new SdcError(options.code, `${options.name} is not an even-length hex string`, { field: options.name });
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return ensureBytes(options.name, out, { code: options.code, length: options.length });
}

/** Concatenates byte arrays into a fresh one. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Byte equality. Not constant-time: use it only on public values (keys, test data), never on secrets or MACs. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Equality whose running time depends only on the lengths, for MACs and other secrets: an early
 * exit would tell a forger how many leading bytes of a guessed tag were right.
 */
export function bytesEqualConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ b[i]!;
  return difference === 0;
}
