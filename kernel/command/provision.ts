/**
 * PROVISION_COMMAND_KEYS payloads: this device's id and the control plane's command keys, set in
 * the kernel at enrollment. Threat model (docs/security/threat-model.md): the first provisioning
 * is trusted because it happens at enrollment, before the agent has handled any input; after that
 * a compromised agent cannot swap in its own key, because a different key set is accepted only
 * with a rotation signature by a key already provisioned, and the device id never changes.
 */
import { SdcError } from '../../core/errors/index.js';
import { COMMAND_KEYS_MAX, Layout } from '../generated/contract.js';
import { view } from '../codec.js';

const P = Layout.ProvisionRequest;
export const provisionRotationPrefixBytes = new TextEncoder().encode('sdc-kernel-provision-v1\n');
const deviceIdPattern = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface CommandKeySet {
  deviceId: string;
  /** Raw 32-byte Ed25519 public keys, 1..COMMAND_KEYS_MAX. */
  keys: readonly Uint8Array[];
}

export const ProvisionOutcome = Object.freeze({ provisioned: 1, unchanged: 2, rotated: 3 });
export type ProvisionOutcomeName = keyof typeof ProvisionOutcome;

/** Bytes [0, rotation_signature) of the request: what a rotation signature covers (after the prefix). */
export function encodeProvisionBody(set: CommandKeySet): Uint8Array {
  if (!deviceIdPattern.test(set.deviceId)) throw new SdcError('KERNEL_BAD_ARGUMENT', `device id '${set.deviceId}' is not 1..64 of [a-z0-9._-]`);
  if (set.keys.length < 1 || set.keys.length > COMMAND_KEYS_MAX) throw new SdcError('KERNEL_BAD_ARGUMENT', `1..${COMMAND_KEYS_MAX} command keys, not ${set.keys.length}`);
  const body = new Uint8Array(P.rotationSignature.offset);
  body.set(new TextEncoder().encode(set.deviceId), P.deviceId.offset);
  view(body).setUint32(P.keyCount.offset, set.keys.length, true);
  set.keys.forEach((key, i) => {
    if (key.length !== 32) throw new SdcError('KERNEL_BAD_ARGUMENT', `command key ${i} has ${key.length} bytes, expected 32`);
    body.set(key, P.keys.offset + 32 * i);
  });
  return body;
}

/** What a provisioned key signs to authorize a rotation to `set`. */
export function provisionRotationInput(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(provisionRotationPrefixBytes.length + body.length);
  out.set(provisionRotationPrefixBytes);
  out.set(body, provisionRotationPrefixBytes.length);
  return out;
}

export function encodeProvisionRequest(set: CommandKeySet, rotationSignature?: Uint8Array): Uint8Array {
  const out = new Uint8Array(P.bytes);
  out.set(encodeProvisionBody(set));
  if (rotationSignature) {
    if (rotationSignature.length !== 64) throw new SdcError('KERNEL_BAD_ARGUMENT', 'rotation signature must have 64 bytes');
    out.set(rotationSignature, P.rotationSignature.offset);
  }
  return out;
}

/** The kernel's payload check (after the exact length): BAD_PAYLOAD for a bad id, reserved bytes or stray key bytes. */
export function provisionPayloadValid(p: Uint8Array): boolean {
  const v = view(p);
  const count = v.getUint32(P.keyCount.offset, true);
  if (v.getUint32(P.reserved.offset, true) !== 0 || count < 1 || count > COMMAND_KEYS_MAX) return false;
  if (p.subarray(P.keys.offset + 32 * count, P.keys.offset + P.keys.bytes).some((b) => b !== 0)) return false;
  return decodeProvisionDeviceId(p) !== undefined;
}

/** The NUL-padded device id, or undefined when malformed (bytes after the first NUL must be NUL). */
export function decodeProvisionDeviceId(p: Uint8Array): string | undefined {
  const field = p.subarray(P.deviceId.offset, P.deviceId.offset + P.deviceId.bytes);
  const nul = field.indexOf(0);
  const end = nul < 0 ? field.length : nul;
  if (field.subarray(end).some((b) => b !== 0)) return undefined;
  const id = String.fromCharCode(...field.subarray(0, end));
  return deviceIdPattern.test(id) ? id : undefined;
}

export function decodeProvisionResponse(payload: Uint8Array): { outcome: ProvisionOutcomeName; keyCount: number } {
  if (payload.length !== Layout.ProvisionResponse.bytes) throw new SdcError('KERNEL_RESPONSE_INVALID', `provision response has ${payload.length} bytes`);
  const v = view(payload);
  const value = v.getUint32(Layout.ProvisionResponse.outcome.offset, true);
  const outcome = (Object.keys(ProvisionOutcome) as ProvisionOutcomeName[]).find((k) => ProvisionOutcome[k] === value);
  if (outcome === undefined) throw new SdcError('KERNEL_RESPONSE_INVALID', `provision outcome ${value} is not defined`);
  return { outcome, keyCount: v.getUint32(Layout.ProvisionResponse.keyCount.offset, true) };
}
