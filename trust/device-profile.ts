import { SdcError } from '../core/errors/index.js';
import { deviceIdRuleText, isDeviceId } from '../core/protocol/device-id.js';

/**
 * The device certificate profile in one place: what the issuer writes and what the
 * verifier demands. A device id is the certificate's subject CN and, as a URI SAN,
 * `urn:sdc:device:<id>`; the two must agree.
 */
export const deviceSanUriPrefix = 'urn:sdc:device:';

export const deviceCertificateValidityMsDefault = 30 * 24 * 60 * 60 * 1000;
/** Upper bound on a requested device validity: short-lived certificates are the revocation backstop. */
export const deviceCertificateValidityMsMax = 397 * 24 * 60 * 60 * 1000;
/** notBefore is set this far before `now` so a gateway whose clock lags the CA's still accepts a fresh certificate. */
export const notBeforeBackdateMs = 5 * 60 * 1000;

export const oidCommonName = '2.5.4.3';
export const oidClientAuth = '1.3.6.1.5.5.7.3.2';

/**
 * Throws TRUST_DEVICE_ID_INVALID unless `value` follows the protocol's one device-id rule
 * (core/protocol/device-id.ts), so a certificate never names a device no frame can carry.
 */
export function requireDeviceId(value: string): string {
  if (!isDeviceId(value)) throw new SdcError('TRUST_DEVICE_ID_INVALID', `device id must be ${deviceIdRuleText}`);
  return value;
}

export function deviceSanUri(deviceId: string): string {
  return deviceSanUriPrefix + deviceId;
}
