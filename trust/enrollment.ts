import { SdcError } from '../core/errors/index.js';
import { parseDeviceCsr } from './device-csr.js';
import type { DeviceCertificateIssuer } from './device-issuer.js';
import { requireDeviceId } from './device-profile.js';
import { hashPairingToken, pairingWrongDeviceTriesMax, spentByWrongDeviceTries, type PairingTokenRecord, type PairingTokenStore } from './pairing-tokens.js';

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
   * device id can try again with the same token (review h9, finding 4). Each such try is counted
   * in that step and the pairingWrongDeviceTriesMax-th spends the token, so whoever holds a
   * stolen token gets that many guesses at its device id, however many addresses they use. The
   * refusal says so (its message is in the control plane's 'request refused' log line).
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
    if (result.outcome === 'already-used') {
      const why = spentByWrongDeviceTries(result.record) ? `was spent by ${pairingWrongDeviceTriesMax} tries for other device ids` : 'was already used';
      throw new SdcError('TRUST_PAIRING_TOKEN_USED', `pairing token ${why}`);
    }
    if (result.outcome === 'expired') {
      throw new SdcError('TRUST_PAIRING_TOKEN_EXPIRED', `pairing token expired at ${new Date(result.record.expiresAtMs).toISOString()}`);
    }
    if (result.outcome === 'other-device') throw deviceMismatch(deviceId, result.record);
    // The CSR parsed and verified above, not again: ASN.1 decoding and the key import are a large part of an enrollment's CPU.
    const issued = await this.#issuer.issueForCsr({ csr, deviceId, now: options.now, validityMs: this.#validityMs });
    return {
      certificatePem: issued.certificatePem, chainPems: this.#issuer.chainPems(), serialHex: issued.serialHex, notAfter: issued.notAfter,
      publicKeyRaw: issued.publicKeyRaw,
    };
  }
}

/** A try for another device id; the last one allowed spent the token, and the installer needs a new one. */
function deviceMismatch(deviceId: string, record: PairingTokenRecord): SdcError {
  const tries = `${record.wrongDeviceTries} of ${pairingWrongDeviceTriesMax} tries for other device ids`;
  const spent = record.usedAtMs !== null;
  const message = spent
    ? `pairing token was created for a different device id; it is now spent (${tries}): ask the operator for a new one`
    : `pairing token was created for a different device id (${tries}; the last one spends it)`;
  return new SdcError('TRUST_PAIRING_DEVICE_MISMATCH', message, { deviceId, wrongDeviceTries: record.wrongDeviceTries, spent });
}
