import type { ServiceMetrics } from '../observability/metrics.js';
import type { Logger } from 'pino';
import { encodeBusEntry, type BusEntryData, type BusEntryKind } from '../bus-contract/entries.js';
import { streamMaxLen, streamNames } from '../bus-contract/streams.js';
import { hexFromBytes } from '../../core/crypto/bytes.js';
import type { ProtocolLimits } from '../../core/protocol/limits.js';
import type { Clock, Ed25519Provider, RandomSource, Scheduler, SessionKeyCrypto, TimerHandle } from '../../core/ports/ports.js';
import type { StreamBus } from '../stores/bus/bus-port.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import type { BackoffOptions } from './backoff.js';
import type { EnrollmentCheck } from './enrollment-check.js';

/** The gateways' frame key (materials.gatewaySigner); `publicKey` is what agents pin. */
export interface GatewaySigner {
  readonly kid: string;
  readonly seed: Uint8Array;
}

export interface GatewayCoreOptions {
  /** 1-64 of [A-Za-z0-9_.-]; names this gateway's command stream and liveness key. */
  gatewayId: string;
  signer: GatewaySigner;
  provider: Ed25519Provider;
  stores: { bus: StreamBus; kv: KeyValueStore };
  clock: Clock;
  random: RandomSource;
  scheduler: Scheduler;
  logger?: Logger;
  /** The process's metrics (/metrics): refusals by code, telemetry forwarded, its stream's backlog, sessions held. */
  metrics?: ServiceMetrics;
  /**
   * X25519, HKDF and HMAC for the session MAC (ADR 0004), agreed with every agent that offers it.
   * Default node:crypto; null turns the session MAC off (every frame Ed25519-signed).
   */
  sessionCrypto?: SessionKeyCrypto | null;
  /** Control-plane command keys by kid; a deliver entry signed by any other key is dead-lettered. */
  commandKeys: ReadonlyMap<string, Uint8Array>;
  /** At admission and at each session re-check. Default: the kvKeys.revoked key (createRevocationCheck). */
  isRevoked?: (serialHex: string) => boolean | Promise<boolean>;
  /**
   * Is this certificate the device's current one (issued through enrollment or renewal, not
   * superseded)? An SdcError refuses (GATEWAY_DEVICE_UNKNOWN, GATEWAY_CERT_UNKNOWN). Default:
   * the kvKeys.deviceCertificate and kvKeys.device keys (createEnrollmentCheck).
   */
  checkEnrollment?: EnrollmentCheck;
  /**
   * How often a live session's certificate is checked again for revocation (at its next frame).
   * Revocation notices close sessions at once, but pub/sub is at most once: this bounds how long
   * a gateway that missed one keeps the session. Default 60 s.
   */
  sessionRecheckIntervalMs?: number;
  heartbeatIntervalMs?: number;
  /**
   * The liveness probe (liveness-probe.ts): a session silent for heartbeatIntervalMs + probeGraceMs
   * is pinged, and closed (reported offline) without an answer within probeTimeoutMs. Defaults a
   * quarter interval each; together at most half an interval.
   */
  probeGraceMs?: number;
  probeTimeoutMs?: number;
  authTimeoutMs?: number;
  ackTimeoutMs?: number;
  deliveryAttemptsMax?: number;
  /** Retries of delivery (after an ACK timeout) and of failed ACK/RESULT reports follow this backoff. */
  backoff?: BackoffOptions;
  /**
   * Attempts to report one device ACK/RESULT to the events stream (the first included) before it
   * is left to the control plane's redelivery sweep. Default 6: with the default backoff the
   * retries span about 15-31 s, longer than a typical store failover.
   */
  reportAttemptsMax?: number;
  connectionsMax?: number;
  pendingDeliveriesPerDeviceMax?: number;
  pendingDeliveriesMax?: number;
  /** Liveness key refresh period; the key lives 3 periods. Default: heartbeatIntervalMs. */
  aliveRefreshIntervalMs?: number;
  /** How often the other gateways' liveness is checked. Default: heartbeatIntervalMs. */
  peerCheckIntervalMs?: number;
  /** Longest wait of one blocking stream read; bounds how long stop() leaves a read open. */
  commandReadBlockMs?: number;
  limits?: Partial<ProtocolLimits>;
  /** Refused frames a session tolerates before it is closed (GatewayConnection's refusalsMax). */
  refusalsMax?: number;
  /**
   * Telemetry entries written per appendBatch (AppendBatcher: the samples of many sessions that
   * arrive in one event-loop turn, one pipeline). Default 1: one append per sample, as the
   * simulator's traces expect; `sdc serve` uses gatewayTelemetryBatchEntries.
   */
  telemetryBatchEntriesMax?: number;
  /**
   * Telemetry frames per bus entry (decision 0023): above 1, the frames of one flush (the sessions'
   * telemetry of one event-loop turn or presence window) go as telemetry_frames entries of up to
   * this many frames (and telemetryFramesLimits' bytes), one pass of the telemetry consumer each.
   * Needs telemetryBatchEntriesMax above 1. Default 1: one `telemetry` entry per frame, as the
   * simulator's traces and control planes older than decision 0023 expect; `sdc serve` uses
   * gatewayTelemetryFramesPerEntry.
   */
  telemetryFramesPerEntryMax?: number;
  /**
   * The most samples per TELEMETRY_BATCH announced in AUTH_ACK to an agent that asks (0 to
   * telemetryBatchLimits.samplesPerFrameMax; 0 announces none). Default gatewayDefaults'.
   */
  telemetrySamplesPerFrameMax?: number;
  /**
   * Announce `telemetry_ack` in AUTH_ACK to an agent that offers it and send TELEMETRY_ACK once its
   * frames are appended to the bus (decision 0004, "Acknowledgements"). Default true: an agent
   * that does not offer acks (the default agent, every older one) sees no change.
   */
  telemetryAcks?: boolean;
  /**
   * The least time between two TELEMETRY_ACKs of one session after an append; an ack that is due
   * sooner waits for the next append past it or for the session's next HEARTBEAT turn. Default gatewayDefaults'.
   */
  telemetryAckIntervalMs?: number;
  /**
   * How long a presence refresh of a HEARTBEAT, a TELEMETRY frame or a pong may wait for the
   * refreshes of other sessions, to go out with them in one pipelined write
   * (presence-refresh-window.ts). Default 0: each at once, as the simulator's traces expect;
   * `sdc serve` and `sdc gateway` use gatewayPresenceRefreshWindowMs.
   */
  presenceRefreshWindowMs?: number;
}

export type ResolvedGatewayOptions = Required<Omit<GatewayCoreOptions, 'logger' | 'checkEnrollment' | 'limits' | 'isRevoked' | 'metrics'>>
  & Pick<GatewayCoreOptions, 'limits' | 'metrics'>
  & { isRevoked: NonNullable<GatewayCoreOptions['isRevoked']>; checkEnrollment: EnrollmentCheck; logger: Logger };

/** What the gateway's parts share: ports, stores, options, and the events writer. */
export interface GatewayContext {
  readonly options: ResolvedGatewayOptions;
  nowMs(): number;
  sleep(delayMs: number): Promise<void>;
  schedule(delayMs: number, run: () => void): TimerHandle;
  /** Appends a typed entry to streamNames.events (bounded by streamMaxLen.events). */
  report<K extends BusEntryKind>(kind: K, data: BusEntryData<K>): Promise<void>;
  /**
   * Appends entries already encoded (encodeBusEntry) to streamNames.events, in order, in one
   * appendBatch (one pipeline); one entry is one append. A failure fails them all, and some may
   * still have been written: the caller retries them all (at least once, in order).
   */
  reportEncoded(entries: ReadonlyArray<Record<string, string>>): Promise<void>;
  traceId(): string;
}

export function createGatewayContext(options: ResolvedGatewayOptions): GatewayContext {
  const { clock, scheduler, stores, random } = options;
  return {
    options,
    nowMs: () => clock.nowMs(),
    sleep: (delayMs) => new Promise((resolve) => { scheduler.schedule(delayMs, resolve); }),
    schedule: (delayMs, run) => scheduler.schedule(Math.max(0, delayMs), run),
    async report(kind, data) {
      await stores.bus.append(streamNames.events, encodeBusEntry(kind, data), { maxLen: streamMaxLen.events });
    },
    async reportEncoded(entries) {
      if (entries.length === 1) await stores.bus.append(streamNames.events, entries[0]!, { maxLen: streamMaxLen.events });
      else if (entries.length > 1) await stores.bus.appendBatch(streamNames.events, entries, { maxLen: streamMaxLen.events });
    },
    traceId: () => hexFromBytes(random.bytes(8)),
  };
}
