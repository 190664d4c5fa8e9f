/**
 * The control plane's signed command as it crosses the kernel boundary (kernel/contract.json
 * CommandAttachment): the command signature, then the exact bytes the control plane signed. The
 * agent appends it to the request payload and names its length in the header's command_len, so
 * the agent's request signature covers it too. The kernel verifies the command signature itself.
 */
import { SdcError } from '../../core/errors/index.js';
import { COMMAND_SIGNED_BYTES_MAX, Layout } from '../generated/contract.js';
import { view } from '../codec.js';

/** What the agent passes down: the control plane's signature and the bytes it covers. */
export interface CommandAuthorization {
  /** commandSigningInput(command): "sdc-command-v1\n" + canonical JSON. */
  signedBytes: Uint8Array;
  /** The 64-byte Ed25519 signature from the command's sig.value. */
  signature: Uint8Array;
  /**
   * The W3C traceparent the command was delivered with, if any. Not sent to the kernel (its
   * binary contract has no room, and needs none): the bridge logs the call with its trace id.
   */
  traceparent?: string;
}

const A = Layout.CommandAttachment;

export function encodeCommandAttachment(auth: CommandAuthorization): Uint8Array {
  if (auth.signature.length !== A.signature.bytes) throw new SdcError('KERNEL_BAD_ARGUMENT', `command signature has ${auth.signature.length} bytes, expected 64`);
  const n = auth.signedBytes.length;
  if (n < 1 || n > COMMAND_SIGNED_BYTES_MAX) throw new SdcError('KERNEL_BAD_ARGUMENT', `signed command of ${n} bytes is outside 1..${COMMAND_SIGNED_BYTES_MAX}`);
  const out = new Uint8Array(A.bytes + n);
  out.set(auth.signature, A.signature.offset);
  view(out).setUint32(A.signedLen.offset, n, true);
  out.set(auth.signedBytes, A.bytes);
  return out;
}

/** Splits an attachment; undefined when its lengths disagree (COMMAND_INVALID). */
export function decodeCommandAttachment(bytes: Uint8Array): CommandAuthorization | undefined {
  if (bytes.length < A.bytes) return undefined;
  const signedLen = view(bytes).getUint32(A.signedLen.offset, true);
  if (signedLen < 1 || signedLen > COMMAND_SIGNED_BYTES_MAX || bytes.length !== A.bytes + signedLen) return undefined;
  return { signature: bytes.subarray(0, A.signature.bytes), signedBytes: bytes.subarray(A.bytes) };
}
