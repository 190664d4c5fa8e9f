import { kvKeys } from '../bus-contract/streams.js';
import { SdcError } from '../../core/errors/index.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';

/** Undefined admits the certificate; an SdcError refuses the connection with its code (AUTH_ERROR). */
export type EnrollmentCheck = (deviceId: string, serialHex: string) => Promise<SdcError | undefined> | SdcError | undefined;

/**
 * The gateway's "is this the device's certificate now" check. A certificate from our CA is not
 * enough: the CA's key could have signed one outside enrollment (`sdc pki issue`), and a
 * re-enrolled device's earlier certificate is superseded. The control plane keeps
 * kvKeys.deviceCertificate for each certificate it issued and has not revoked, and kvKeys.device
 * for each enrolled device, re-published from SQL, so a gateway without SQL (`sdc gateway`) asks
 * the key/value store. A missing key refuses (fail closed) until the control plane re-publishes.
 */
export function createEnrollmentCheck(options: { kv: KeyValueStore }): EnrollmentCheck {
  return async (deviceId, serialHex) => {
    const serial = normalizeSerialHex(serialHex);
    if ((await options.kv.get(kvKeys.deviceCertificate(serial))) === deviceId) return undefined;
    if ((await options.kv.get(kvKeys.device(deviceId))) === null) return new SdcError('GATEWAY_DEVICE_UNKNOWN', `device ${deviceId} is not known`);
    return new SdcError('GATEWAY_CERT_UNKNOWN', `certificate ${serial} is not one the control plane issued to ${deviceId} and holds current`);
  };
}
