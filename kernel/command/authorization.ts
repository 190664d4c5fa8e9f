/** The kernel authorization for a verified command: the exact bytes the control plane signed, and its signature. */
import { bytesFromBase64url } from '../../core/crypto/bytes.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { commandSigningInput } from '../../core/protocol/signed-command.js';
import type { CommandAuthorization } from './attachment.js';

export function commandAuthorization(command: SignedCommand): CommandAuthorization {
  const { sig, ...unsigned } = command;
  return {
    signedBytes: commandSigningInput(unsigned),
    signature: bytesFromBase64url(sig.value, { code: 'CRYPTO_BAD_SIGNATURE_ENCODING', name: 'sig.value', length: 64 }),
  };
}
