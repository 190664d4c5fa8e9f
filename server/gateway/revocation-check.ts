import { kvKeys } from '../bus-contract/streams.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';

/**
 * The gateway's revocation check: a serial is revoked if the control plane wrote its
 * `kvKeys.revoked` key (immediate, shared by all gateways, re-published from SQL after a store
 * wipe) or it is in the CRL the gateway last loaded (`crlSerials`, read on each call so the
 * caller may reload the file; survives a key/value store wipe). Serials are compared normalized.
 */
export function createRevocationCheck(options: { kv: KeyValueStore; crlSerials?: () => ReadonlySet<string> }): (serialHex: string) => Promise<boolean> {
  return async (serialHex) => {
    const serial = normalizeSerialHex(serialHex);
    if (options.crlSerials?.().has(serial)) return true;
    return (await options.kv.get(kvKeys.revoked(serial))) !== null;
  };
}
