/**
 * The kernel's control-plane authorization state, as the mock kernel holds it: the provisioned
 * device id and command keys, and the replay window of executed device_seqs. `check` decides
 * whether one IOCTL may run; `provision` executes PROVISION_COMMAND_KEYS. The native library
 * implements the same rules in the same order (sdc_command.c); docs/kernel-contract.md lists them.
 */
import type { Clock, Ed25519Provider } from '../../core/ports/ports.js';
import { COMMAND_EXPIRY_GRACE_MS, KernelStatus, Layout, PRIVILEGED_OPCODES, type OpcodeName } from '../generated/contract.js';
import { view } from '../codec.js';
import { decodeCommandAttachment } from './attachment.js';
import { commandMatches } from './match.js';
import { parseSignedCommand } from './parse.js';
import { ProvisionOutcome, decodeProvisionDeviceId, provisionRotationInput } from './provision.js';
import { CommandReplayWindow } from './replay-window.js';

const S = KernelStatus;
const P = Layout.ProvisionRequest;

export class CommandGate {
  private deviceId: string | undefined;
  /** Bytes [0, rotation_signature) of the accepted provisioning request: id, count, keys. */
  private body: Uint8Array | undefined;
  private keys: Uint8Array[] = [];
  private readonly window = new CommandReplayWindow();

  /** `clock`: the kernel's own time (the native library reads CLOCK_REALTIME), never the agent's word. */
  constructor(private readonly ed25519: Ed25519Provider, private readonly clock: Clock) {}

  /**
   * OK when the request may run. `attachment` is the payload's last command_len bytes (empty for
   * none) and `request` the opcode payload before it, already validated.
   */
  check(name: OpcodeName, attachment: Uint8Array, request: Uint8Array): number {
    if (name === 'PROVISION_COMMAND_KEYS') return attachment.length === 0 ? S.OK : S.COMMAND_INVALID;
    if (attachment.length === 0 && !PRIVILEGED_OPCODES.has(name)) return S.OK;
    if (this.deviceId === undefined) return S.NOT_PROVISIONED;
    if (attachment.length === 0) return S.COMMAND_MISSING;
    const auth = decodeCommandAttachment(attachment);
    if (auth === undefined) return S.COMMAND_INVALID;
    if (!this.keys.some((key) => this.ed25519.verify(key, auth.signedBytes, auth.signature))) return S.COMMAND_FORGED;
    const command = parseSignedCommand(auth.signedBytes);
    if (command === undefined) return S.COMMAND_INVALID;
    if (command.deviceId !== this.deviceId) return S.COMMAND_WRONG_DEVICE;
    if (!commandMatches(name, command, request)) return S.COMMAND_MISMATCH;
    // Before the replay window, so an expired command does not take a seq either.
    if (BigInt(Math.floor(this.clock.nowMs())) >= command.expiresAt + BigInt(COMMAND_EXPIRY_GRACE_MS)) return S.COMMAND_EXPIRED;
    if (!this.window.fresh(command.deviceSeq)) return S.COMMAND_REPLAY;
    this.window.mark(command.deviceSeq);
    return S.OK;
  }

  /** Executes a validated PROVISION_COMMAND_KEYS payload. */
  provision(p: Uint8Array): { status: number; payload: Uint8Array } {
    const body = p.subarray(0, P.rotationSignature.offset);
    const deviceId = decodeProvisionDeviceId(p)!;
    let outcome: number;
    if (this.body === undefined) {
      outcome = ProvisionOutcome.provisioned;
    } else if (deviceId !== this.deviceId) {
      return { status: S.PROVISION_DENIED, payload: new Uint8Array(0) };
    } else if (body.every((b, i) => b === this.body![i])) {
      outcome = ProvisionOutcome.unchanged;
    } else {
      const signature = p.subarray(P.rotationSignature.offset, P.rotationSignature.offset + P.rotationSignature.bytes);
      const input = provisionRotationInput(body);
      if (!this.keys.some((key) => this.ed25519.verify(key, input, signature))) return { status: S.PROVISION_DENIED, payload: new Uint8Array(0) };
      outcome = ProvisionOutcome.rotated;
    }
    const count = view(p).getUint32(P.keyCount.offset, true);
    this.deviceId = deviceId;
    this.body = body.slice();
    this.keys = Array.from({ length: count }, (_, i) => p.slice(P.keys.offset + 32 * i, P.keys.offset + 32 * (i + 1)));
    const payload = new Uint8Array(Layout.ProvisionResponse.bytes);
    view(payload).setUint32(Layout.ProvisionResponse.outcome.offset, outcome, true);
    view(payload).setUint32(Layout.ProvisionResponse.keyCount.offset, count, true);
    return { status: S.OK, payload };
  }
}
