import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import type { SdcError } from '../../core/errors/index.js';
import { encodeMessage, type FrameSigner } from '../../core/protocol/session/codec.js';
import { closeCodes } from './close-codes.js';
import type { DeviceTransport } from './device-session.js';
import type { GatewayContext } from './gateway-context.js';

export interface RefuseConnectionInput extends DeviceTransport {
  /**
   * Follows the protocol's device-id rule (core/protocol/device-id.ts), so the refusal frames can
   * carry it: the core's comes from a verified certificate (verifyDeviceCertificate checks the rule),
   * the server's from a certificate that failed verification only when its CN follows the rule.
   */
  deviceId: string;
  error: SdcError;
}

/** Longest AUTH_ERROR message sent to a refused device. */
const refusalMessageCharsMax = 512;

/** A challenge first, so the agent is in the state where AUTH_ERROR is the expected answer. */
function refusalFrames(context: GatewayContext, frameSigner: FrameSigner, deviceId: string, error: SdcError): Uint8Array[] {
  const { random, gatewayId } = context.options;
  const nowMs = context.nowMs();
  const sessionId = `r_${base64urlFromBytes(random.bytes(12))}`;
  const address = { deviceId, sessionId, ts: nowMs };
  const challenge = encodeMessage('AUTH_CHALLENGE', { nonce: base64urlFromBytes(random.bytes(32)), gateway_id: gatewayId, server_time_ms: nowMs },
    { ...address, id: 'g0', seq: 0 }, frameSigner);
  const refusal = encodeMessage('AUTH_ERROR', { code: error.code, message: error.message.slice(0, refusalMessageCharsMax) }, { ...address, id: 'g1', seq: 1 }, frameSigner);
  return [challenge.bytes, refusal.bytes];
}

/** Challenge + AUTH_ERROR with `error.code`, then close. A transport failure is logged, not thrown. */
export function refuseConnection(context: GatewayContext, frameSigner: FrameSigner, input: RefuseConnectionInput): void {
  const { logger } = context.options;
  logger.info({ device_id: input.deviceId, code: input.error.code, trace_id: context.traceId() }, 'connection refused');
  const frames = refusalFrames(context, frameSigner, input.deviceId, input.error);
  try {
    for (const frame of frames) input.send(frame);
  } catch (error) {
    logger.debug({ err: error }, 'AUTH_ERROR not sent: the transport failed');
  }
  try {
    input.close(closeCodes.policyViolation, input.error.code);
  } catch (error) {
    logger.debug({ err: error }, 'transport close failed');
  }
}
