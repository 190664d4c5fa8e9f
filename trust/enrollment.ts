import { SdcError } from '../core/errors/index.js';
import { parseDeviceCsr } from './device-csr.js';
import type { DeviceCertificateIssuer } from './device-issuer.js';
import { requireDeviceId } from './device-profile.js';
import { hashPairingToken, type PairingTokenStore } from './pairing-tokens.js';

export interface EnrollOptions {
  token: string;
  deviceId: string;
  csrPem: string;
  now: Date;
}

export interface EnrollmentResult {
  readonly certificatePem: string;
  /** Intermediate, then root. */
  readonly chainPems: readonly string[];
  readonly serialHex: string;
  readonly notAfter: Date;
  /** The certified key, raw Ed25519. */
  readonly publicKeyRaw: Uint8Array;
}

/** Pairing: a device trades a one-time token and a CSR for its first certificate. */
export class EnrollmentService {
  readonly #tokens: PairingTokenStore;
  readonly #issuer: DeviceCertificateIssuer;
  readonly #validityMs: number | undefined;

  constructor(options: { tokens: PairingTokenStore; issuer: DeviceCertificateIssuer; validityMs?: number }) {
    this.#tokens = options.tokens;
    this.#issuer = options.issuer;
    this.#validityMs = options.validityMs;
  }

  /**
   * Everything that can be checked without side effects (token syntax, device id, CSR) is checked
   * before the token is consumed, so a malformed request does not burn a good token. Nor does a
   * token presented for the wrong device: the store consumes it only for its own device, unused
   * and unexpired, in one step (PairingTokenStore.consume), so an installer who mistypes the
   * device id can try again with the same token (review h9, finding 4). A leaked token stays
   * bounded by its expiry, and guesses at its device id by the enrollment limits per address.
   */
  async enroll(options: EnrollOptions): Promise<EnrollmentResult> {
    const tokenHashHex = hashPairingToken(options.token);
    const deviceId = requireDeviceId(options.deviceId);
    const csr = await parseDeviceCsr(options.csrPem);
    if (csr.commonName !== deviceId) {
      throw new SdcError('TRUST_CSR_SUBJECT_MISMATCH', `CSR CN '${csr.commonName}' is not the device id '${deviceId}'`, { deviceId });
    }
    const result = await this.#tokens.consume(tokenHashHex, { deviceId, now: options.now });
    if (result.outcome === 'unknown') throw new SdcError('TRUST_PAIRING_TOKEN_INVALID', 'pairing token is unknown');
    if (result.outcome === 'already-used') throw new SdcError('TRUST_PAIRING_TOKEN_USED', 'pairing token was already used');
    if (result.outcome === 'expired') {
      throw new SdcError('TRUST_PAIRING_TOKEN_EXPIRED', `pairing token expired at ${new Date(result.record.expiresAtMs).toISOString()}`);
    }
    if (result.outcome === 'other-device') {
      throw new SdcError('TRUST_PAIRING_DEVICE_MISMATCH', 'pairing token was created for a different device id', { deviceId });
    }
    // The CSR parsed and verified above, not again: ASN.1 decoding and the key import are a large part of an enrollment's CPU.
    const issued = await this.#issuer.issueForCsr({ csr, deviceId, now: options.now, validityMs: this.#validityMs });
    return {
      certificatePem: issued.certificatePem, chainPems: this.#issuer.chainPems(), serialHex: issued.serialHex, notAfter: issued.notAfter,
      publicKeyRaw: issued.publicKeyRaw,
    };
  }
}
