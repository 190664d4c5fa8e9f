import { createHash, hkdfSync } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';

/**
 * TLS 1.3 session resumption shared by the gateways of one deployment (issue 15, the reconnect
 * storm). When a gateway dies, its agents reconnect to the others at once; a full mutual-TLS
 * handshake costs the gateway a certificate chain check and a signature each, a resumed one
 * (PSK with a fresh ECDHE) skips both. For an agent to resume on another gateway, every gateway
 * must decrypt the tickets the others issued, so the ticket keys are derived, not random: from a
 * secret every gateway of the deployment already holds (the gateway signing key's seed in
 * D/keys/, see deployment.ts) and the current rotation period.
 *
 * What a resumed session does not skip: the ticket carries the peer certificate of the full
 * handshake, and the gateway checks it again at every connection (verifyDeviceCertificate: chain,
 * validity, profile); AUTH still signs a fresh challenge with the device key, and the core checks
 * revocation at AUTH. The session id context is bound to the trusted CA certificates, so a ticket
 * issued by a gateway trusting other CAs is never resumed here, even under the same keys.
 */

/** Node's ticketKeys: 16 bytes of key name, 16 of HMAC key, 16 of AES key. */
export const ticketKeysBytes = 48;
/**
 * Keys change once a day. Node holds one ticket key at a time, so a ticket issued before a change
 * is refused after it (the agent does a full handshake, nothing more). A day keeps that rare, and
 * bounds how long one derived key protects resumption secrets.
 */
export const ticketKeyRotationMsDefault = 24 * 3600 * 1000;
/** OpenSSL's SSL_MAX_SID_CTX_LENGTH is 32 bytes. */
const sessionIdContextChars = 32;
const secretBytesMin = 32;
const derivationLabel = 'sdc gateway tls session ticket keys v1';

export interface SessionTicketOptions {
  /** Shared by every gateway that should accept the others' tickets; at least 32 bytes. */
  readonly secret: Uint8Array;
  /** Default ticketKeyRotationMsDefault. */
  readonly rotationMs?: number;
}

/** The rotation period `nowMs` falls in; gateways whose clocks agree derive the same keys. */
export function ticketPeriodOf(nowMs: number, rotationMs: number): number {
  return Math.floor(nowMs / rotationMs);
}

/** HKDF-SHA256 over the shared secret, one key set per period (the period is the HKDF info). */
export function ticketKeysFor(secret: Uint8Array, period: number): Buffer {
  if (secret.byteLength < secretBytesMin) throw new SdcError('TRUST_INVALID_ARGUMENT', `the ticket key secret has ${secret.byteLength} bytes, fewer than ${secretBytesMin}`);
  if (!Number.isSafeInteger(period) || period < 0) throw new SdcError('TRUST_INVALID_ARGUMENT', `ticket key period ${period} is not a non-negative integer`);
  return Buffer.from(hkdfSync('sha256', secret, derivationLabel, `period ${period}`, ticketKeysBytes));
}

/**
 * The TLS session id context: a digest of the CA certificates client certificates must chain to.
 * OpenSSL resumes a session only under the context it was made in, so changing the trusted CAs
 * (or a gateway of another PKI) never resumes a session checked against other anchors.
 */
export function sessionIdContextFor(caPem: string): string {
  return createHash('sha256').update('sdc gateway client CAs\n').update(caPem.trim()).digest('hex').slice(0, sessionIdContextChars);
}

/** Milliseconds from `nowMs` to the start of the next rotation period. */
export function msUntilNextPeriod(nowMs: number, rotationMs: number): number {
  return (ticketPeriodOf(nowMs, rotationMs) + 1) * rotationMs - nowMs;
}
