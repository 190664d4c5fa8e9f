import { telemetryBatchLimits } from '../../core/protocol/limits.js';
/**
 * What the gateway uses for each GatewayCoreOptions value the caller leaves out
 * (resolveGatewayOptions in gateway-core.ts), and the bounds the options are held to.
 */
export const gatewayDefaults = Object.freeze({
  /** Session heartbeats; also the default liveness refresh and peer-check period. */
  heartbeatIntervalMs: 10_000,
  /** Bounds how long a gateway that missed a revocation notice (pub/sub is at most once) keeps the session. */
  sessionRecheckIntervalMs: 60_000,
  /** From connection to AUTH: a device that has not authenticated by then holds a slot for nothing. */
  authTimeoutMs: 10_000,
  /** From COMMAND_DELIVERY to the device's ACK before the delivery is retried. */
  ackTimeoutMs: 5_000,
  /** Deliveries of one command before it is dead-lettered. */
  deliveryAttemptsMax: 5,
  /** Attempts to report one ACK/RESULT: with the default backoff about 15-31 s, longer than a typical store failover. */
  reportAttemptsMax: 6,
  /** Retries of deliveries and reports: 1 s doubling up to 30 s, with jitter. */
  backoff: Object.freeze({ baseMs: 1_000, maxMs: 30_000 }),
  /** Open connections (authenticated or not) per gateway. */
  connectionsMax: 10_000,
  /** Deliveries held for one device: a device that does not ACK must not take the gateway's whole budget. */
  pendingDeliveriesPerDeviceMax: 64,
  /** Deliveries held per gateway; more wait in the stream (back-pressure). */
  pendingDeliveriesMax: 10_000,
  /** Longest wait of one blocking stream read; bounds how long stop() leaves a read open. */
  commandReadBlockMs: 1_000,
  /** Refused frames a session tolerates before it is closed. */
  refusalsMax: 8,
  /** One append per telemetry sample, as the simulator's traces expect; `sdc serve` batches more. */
  telemetryBatchEntriesMax: 1,
  /** One telemetry frame per bus entry (decision 0023), as the simulator's traces expect; `sdc serve` puts more in one. */
  telemetryFramesPerEntryMax: 1,
  /**
   * Samples per TELEMETRY_BATCH announced to an agent that asks (decision 0004, "Batches"): the
   * protocol's bound. Only agents configured to batch ask, so a fleet that does not sees no change.
   */
  telemetrySamplesPerFrameMax: telemetryBatchLimits.samplesPerFrameMax,
  /** TELEMETRY_ACK to agents that offer it (only those get the member and the frames). */
  telemetryAcks: true,
  /**
   * At most one TELEMETRY_ACK per session per 5 s after appends, plus one at each HEARTBEAT turn
   * with anything new: at the CLI's 5 s telemetry interval and 10 s heartbeat about one ack per
   * heartbeat, not one per sample, so acks do not double the frames a session sends the agent.
   */
  telemetryAckIntervalMs: 5_000,
  /** Each presence refresh sent at once, as the simulator's traces expect; `sdc serve` and `sdc gateway` batch (PresenceRefreshWindow). */
  presenceRefreshWindowMs: 0,
});

export const gatewayLimits = Object.freeze({
  /** deliveryAttemptsMax and reportAttemptsMax at most: COMMAND_DELIVERY's `attempt` is at most 100 on the wire. */
  attemptsMax: 100,
  /** Serials a revocation notice may name (a device has at most a few unexpired certificates). */
  noticeSerialsMax: 64,
});

/**
 * Device public keys a gateway keeps as node:crypto KeyObjects (runtime/ed25519-node.ts). A device's
 * key is verified at AUTH and then only on its signed frames (COMMAND_ACK, COMMAND_RESULT, ALERT):
 * its heartbeats and telemetry carry the session MAC. So a cache as large as the fleet (the
 * provider's default, 4,096) kept about 1.6 KiB per session for keys that are rarely used again,
 * most of it OpenSSL's, outside V8's heap; rebuilding one costs 10-25 µs against a verify's 80 µs.
 * 256 still covers an ACK and its RESULT from a few hundred devices at once, and the command key.
 */
export const gatewayDeviceKeyCacheEntriesMax = 256;
