import { SdcError } from '../errors/index.js';
import { base64urlFromBytes, bytesFromBase64url, concatBytes } from '../crypto/bytes.js';
import { canonicalBytes } from './canonical-json.js';
import type { Ed25519Provider } from '../ports/ports.js';
import type { SignedCommand } from './messages/command.js';
import { CommandTtlMsMax } from './messages/command.js';
import { validateOpcodeArgs } from './messages/validate.js';

/**
 * Commands are signed by the control plane, once, when accepted. The signature travels with
 * the command through the bus, the gateway and the wire, so none of them can alter it, and the
 * device checks it against keys pinned at enrollment. The prefix separates command signatures
 * from envelope and audit signatures (see docs/protocol.md).
 */
const commandSigningPrefix = new TextEncoder().encode('sdc-command-v1\n');

export type UnsignedCommand = Omit<SignedCommand, 'sig'>;

export function commandSigningInput(command: UnsignedCommand): Uint8Array {
  const body = canonicalBytes({
    id: command.id, device_id: command.device_id, opcode: command.opcode, args: command.args,
    issued_at: command.issued_at, expires_at: command.expires_at, device_seq: command.device_seq, issuer: command.issuer,
    // Only when present, so a command without approvals signs exactly the bytes it always did.
    ...(command.approval === undefined ? {} : { approval: command.approval }),
    ...(command.rollout_approval === undefined ? {} : { rollout_approval: command.rollout_approval }),
    // The device judges a command in its requester's role (a deny aimed at one role holds there),
    // so who asked is signed too: unsigned, anyone on the path (bus, gateway) could rename the
    // role or strip the field to escape such a deny. Only when present, as above.
    ...(command.requester === undefined ? {} : { requester: command.requester }),
  });
  return concatBytes(commandSigningPrefix, body);
}

export function signCommand(options: { command: UnsignedCommand; kid: string; seed: Uint8Array; provider: Ed25519Provider }): SignedCommand {
  const { command, kid, seed, provider } = options;
  validateOpcodeArgs(command.opcode, command.args);
  const ttlMs = command.expires_at - command.issued_at;
  if (!(ttlMs > 0 && ttlMs <= CommandTtlMsMax)) throw new SdcError('COMMAND_TTL_INVALID', `ttl ${ttlMs} ms is outside (0, ${CommandTtlMsMax}]`);
  const value = base64urlFromBytes(provider.sign(seed, commandSigningInput(command)));
  return { ...command, sig: { alg: 'Ed25519', kid, value } };
}

/**
 * The device-side checks, in order: addressed to this device, signed by a pinned control-plane
 * key, opcode and args valid, not expired. Throws COMMAND_DEVICE_MISMATCH, CRYPTO_UNKNOWN_KID,
 * CRYPTO_SIGNATURE_INVALID, PROTO_UNKNOWN_OPCODE, PROTO_SCHEMA_INVALID or COMMAND_EXPIRED.
 * Duplicate and sequence handling needs the device's record and lives in the agent.
 */
export function verifyCommand(options: {
  command: SignedCommand;
  deviceId: string;
  resolveKey: (kid: string) => Uint8Array | undefined;
  provider: Ed25519Provider;
  nowMs: number;
}): void {
  const { command, deviceId, resolveKey, provider, nowMs } = options;
  if (command.device_id !== deviceId) throw new SdcError('COMMAND_DEVICE_MISMATCH', `command is for ${command.device_id}`);
  if (command.sig.alg !== 'Ed25519') throw new SdcError('CRYPTO_UNSUPPORTED_ALG', `alg ${String(command.sig.alg)}`);
  const publicKey = resolveKey(command.sig.kid);
  if (publicKey === undefined) throw new SdcError('CRYPTO_UNKNOWN_KID', `no control-plane key ${command.sig.kid}`, { kid: command.sig.kid });
  const signature = bytesFromBase64url(command.sig.value, { code: 'CRYPTO_BAD_SIGNATURE_ENCODING', name: 'sig.value', length: 64 });
  const { sig: _sig, ...unsigned } = command;
  if (!provider.verify(publicKey, commandSigningInput(unsigned), signature)) {
    throw new SdcError('CRYPTO_SIGNATURE_INVALID', 'command signature does not verify', { commandId: command.id });
  }
  validateOpcodeArgs(command.opcode, command.args);
  if (nowMs >= command.expires_at) throw new SdcError('COMMAND_EXPIRED', `command expired ${nowMs - command.expires_at} ms ago`, { commandId: command.id });
}
