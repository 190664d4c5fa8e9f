import { kvKeys } from '../bus-contract/streams.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';

/**
 * The gateway's "has this device enrolled here" check: a certificate from our CA is not enough,
 * since the CA's key could have signed one outside enrollment. The control plane keeps
 * `kvKeys.device` for every enrolled device, so a gateway without SQL (`sdc gateway`) can ask too.
 */
export function createEnrollmentCheck(options: { kv: KeyValueStore }): (deviceId: string) => Promise<boolean> {
  return async (deviceId) => (await options.kv.get(kvKeys.device(deviceId))) !== null;
}
