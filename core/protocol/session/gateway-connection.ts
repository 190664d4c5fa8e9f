import { SdcError } from '../../errors/index.js';
import { base64urlFromBytes } from '../../crypto/bytes.js';
import type { MessageBody } from '../messages/catalog.js';
import type { DevicePosture } from '../messages/posture.js';
import type { SignedCommand } from '../messages/command.js';
import type { RandomSource } from '../../ports/ports.js';
import { checkClockOffset, measureClockOffsetMs } from '../clock-offset.js';
import { ConnectionCore, type ConnectionCoreOptions, type ConnectionEvent } from './connection-core.js';
import { TelemetryChain, type Sha256Hex } from './telemetry-chain.js';
import { deriveSessionMacKeys, newEphemeralKey, type SessionMacKeys } from './session-mac.js';
import { telemetryBatchLimits } from '../limits.js';

export const deviceKid = (deviceId: string): string => `device:${deviceId}`;
export const gatewayKid = (gatewayId: string): string => `gateway:${gatewayId}`;

export type GatewayEvent =
  | ConnectionEvent
  /** `clockOffsetMs`: the device clock minus ours, measured at AUTH (clock-offset.ts). */
  /** `telemetryAck`: the agent offered acks and this gateway announced them (the driver sends TELEMETRY_ACK after appends). */
  | { kind: 'authenticated'; deviceId: string; sessionId: string; lastCommandSeq: number; agentVersion: string; clockOffsetMs: number; sessionMac: boolean; telemetryAck?: true; posture?: DevicePosture };

export interface GatewayConnectionOptions extends Omit<ConnectionCoreOptions, 'frameIdPrefix'> {
  gatewayId: string;
  /** Allocated by the gateway (random, unique); also names the replay-guard session. */
  sessionId: string;
  /** The device key from the verified client certificate: AUTH must be signed with it. */
  devicePublicKey: Uint8Array;
  random: RandomSource;
  heartbeatIntervalMs: number;
  /** Time allowed between the challenge and a valid AUTH. */
  authTimeoutMs: number;
  /** Token handed out in AUTH_ACK, minted by the caller (it may need async signing). */
  sessionToken: string;
  /** When given, TELEMETRY prev_hash is checked within the session (TelemetryChain); the gateway core passes it. */
  telemetrySha256Hex?: Sha256Hex;
  /**
   * The most samples per TELEMETRY_BATCH this gateway accepts (1..telemetryBatchLimits.samplesPerFrameMax),
   * announced in AUTH_ACK to an agent that offers `telemetry_batch` on a MAC'd session. Absent or 0:
   * none announced, and every batch is refused PROTO_TELEMETRY_BATCH_TOO_LARGE.
   */
  telemetrySamplesPerFrameMax?: number;
  /**
   * Announce `telemetry_ack` in AUTH_ACK to an agent that offers it in AUTH (decision 0004,
   * "Acknowledgements"); the driver then sends TELEMETRY_ACK (sendTelemetryAck) once the
   * session's frames are appended. Absent or false: never announced, AUTH_ACK as before.
   */
  telemetryAcks?: boolean;
}

/**
 * The gateway's end of one device session, sans-IO. The driver (server/gateway) calls `start`
 * when the TLS handshake has verified the client certificate, feeds every received frame to
 * `receive`, writes `takeOutgoing()` to the socket, and calls `handleTimeout` at
 * `pollTimeoutMs()`. Presence is lost after 1.5 heartbeat intervals of silence. AUTH is the one
 * frame whose `ts` is on the device's own clock: its freshness comes from the nonce, and its `ts`
 * gives the device's clock offset (refused beyond clockOffsetLimits.offsetMsMax with
 * PROTO_CLOCK_SKEW, details.clockOffsetMs); AUTH_ACK hands the offset to the agent, whose later
 * frames are stamped on our clock.
 */
export class GatewayConnection extends ConnectionCore {
  // What this end reads of its options, as fields, not the options object: a gateway holds one
  // connection per session (docs/benchmarks.md, 2026-12-04 "memory per session").
  readonly #gatewayId: string;
  readonly #devicePublicKey: Uint8Array;
  readonly #random: RandomSource;
  readonly #heartbeatIntervalMs: number;
  readonly #authTimeoutMs: number;
  /** Sent once, in AUTH_ACK; forgotten then (nothing reads it after). */
  #sessionToken: string;
  /** The challenge's nonce: read by AUTH alone (its answer and the MAC keys), so forgotten once the session is ready. */
  #nonce = '';
  #challengedAtMs = 0;
  readonly #telemetryChain: TelemetryChain | undefined;
  #clockOffsetMs = 0;
  /** The agent announced `trace_context` in AUTH: its deliveries may carry a traceparent (an older agent's schema would refuse one). */
  #traceContext = false;
  /** The agent announced `ota_notice_state` in AUTH: its OTA notices carry the signed state (an older agent's schema would refuse it). */
  #otaNoticeState = false;
  /**
   * Samples per TELEMETRY_BATCH: what this gateway would accept until AUTH, then what it announced
   * to this session in AUTH_ACK (0 when it announced nothing), the bound each batch is held to.
   * One field, not two: a gateway holds one connection per session (no batch can arrive before AUTH).
   */
  #samplesPerFrameMax: number;
  /** Until AUTH: this gateway would announce acks; after: it did (the agent offered them). */
  #telemetryAck: boolean;
  /** The last through_seq sent (-1: none): acks only go forward, as the agent requires. */
  #telemetryAckedSeq = -1;

  constructor(options: GatewayConnectionOptions) {
    super({ ...options, frameIdPrefix: 'g' });
    this.#gatewayId = options.gatewayId;
    this.#devicePublicKey = options.devicePublicKey;
    this.#random = options.random;
    this.#heartbeatIntervalMs = options.heartbeatIntervalMs;
    this.#authTimeoutMs = options.authTimeoutMs;
    this.#sessionToken = options.sessionToken;
    this.#telemetryChain = options.telemetrySha256Hex === undefined ? undefined : new TelemetryChain(options.telemetrySha256Hex);
    const samplesMax = options.telemetrySamplesPerFrameMax ?? 0;
    if (!Number.isSafeInteger(samplesMax) || samplesMax < 0 || samplesMax > telemetryBatchLimits.samplesPerFrameMax) {
      throw new SdcError('PROTO_INVALID_ARGUMENT', `telemetrySamplesPerFrameMax must be an integer from 0 to ${telemetryBatchLimits.samplesPerFrameMax}`);
    }
    this.#samplesPerFrameMax = samplesMax;
    this.#telemetryAck = options.telemetryAcks === true;
    this.sessionId = options.sessionId;
  }

  /** Sends AUTH_CHALLENGE and starts the authentication timer. */
  start(nowMs: number): void {
    this.applyEvent('challenge', nowMs);
    this.#nonce = base64urlFromBytes(this.#random.bytes(32));
    this.#challengedAtMs = nowMs;
    this.replay.open(this.sessionId, 0);
    this.sendFrame('AUTH_CHALLENGE', { nonce: this.#nonce, gateway_id: this.#gatewayId, server_time_ms: nowMs }, nowMs);
  }

  /** The time at which `handleTimeout` must be called, or undefined when no timer runs. */
  pollTimeoutMs(): number | undefined {
    if (this.state === 'authenticating') return this.#challengedAtMs + this.#authTimeoutMs;
    if (this.state === 'ready') return this.lastHeardMs + Math.ceil(this.#heartbeatIntervalMs * 1.5);
    return undefined;
  }

  handleTimeout(nowMs: number): GatewayEvent[] {
    const deadline = this.pollTimeoutMs();
    if (deadline === undefined || nowMs < deadline) return [];
    if (this.state === 'authenticating') this.onRefusedBeforeReady(new SdcError('PROTO_TS_TOO_OLD', 'no AUTH before the authentication timeout'), nowMs);
    this.applyEvent('heartbeat_timeout', nowMs);
    return [{ kind: 'closed', reason: this.state === 'closed' ? 'peer silent past its deadline' : 'timeout' }];
  }

  receive(bytes: Uint8Array, nowMs: number): GatewayEvent[] {
    if (!this.isOpen || this.state === 'connecting') return [];
    const resolveKey = (kid: string) => (kid === deviceKid(this.deviceId) ? this.#devicePublicKey : undefined);
    const localTsOf = this.state === 'authenticating' ? (ts: number) => this.#measureClockOffset(ts, nowMs) : undefined;
    let message;
    try {
      message = this.authenticate(bytes, nowMs, resolveKey, localTsOf);
    } catch (error) {
      return this.refuse(error, nowMs);
    }
    if (this.state === 'authenticating') {
      if (message.type !== 'AUTH') {
        return this.refuse(new SdcError('PROTO_ILLEGAL_TRANSITION', `expected AUTH, got ${message.type}`), nowMs, message.envelope.id);
      }
      const auth = message.body as MessageBody<'AUTH'>;
      if (auth.nonce !== this.#nonce) return this.refuse(new SdcError('PROTO_REPLAY', 'AUTH does not answer this challenge'), nowMs);
      // The session MAC when the agent offers it and we are configured for it; an agent that does not (an older one) keeps signing.
      const macOptions = this.sessionMacOptions;
      let ownPublicKey: string | undefined;
      let macKeys: SessionMacKeys | undefined;
      if (auth.x25519_pub !== undefined && macOptions !== undefined) {
        const own = newEphemeralKey(macOptions);
        try {
          macKeys = deriveSessionMacKeys({
            crypto: macOptions.crypto, side: 'gateway', own, peerPublicKey: auth.x25519_pub, nonce: this.#nonce, sessionId: this.sessionId, deviceId: this.deviceId,
          });
        } catch (error) {
          return this.refuse(error, nowMs, message.envelope.id);
        }
        ownPublicKey = base64urlFromBytes(own.publicKey);
      }
      this.applyEvent('auth_ok', nowMs);
      this.#traceContext = auth.trace_context === true;
      this.#otaNoticeState = auth.ota_notice_state === true;
      // Batches only under the MAC, and announced only to an agent that said it reads the member (an older agent's schema refuses it).
      if (macKeys === undefined || auth.telemetry_batch !== true) this.#samplesPerFrameMax = 0;
      // Acks only to an agent that offered to take them (an older agent's schema refuses the member and the type).
      this.#telemetryAck = this.#telemetryAck && auth.telemetry_ack === true;
      this.sendFrame('AUTH_ACK', {
        session_id: this.sessionId, session_token: this.#sessionToken,
        heartbeat_interval_ms: this.#heartbeatIntervalMs, seq_start: message.envelope.seq + 1, server_time_ms: nowMs,
        clock_offset_ms: this.#clockOffsetMs, ...(ownPublicKey === undefined ? {} : { x25519_pub: ownPublicKey }),
        ...(this.#samplesPerFrameMax === 0 ? {} : { telemetry_samples_max: this.#samplesPerFrameMax }),
        ...(this.#telemetryAck ? { telemetry_ack: true as const } : {}),
      }, nowMs);
      // After AUTH_ACK, which is signed: the agent learns our key from it before any MAC'd frame.
      this.macKeys = macKeys;
      this.#nonce = '';
      this.#sessionToken = '';
      return [{
        kind: 'authenticated', deviceId: this.deviceId, sessionId: this.sessionId, lastCommandSeq: auth.last_command_seq, agentVersion: auth.agent_version,
        clockOffsetMs: this.#clockOffsetMs, sessionMac: macKeys !== undefined, ...(this.#telemetryAck ? { telemetryAck: true as const } : {}), ...(auth.posture === undefined ? {} : { posture: auth.posture }),
      }];
    }
    switch (message.type) {
      case 'HEARTBEAT':
        this.applyEvent('frame', nowMs);
        this.echoFrame(message, nowMs);
        return [{ kind: 'message', message }];
      case 'TELEMETRY': {
        this.applyEvent('frame', nowMs);
        const broken = this.#telemetryChain?.check(bytes, message.body as MessageBody<'TELEMETRY'>);
        return broken === undefined ? [{ kind: 'message', message }] : this.refuse(broken, nowMs, message.envelope.id);
      }
      case 'TELEMETRY_BATCH': {
        this.applyEvent('frame', nowMs);
        // The MAC (codec) and the seq window (authenticate) passed; the batch's own rules, then the chain, which it extends either way.
        const body = message.body as MessageBody<'TELEMETRY_BATCH'>;
        const refused = this.#checkBatch(body);
        // The chain takes the frame as its link either way: the agent chains on what it sent, so one bad batch costs one refusal.
        const broken = this.#telemetryChain?.check(bytes, body);
        const refusal = refused ?? broken;
        return refusal === undefined ? [{ kind: 'message', message }] : this.refuse(refusal, nowMs, message.envelope.id);
      }
      case 'COMMAND_ACK':
      case 'COMMAND_RESULT':
      case 'POLICY_BUNDLE_REPORT':
      case 'OTA_REPORT':
      case 'ALERT':
      case 'ERROR':
        this.applyEvent('frame', nowMs);
        return [{ kind: 'message', message }];
      default:
        return this.refuse(new SdcError('PROTO_ILLEGAL_TRANSITION', `${message.type} is not accepted from an agent`), nowMs, message.envelope.id);
    }
  }

  /** Undefined for a batch within what this session was announced, its samples in sampled_at order; else the refusal. */
  #checkBatch(body: MessageBody<'TELEMETRY_BATCH'>): SdcError | undefined {
    const samples = body.samples;
    let refusal: SdcError | undefined;
    if (samples.length > this.#samplesPerFrameMax) {
      refusal = new SdcError('PROTO_TELEMETRY_BATCH_TOO_LARGE', this.#samplesPerFrameMax === 0
        ? 'this gateway announced no telemetry batches to this session'
        : `TELEMETRY_BATCH has ${samples.length} samples; this session was announced at most ${this.#samplesPerFrameMax}`, { samplesMax: this.#samplesPerFrameMax });
    } else {
      for (let index = 1; index < samples.length; index += 1) {
        if (samples[index]!.sampled_at < samples[index - 1]!.sampled_at) {
          refusal = new SdcError('PROTO_TELEMETRY_BATCH_UNORDERED', `TELEMETRY_BATCH sample ${index} was sampled before sample ${index - 1}`, { index });
          break;
        }
      }
    }
    return refusal;
  }

  /** Measures the device clock from a frame received while authenticating; returns its ts on our clock. */
  #measureClockOffset(deviceTsMs: number, nowMs: number): number {
    const offsetMs = measureClockOffsetMs({ deviceTsMs, challengeSentAtMs: this.#challengedAtMs, authReceivedAtMs: nowMs });
    checkClockOffset(offsetMs);
    this.#clockOffsetMs = offsetMs;
    return deviceTsMs - offsetMs;
  }

  /** `traceparent` goes out only to an agent that announced `trace_context`; an older agent gets the frame it knows. */
  deliverCommand(command: SignedCommand, attempt: number, nowMs: number, traceparent?: string): void {
    this.requireReady('COMMAND_DELIVERY');
    const trace = traceparent !== undefined && this.#traceContext ? { traceparent } : {};
    this.sendFrame('COMMAND_DELIVERY', { command, attempt, ...trace }, nowMs);
  }

  /** True once AUTH_ACK announced `telemetry_ack` to this session's agent. */
  get telemetryAckAgreed(): boolean {
    return this.#telemetryAck && this.state === 'ready';
  }

  /**
   * TELEMETRY_ACK: every telemetry frame of this session with seq <= throughSeq is appended to the
   * bus. The driver calls it only after the appends succeeded; false (nothing sent) when acks were
   * not agreed, the session is not ready, or throughSeq acknowledges nothing new.
   */
  sendTelemetryAck(throughSeq: number, nowMs: number): boolean {
    if (!this.telemetryAckAgreed || throughSeq <= this.#telemetryAckedSeq) return false;
    this.sendFrame('TELEMETRY_ACK', { through_seq: throughSeq }, nowMs);
    this.#telemetryAckedSeq = throughSeq;
    return true;
  }

  sendAlert(body: MessageBody<'ALERT'>, nowMs: number): void {
    this.requireReady('ALERT');
    this.sendFrame('ALERT', body, nowMs);
  }

  /** `notice_state` goes out only to an agent that announced `ota_notice_state`; an older agent gets the notice it knows. */
  sendOtaNotice(body: MessageBody<'OTA_NOTICE'>, nowMs: number): void {
    this.requireReady('OTA_NOTICE');
    const { notice_state: _state, ...known } = body;
    this.sendFrame('OTA_NOTICE', this.#otaNoticeState ? body : known, nowMs);
  }

  sendPolicyBundle(body: MessageBody<'POLICY_BUNDLE'>, nowMs: number): void {
    this.requireReady('POLICY_BUNDLE');
    this.sendFrame('POLICY_BUNDLE', body, nowMs);
  }

  protected onRefusedBeforeReady(error: SdcError, nowMs: number): void {
    this.sendFrame('AUTH_ERROR', { code: error.code, message: error.message.slice(0, 512) }, nowMs);
  }
}
