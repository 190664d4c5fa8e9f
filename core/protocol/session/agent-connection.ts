import { SdcError } from '../../errors/index.js';
import { decodeEnvelope, verifyEnvelope } from '../envelope.js';
import type { MessageBody } from '../messages/catalog.js';
import type { DevicePosture } from '../messages/posture.js';
import { ConnectionCore, type ConnectionCoreOptions, type ConnectionEvent } from './connection-core.js';
import { checkBody } from './codec.js';
import { clockOffsetLimits } from '../clock-offset.js';
import { base64urlFromBytes } from '../../crypto/bytes.js';
import { deriveSessionMacKeys, newEphemeralKey, type EphemeralKey } from './session-mac.js';

export type AgentEvent =
  | ConnectionEvent
  /** `clockOffsetMs`: this device's clock minus the gateway's, as the gateway measured it at AUTH. */
  /** `telemetrySamplesMax`: what the gateway announced per TELEMETRY_BATCH (AUTH_ACK), present only when batches may be sent. */
  /** `telemetryAck`: true when the gateway answered this agent's `telemetry_ack` offer (it will send TELEMETRY_ACK). */
  | { kind: 'ready'; sessionId: string; sessionToken: string; heartbeatIntervalMs: number; serverTimeMs: number; clockOffsetMs: number; telemetrySamplesMax?: number; telemetryAck?: true }
  /** A checked TELEMETRY_ACK: every telemetry frame of this session with seq <= throughSeq is on the bus. */
  | { kind: 'telemetry_ack'; throughSeq: number }
  | { kind: 'auth_error'; code: string; message: string };

export interface AgentConnectionOptions extends Omit<ConnectionCoreOptions, 'frameIdPrefix'> {
  /** Gateway keys pinned at enrollment; frames signed by any other key are refused. */
  resolveGatewayKey: (kid: string) => Uint8Array | undefined;
  agentVersion: string;
  /** Highest command device_seq executed, reported in AUTH so the gateway can skip done work. */
  lastCommandSeq: number;
  /** Compliance facts sent in AUTH (messages/posture.ts); absent: none reported. */
  posture?: DevicePosture;
  /** Announce in AUTH that deliveries may carry a `traceparent` (the agent core does). */
  traceContext?: boolean;
  /**
   * Announce in AUTH that OTA notices may carry the control plane's signed `notice_state` (the
   * agent core does when it runs updates, which then requires it for cancel and the health nonce).
   * Off by default, so AUTH is as before for agents without an update runner.
   */
  otaNoticeState?: boolean;
  /**
   * Announce in AUTH that this agent sends TELEMETRY_BATCH (with `sessionMac` only): a gateway
   * that accepts batches answers with `telemetry_samples_max`. Off by default, so AUTH is as an
   * older gateway's schema knows it unless batching is wanted.
   */
  telemetryBatch?: boolean;
  /**
   * Offer in AUTH to take TELEMETRY_ACK (decision 0004, "Acknowledgements"): a gateway that sends
   * them answers `telemetry_ack` in AUTH_ACK. Off by default, so AUTH is byte for byte as before.
   */
  telemetryAck?: boolean;
}

/**
 * The agent's end of a session, sans-IO. The first frame must be a gateway-signed
 * AUTH_CHALLENGE; it fixes the session id. The agent answers with AUTH signed by the device
 * key and becomes ready on AUTH_ACK. Command signatures are checked by the agent's command
 * handling (verifyCommand), not here: this layer authenticates frames, not their contents.
 *
 * With `sessionMac`, AUTH offers an ephemeral X25519 key; if AUTH_ACK answers with the gateway's,
 * HEARTBEAT and TELEMETRY carry the session MAC from then on, both ways (session-mac.ts).
 *
 * Clocks: every method takes the device's own `nowMs`. AUTH carries it unchanged, so that the
 * gateway can measure the offset; until AUTH_ACK the offset is estimated from the challenge's
 * `ts`, then it is the gateway's measurement (`clockOffsetMs`). Frames after AUTH are stamped,
 * and the gateway's frames checked, on the gateway's clock (device clock minus the offset).
 */
export class AgentConnection extends ConnectionCore {
  readonly #options: AgentConnectionOptions;
  #clockOffsetMs = 0;
  /** The ephemeral key offered in AUTH, and the challenge it answered; used once AUTH_ACK arrives. */
  #ephemeral: EphemeralKey | undefined;
  #nonce = '';
  /** What the gateway announced per TELEMETRY_BATCH in this session's AUTH_ACK (0: no batches). */
  #telemetrySamplesMax = 0;
  /** The gateway answered `telemetry_ack` in this session's AUTH_ACK. */
  #telemetryAck = false;
  /** The seq of this session's last TELEMETRY or TELEMETRY_BATCH frame (-1: none): no ack may name a later one. */
  #telemetrySentSeq = -1;
  /** The last through_seq acknowledged in this session (-1: none): each ack must name a later one. */
  #telemetryAckedSeq = -1;

  constructor(options: AgentConnectionOptions) {
    super({ ...options, frameIdPrefix: 'a' });
    this.#options = options;
  }

  /** Device clock minus the gateway's: estimated from the challenge, then as measured by the gateway (AUTH_ACK). */
  get clockOffsetMs(): number {
    return this.#clockOffsetMs;
  }

  /** The gateway's clock now, from the device's. */
  #gatewayNowMs(nowMs: number): number {
    return nowMs - this.#clockOffsetMs;
  }

  receive(bytes: Uint8Array, nowMs: number): AgentEvent[] {
    if (!this.isOpen) return [];
    if (this.state === 'connecting') return this.#receiveChallenge(bytes, nowMs);
    let message;
    try {
      message = this.authenticate(bytes, this.#gatewayNowMs(nowMs), this.#options.resolveGatewayKey);
    } catch (error) {
      return this.refuse(error, nowMs);
    }
    if (this.state === 'authenticating') {
      if (message.type === 'AUTH_ACK') {
        const ack = message.body as MessageBody<'AUTH_ACK'>;
        if (ack.x25519_pub !== undefined) {
          const macOptions = this.sessionMacOptions;
          if (this.#ephemeral === undefined || macOptions === undefined) {
            return this.refuse(new SdcError('PROTO_SCHEMA_INVALID', 'AUTH_ACK answers a session MAC key this agent did not offer'), nowMs, message.envelope.id);
          }
          try {
            this.macKeys = deriveSessionMacKeys({
              crypto: macOptions.crypto, side: 'agent', own: this.#ephemeral, peerPublicKey: ack.x25519_pub, nonce: this.#nonce, sessionId: this.sessionId, deviceId: this.deviceId,
            });
          } catch (error) {
            return this.refuse(error, nowMs, message.envelope.id);
          }
        }
        // Batches are MAC'd frames, and announced only to an agent that asked: anything else is a gateway bug, refused.
        if (ack.telemetry_samples_max !== undefined && (this.macKeys === undefined || this.#options.telemetryBatch !== true)) {
          return this.refuse(new SdcError('PROTO_SCHEMA_INVALID', 'AUTH_ACK announces telemetry batches this agent did not ask for, or without the session MAC'), nowMs, message.envelope.id);
        }
        // Acks are announced only to an agent that offered to take them: an unasked announcement is a gateway bug, refused.
        if (ack.telemetry_ack !== undefined && this.#options.telemetryAck !== true) {
          return this.refuse(new SdcError('PROTO_TELEMETRY_ACK_UNEXPECTED', 'AUTH_ACK announces telemetry acknowledgements this agent did not offer'), nowMs, message.envelope.id);
        }
        this.#telemetryAck = ack.telemetry_ack === true;
        this.#telemetrySamplesMax = ack.telemetry_samples_max ?? 0;
        // The secret is not needed again: a new connection draws a new one.
        this.#ephemeral = undefined;
        this.applyEvent('auth_ok', nowMs);
        this.#clockOffsetMs = ack.clock_offset_ms;
        return [{
          kind: 'ready', sessionId: ack.session_id, sessionToken: ack.session_token, heartbeatIntervalMs: ack.heartbeat_interval_ms,
          serverTimeMs: ack.server_time_ms, clockOffsetMs: ack.clock_offset_ms, ...(this.#telemetrySamplesMax === 0 ? {} : { telemetrySamplesMax: this.#telemetrySamplesMax }),
          ...(this.#telemetryAck ? { telemetryAck: true as const } : {}),
        }];
      }
      if (message.type === 'AUTH_ERROR') {
        const refusal = message.body as MessageBody<'AUTH_ERROR'>;
        this.applyEvent('auth_failed', nowMs);
        return [{ kind: 'auth_error', code: refusal.code, message: refusal.message }, { kind: 'closed', reason: `authentication refused: ${refusal.code}` }];
      }
      return this.refuse(new SdcError('PROTO_ILLEGAL_TRANSITION', `expected AUTH_ACK, got ${message.type}`), nowMs, message.envelope.id);
    }
    switch (message.type) {
      case 'COMMAND_DELIVERY':
      case 'POLICY_BUNDLE':
      case 'OTA_NOTICE':
      case 'HEARTBEAT':
      case 'ALERT':
      case 'ERROR':
        this.applyEvent('frame', nowMs);
        return [{ kind: 'message', message }];
      case 'TELEMETRY_ACK': {
        this.applyEvent('frame', nowMs);
        const refusal = this.#checkTelemetryAck((message.body as MessageBody<'TELEMETRY_ACK'>).through_seq);
        if (refusal !== undefined) return this.refuse(refusal, nowMs, message.envelope.id);
        return [{ kind: 'telemetry_ack', throughSeq: this.#telemetryAckedSeq }];
      }
      default:
        return this.refuse(new SdcError('PROTO_ILLEGAL_TRANSITION', `${message.type} is not accepted from a gateway`), nowMs, message.envelope.id);
    }
  }

  /**
   * A TELEMETRY_ACK's through_seq after its MAC (or signature) and the replay guard passed: only on
   * a session that agreed acks, only forward (a repeated or reordered ack names nothing new), and
   * never past the last telemetry frame sent (the gateway cannot have appended a frame not sent).
   * Undefined, and the ack taken, when it is good.
   */
  #checkTelemetryAck(throughSeq: number): SdcError | undefined {
    if (!this.#telemetryAck) return new SdcError('PROTO_TELEMETRY_ACK_UNEXPECTED', 'TELEMETRY_ACK on a session that did not agree telemetry acknowledgements');
    if (throughSeq <= this.#telemetryAckedSeq) {
      return new SdcError('PROTO_TELEMETRY_ACK_STALE', `TELEMETRY_ACK through_seq ${throughSeq} is not after the previous acknowledgement (${this.#telemetryAckedSeq})`, { throughSeq, ackedSeq: this.#telemetryAckedSeq });
    }
    if (throughSeq > this.#telemetrySentSeq) {
      return new SdcError('PROTO_TELEMETRY_ACK_AHEAD', `TELEMETRY_ACK through_seq ${throughSeq} is beyond the last telemetry frame sent (${this.#telemetrySentSeq})`, { throughSeq, sentSeq: this.#telemetrySentSeq });
    }
    this.#telemetryAckedSeq = throughSeq;
    return undefined;
  }

  /** True when the gateway answered `telemetry_ack` in this session's AUTH_ACK: TELEMETRY_ACK will come. */
  get telemetryAckAgreed(): boolean {
    return this.#telemetryAck;
  }

  sendHeartbeat(body: MessageBody<'HEARTBEAT'>, nowMs: number): void {
    this.requireReady('HEARTBEAT');
    this.sendFrame('HEARTBEAT', body, this.#gatewayNowMs(nowMs));
  }

  /** Returns the frame's seq, which a TELEMETRY_ACK names. */
  sendTelemetry(body: MessageBody<'TELEMETRY'>, nowMs: number): number {
    this.requireReady('TELEMETRY');
    this.sendFrame('TELEMETRY', body, this.#gatewayNowMs(nowMs));
    this.#telemetrySentSeq = this.lastSentSeq;
    return this.#telemetrySentSeq;
  }

  /** Samples the gateway accepts per TELEMETRY_BATCH in this session (0: send TELEMETRY, one sample per frame). */
  get telemetrySamplesMax(): number {
    return this.#telemetrySamplesMax;
  }

  /** Throws PROTO_TELEMETRY_BATCH_TOO_LARGE (nothing sent) beyond what the gateway announced, as it would refuse it. */
  sendTelemetryBatch(body: MessageBody<'TELEMETRY_BATCH'>, nowMs: number): number {
    this.requireReady('TELEMETRY_BATCH');
    if (body.samples.length > this.#telemetrySamplesMax) {
      throw new SdcError('PROTO_TELEMETRY_BATCH_TOO_LARGE', `${body.samples.length} samples; the gateway announced at most ${this.#telemetrySamplesMax} per batch`, { samplesMax: this.#telemetrySamplesMax });
    }
    this.sendFrame('TELEMETRY_BATCH', body, this.#gatewayNowMs(nowMs));
    this.#telemetrySentSeq = this.lastSentSeq;
    return this.#telemetrySentSeq;
  }

  sendCommandAck(body: MessageBody<'COMMAND_ACK'>, nowMs: number): void {
    this.requireReady('COMMAND_ACK');
    this.sendFrame('COMMAND_ACK', body, this.#gatewayNowMs(nowMs));
  }

  sendCommandResult(body: MessageBody<'COMMAND_RESULT'>, nowMs: number): void {
    this.requireReady('COMMAND_RESULT');
    this.sendFrame('COMMAND_RESULT', body, this.#gatewayNowMs(nowMs));
  }

  sendAlert(body: MessageBody<'ALERT'>, nowMs: number): void {
    this.requireReady('ALERT');
    this.sendFrame('ALERT', body, this.#gatewayNowMs(nowMs));
  }

  sendOtaReport(body: MessageBody<'OTA_REPORT'>, nowMs: number): void {
    this.requireReady('OTA_REPORT');
    this.sendFrame('OTA_REPORT', body, this.#gatewayNowMs(nowMs));
  }

  sendPolicyBundleReport(body: MessageBody<'POLICY_BUNDLE_REPORT'>, nowMs: number): void {
    this.requireReady('POLICY_BUNDLE_REPORT');
    this.sendFrame('POLICY_BUNDLE_REPORT', body, this.#gatewayNowMs(nowMs));
  }

  /**
   * The challenge names the session; it must be signed by a pinned gateway key. Its `ts` is the
   * gateway's clock: up to clockOffsetLimits.agentChallengeOffsetMsMax from ours is accepted (the
   * gateway decides on the offset after AUTH), and gives the offset used until AUTH_ACK.
   */
  #receiveChallenge(bytes: Uint8Array, nowMs: number): AgentEvent[] {
    try {
      const envelope = verifyEnvelope({ envelope: decodeEnvelope(bytes, undefined), resolveKey: this.#options.resolveGatewayKey, provider: this.signerProvider });
      if (envelope.device_id !== this.deviceId) throw new SdcError('PROTO_SESSION_MISMATCH', 'challenge is for another device');
      if (envelope.type !== 'AUTH_CHALLENGE') throw new SdcError('PROTO_ILLEGAL_TRANSITION', `expected AUTH_CHALLENGE, got ${envelope.type}`);
      const estimatedOffsetMs = nowMs - envelope.ts;
      if (Math.abs(estimatedOffsetMs) > clockOffsetLimits.agentChallengeOffsetMsMax) {
        throw new SdcError('PROTO_CLOCK_SKEW', `the gateway's clock is ${-estimatedOffsetMs} ms off ours`, { clockOffsetMs: estimatedOffsetMs });
      }
      this.sessionId = envelope.session_id;
      this.replay.open(this.sessionId, 0);
      this.replay.accept({ sessionId: this.sessionId, seq: envelope.seq, ts: envelope.ts }, nowMs - estimatedOffsetMs);
      const challenge = checkBody(envelope).body as MessageBody<'AUTH_CHALLENGE'>;
      this.applyEvent('challenge', nowMs);
      this.lastHeardMs = nowMs;
      const macOptions = this.sessionMacOptions;
      this.#ephemeral = macOptions === undefined ? undefined : newEphemeralKey(macOptions);
      this.#nonce = challenge.nonce;
      // On our own clock: the gateway measures the offset from this frame's ts.
      this.sendFrame('AUTH', {
        nonce: challenge.nonce, agent_version: this.#options.agentVersion, last_command_seq: this.#options.lastCommandSeq,
        ...(this.#options.posture === undefined ? {} : { posture: this.#options.posture }),
        ...(this.#ephemeral === undefined ? {} : { x25519_pub: base64urlFromBytes(this.#ephemeral.publicKey) }),
        ...(this.#options.traceContext === true ? { trace_context: true } : {}),
        ...(this.#options.telemetryBatch === true && this.#ephemeral !== undefined ? { telemetry_batch: true } : {}),
        ...(this.#options.telemetryAck === true ? { telemetry_ack: true } : {}),
        ...(this.#options.otaNoticeState === true ? { ota_notice_state: true } : {}),
      }, nowMs);
      this.#clockOffsetMs = estimatedOffsetMs;
      return [];
    } catch (error) {
      const typed = SdcError.is(error) ? error : new SdcError('PROTO_INVALID_ARGUMENT', String(error));
      this.applyEvent('close', nowMs);
      return [{ kind: 'refused', error: typed }, { kind: 'closed', reason: 'invalid challenge', code: typed.code }];
    }
  }

  // The agent has no frame to send when the gateway's challenge is bad: it just closes.
  protected onRefusedBeforeReady(): void {}
}
