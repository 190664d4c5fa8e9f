import { SdcError } from '../../../core/errors/index.js';
import type { ExpiringSetAddOptions } from './kv-port.js';

/**
 * What every adapter checks of an expiringSetAdd before touching the store (kv-port.ts). The
 * longest life a member may have is the longest TTL a key may have, since the key expires with
 * its last member.
 */
export function checkExpiringSetAdd(member: string, opts: ExpiringSetAddOptions, ttlMsMax: number, memberBytesMax: number): void {
  if (typeof member !== 'string' || member.length === 0 || Buffer.byteLength(member) > memberBytesMax) {
    throw new SdcError('STORE_INVALID_ARGUMENT', `an expiring set's member must be 1..${memberBytesMax} bytes`);
  }
  checkNowMs(opts.nowMs);
  if (!Number.isSafeInteger(opts.expiresAtMs) || opts.expiresAtMs <= opts.nowMs || opts.expiresAtMs - opts.nowMs > ttlMsMax) {
    throw new SdcError('STORE_INVALID_ARGUMENT', `expiresAtMs must be an integer after nowMs, by at most ${ttlMsMax} ms`);
  }
  if (!Number.isSafeInteger(opts.membersMax) || opts.membersMax < 1) {
    throw new SdcError('STORE_INVALID_ARGUMENT', 'membersMax must be a positive integer');
  }
}

export function checkNowMs(nowMs: number): void {
  if (!Number.isSafeInteger(nowMs) || nowMs < 0) throw new SdcError('STORE_INVALID_ARGUMENT', 'nowMs must be a non-negative integer');
}

/** getBounded's and deleteIfLarger's bound, checked alike by every adapter (kv-port.ts). */
export function checkBytesMax(bytesMax: number): void {
  if (!Number.isSafeInteger(bytesMax) || bytesMax < 0) throw new SdcError('STORE_INVALID_ARGUMENT', 'bytesMax must be a non-negative integer');
}
