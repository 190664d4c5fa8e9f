import { Type } from '@sinclair/typebox';
import { deviceIdPatternSource } from '../device-id.js';

/**
 * Field schemas shared by several messages. Every string and array has a bound, so that a
 * validated message is also a size-bounded one (on top of the frame limits in limits.ts).
 */
export const DeviceId = Type.String({ pattern: deviceIdPatternSource, description: 'Device id: lower-case letters, digits, `.`, `_`, `-`; 1-64 characters' });
export const FrameId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'Frame or command id: 1-64 URL-safe characters' });
export const SessionId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'Session id allocated by the gateway' });
export const Base64Url = (bytesMax: number) =>
  Type.String({ pattern: '^[A-Za-z0-9_-]*$', maxLength: Math.ceil((bytesMax * 4) / 3), description: `base64url without padding, at most ${bytesMax} bytes` });
export const X25519PublicKey = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: 'A 32-byte X25519 public key (RFC 7748), base64url' });
export const Nonce = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: '32 random bytes, base64url' });
export const EpochMs = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Milliseconds since the Unix epoch' });
export const DurationMs = (maxMs: number) => Type.Integer({ minimum: 0, maximum: maxMs, description: `Duration in milliseconds, at most ${maxMs}` });
export const Seq = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
export const Kid = Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,128}$', description: 'Key id' });
export const ShortText = (lengthMax: number) => Type.String({ maxLength: lengthMax });
export const ErrorCodeField = Type.String({ pattern: '^[A-Z][A-Z0-9_]{2,63}$', description: 'A code from docs/errors.md' });
export const Signature = Type.Object({
  alg: Type.Literal('Ed25519'),
  kid: Kid,
  value: Type.String({ pattern: '^[A-Za-z0-9_-]{86}$', description: '64-byte Ed25519 signature, base64url' }),
}, { additionalProperties: false });
/**
 * A W3C trace context (core/trace/trace-context.ts), version 00 as we always write it. Optional
 * wherever it appears: it ties one operation's log lines together and decides nothing.
 */
export const Traceparent = Type.String({ pattern: '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$', description: 'W3C traceparent, version 00' });
