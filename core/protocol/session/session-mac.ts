import { SdcError } from '../../errors/index.js';
import { bytesFromBase64url } from '../../crypto/bytes.js';
import type { RandomSource, SessionKeyCrypto } from '../../ports/ports.js';
import type { MessageType } from '../messages/catalog.js';

/**
 * The session MAC (docs/decisions/0004-telemetry-session-mac.md): each side puts an ephemeral
 * X25519 key in its Ed25519-signed AUTH or AUTH_ACK, both derive one HMAC-SHA256 key per
 * direction, and from then on the frequent session frames carry a MAC instead of a signature.
 * What the audit log and command history rest on (AUTH, COMMAND_ACK, COMMAND_RESULT, ALERT, the
 * gateway's deliveries) stays signed by the long-term keys.
 */

/**
 * The frame types that carry the session MAC once it is agreed, in both directions.
 * TELEMETRY_BATCH exists only under the MAC (codec.ts refuses it on a session without one).
 * TELEMETRY_ACK (gateway to agent) is as frequent as the telemetry it answers, and vouches for
 * nothing the audit rests on: MAC'd like the HEARTBEAT echo, signed on a session without a MAC.
 */
export const sessionMacTypes: ReadonlySet<MessageType> = new Set<MessageType>(['HEARTBEAT', 'TELEMETRY', 'TELEMETRY_BATCH', 'TELEMETRY_ACK']);

/** HKDF info prefix; the session id and device id follow, so a key serves one session of one device. */
export const sessionMacInfoPrefix = 'sdc-session-mac-v1\n';

/** What a side needs to offer the session MAC. */
export interface SessionMacOptions {
  readonly crypto: SessionKeyCrypto;
  /** Draws the ephemeral secret (seeded in the simulator, so a seed still gives one trace). */
  readonly random: RandomSource;
}

/** One session's two keys, as one side sees them. */
export interface SessionMacKeys {
  readonly crypto: SessionKeyCrypto;
  /** The key this side MACs its frames with. */
  readonly send: Uint8Array;
  /** The key the peer's frames must verify under. */
  readonly receive: Uint8Array;
}

/** An ephemeral X25519 key pair for one session. */
export interface EphemeralKey {
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

export function newEphemeralKey(options: SessionMacOptions): EphemeralKey {
  const secretKey = options.random.bytes(32);
  return { secretKey, publicKey: options.crypto.x25519PublicKey(secretKey) };
}

const encoder = new TextEncoder();

/**
 * Both directions' keys: HKDF-SHA256 over the X25519 shared secret, salted with the challenge
 * nonce (fresh per connection), with the session and device in `info`. Separate keys per
 * direction, so that a frame reflected back to its sender never verifies (a reflected HEARTBEAT
 * would otherwise pass as the gateway's echo and confirm results the gateway never saw).
 * Throws CRYPTO_BAD_KEY for a malformed or low-order peer key.
 */
export function deriveSessionMacKeys(input: {
  crypto: SessionKeyCrypto;
  side: 'agent' | 'gateway';
  own: EphemeralKey;
  /** The peer's x25519_pub, as sent (base64url). */
  peerPublicKey: string;
  nonce: string;
  sessionId: string;
  deviceId: string;
}): SessionMacKeys {
  const peer = bytesFromBase64url(input.peerPublicKey, { code: 'CRYPTO_BAD_KEY', name: 'x25519_pub', length: 32 });
  const shared = input.crypto.x25519SharedSecret(input.own.secretKey, peer);
  const okm = input.crypto.hkdfSha256({
    ikm: shared, salt: encoder.encode(input.nonce), info: encoder.encode(`${sessionMacInfoPrefix}${input.sessionId}\n${input.deviceId}`), length: 64,
  });
  // Views of the one 64-byte output, not copies: a gateway keeps these for every session it holds.
  const agentToGateway = okm.subarray(0, 32);
  const gatewayToAgent = okm.subarray(32, 64);
  if (input.side === 'agent') return { crypto: input.crypto, send: agentToGateway, receive: gatewayToAgent };
  if (input.side === 'gateway') return { crypto: input.crypto, send: gatewayToAgent, receive: agentToGateway };
  throw new SdcError('PROTO_INVALID_ARGUMENT', `unknown session side ${String(input.side)}`);
}
