import { SdcError } from '../core/errors/index.js';
import type { RandomSource } from '../core/ports/ports.js';

const serialBytes = 16;

/**
 * A random positive serial from 16 random bytes, in normalized hex. The top bit is cleared so the
 * DER INTEGER is positive and at most 16 bytes (RFC 5280 allows 20): 127 bits of entropy, far
 * above the CA/B Forum's 64. Pass it to the x509 library through `serialHexForEncoding`.
 */
export function randomSerialHex(random: RandomSource): string {
  const bytes = random.bytes(serialBytes);
  if (bytes.length !== serialBytes) throw new SdcError('TRUST_INVALID_ARGUMENT', 'RandomSource returned the wrong number of bytes');
  bytes[0] = bytes[0]! & 0x7f;
  // Serial 0 is not positive; the chance is 2^-127, but the guarantee must not depend on luck.
  if (bytes.every((b) => b === 0)) bytes[serialBytes - 1] = 1;
  return normalizeSerialHex(Buffer.from(bytes).toString('hex'));
}

/** One spelling per serial (lowercase, no leading zeros), so stores and CRLs compare serials as strings. */
export function normalizeSerialHex(hex: string): string {
  if (!/^[0-9a-fA-F]{1,40}$/.test(hex)) throw new SdcError('TRUST_INVALID_ARGUMENT', 'serial must be 1-40 hex digits');
  return BigInt('0x' + hex).toString(16);
}

/** Even-length hex for the x509 library, which reads serials as byte strings. */
export function serialHexForEncoding(hex: string): string {
  const normalized = normalizeSerialHex(hex);
  return normalized.length % 2 === 0 ? normalized : '0' + normalized;
}
