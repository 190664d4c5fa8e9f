import { SdcError } from '../errors/index.js';
import { base64urlFromBytes, concatBytes } from '../crypto/bytes.js';
import type { Ed25519Provider } from '../ports/ports.js';

/**
 * The kernel's command-key rotation (docs/kernel-contract.md, "Provisioning"), the part the
 * control plane signs. The kernel takes a new set of command keys only with a `rotation_signature`
 * by a key it already holds, over "sdc-kernel-provision-v1\n" + bytes [0, 328) of the
 * PROVISION_COMMAND_KEYS payload: the device id (64 bytes, NUL-padded), the key count (u32 LE),
 * 4 reserved zero bytes, and 8 slots of 32-byte keys (unused slots zero). The layout is the
 * kernel contract's (kernel/contract.json, ProvisionRequest); core cannot import kernel/, so
 * kernel/command/provision.test.ts pins this encoding against the kernel's own.
 *
 * Pure: keys and the signature provider come in.
 */
export const kernelProvisionLayout = Object.freeze({
  deviceIdBytes: 64,
  keyCountOffset: 64,
  keysOffset: 72,
  keysMax: 8,
  /** Bytes [0, rotation_signature): what a rotation signature covers, after the prefix. */
  bodyBytes: 328,
});

const rotationPrefix = new TextEncoder().encode('sdc-kernel-provision-v1\n');
const deviceIdPattern = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface KernelKeySet {
  readonly deviceId: string;
  /** Raw 32-byte Ed25519 public keys, 1..8, in the order the kernel is given them. */
  readonly keys: readonly Uint8Array[];
}

/** What a held key signs to let the kernel take `set`. */
export function kernelKeyRotationInput(set: KernelKeySet): Uint8Array {
  const L = kernelProvisionLayout;
  if (!deviceIdPattern.test(set.deviceId)) throw new SdcError('CRYPTO_BAD_KEY', `device id '${set.deviceId}' is not 1..64 of [a-z0-9._-]`);
  if (set.keys.length < 1 || set.keys.length > L.keysMax) throw new SdcError('CRYPTO_BAD_KEY', `1..${L.keysMax} command keys, not ${set.keys.length}`);
  const body = new Uint8Array(L.bodyBytes);
  body.set(new TextEncoder().encode(set.deviceId), 0);
  new DataView(body.buffer).setUint32(L.keyCountOffset, set.keys.length, true);
  set.keys.forEach((key, i) => {
    if (key.length !== 32) throw new SdcError('CRYPTO_BAD_KEY', `command key ${i} has ${key.length} bytes, expected 32`);
    body.set(key, L.keysOffset + 32 * i);
  });
  return concatBytes(rotationPrefix, body);
}

/** One signed rotation: the signing key's kid and its base64url Ed25519 signature. */
export interface KernelKeyRotation {
  readonly kid: string;
  readonly signature: string;
}

/** The control plane's side: a rotation to `set` signed by one of its command keys. */
export function signKernelKeyRotation(options: { set: KernelKeySet; kid: string; seed: Uint8Array; provider: Ed25519Provider }): KernelKeyRotation {
  return { kid: options.kid, signature: base64urlFromBytes(options.provider.sign(options.seed, kernelKeyRotationInput(options.set))) };
}
