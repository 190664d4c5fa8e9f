/**
 * The model tier's parameters: the protocol's timers and bounds (copied from the real code, each
 * with the place it comes from; sim/model/params.test.ts pins the ones the real code exports) and
 * the service costs. Latencies on the wire are not here: they are the scenario's link delays, as
 * in the full tier.
 *
 * Service costs are virtual milliseconds a step takes. In the full tier every step between two
 * network hops (control-plane SQL and audit, gateway routing, the agent's journal and the mock
 * kernel) completes at the virtual instant it starts: it spends wall time, never virtual time
 * (sim/run.ts waits one setImmediate per timer, so its promise work settles at that instant).
 * Measured: with 1-20 ms links every smoke round trip is 2-40 ms, two link delays and nothing
 * else (docs/simulation.md, "Model tier"). So the defaults are 0; set them to model a deployment
 * whose services take time (e.g. from `sdc bench roundtrip`).
 */
export interface ModelParams {
  // --- agent (agent/agent-core.ts defaults, sim/sim-agent.ts) -------------------------------
  /** First connect after boot: uniform in [0, this) (SimAgent.boot). */
  readonly connectDelayMsMax: number;
  /** Reconnect backoff: uniform in [base, min(max, base x 2^failures)] (SimAgent #onEvent). */
  readonly reconnectBaseMs: number;
  readonly reconnectMaxMs: number;
  /** Every this many failed connections the agent tries the next gateway (SimAgent). */
  readonly failoverEveryFailures: number;
  /** No AUTH_ACK this long after connecting: the agent drops the connection (AgentCoreOptions.authTimeoutMs). */
  readonly agentAuthTimeoutMs: number;
  /** Heartbeat intervals without a frame from the gateway before the agent drops it (silenceIntervalsMax). */
  readonly agentSilenceIntervalsMax: number;
  /** Telemetry samples kept while disconnected, oldest dropped first (telemetryBufferMax). */
  readonly telemetryBufferMax: number;
  /** A batch's first sample waits at most this long for it to fill, when the scenario sets no telemetryBatchDelayMs (agentCoreLimits.telemetryBatchDelayMs). */
  readonly telemetryBatchDelayMs: number;
  // --- gateway (server/gateway/gateway-core.ts resolveGatewayOptions) ------------------------
  /** No AUTH this long after the challenge: the gateway closes (authTimeoutMs). */
  readonly gatewayAuthTimeoutMs: number;
  /** Silence bound of a ready session, in heartbeat intervals (GatewayConnection.pollTimeoutMs: 1.5). */
  readonly gatewaySilenceIntervals: number;
  readonly ackTimeoutMs: number;
  readonly deliveryAttemptsMax: number;
  /** Attempts to report one ACK/RESULT to the events stream before it is left to the sweep. */
  readonly reportAttemptsMax: number;
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
  readonly pendingDeliveriesPerDeviceMax: number;
  /** Refused frames a ready session tolerates before it is closed (refusalsMax). */
  readonly refusalsMax: number;
  /** A message other than HEARTBEAT refreshes the presence key when this fraction of an interval passed (gateway-core onMessage: 1/4). */
  readonly presenceRefreshDivisor: number;
  /** A gateway whose start failed (stores down) is started again this much later (sim/run.ts). */
  readonly gatewayStartRetryMs: number;
  /** A crashed gateway's held deliveries are handed back by a peer after its liveness key expires (3 refresh periods) plus up to one check period (server/gateway/peer-watch.ts). */
  readonly peerReclaimIntervals: number;
  // --- control plane (server/control-plane/commands.ts, control-plane.ts, sim/run.ts options) --
  readonly expirySweepIntervalMs: number;
  readonly redeliverySweepIntervalMs: number;
  /** An unfinished command is re-dispatched at most once per this interval (redispatchIntervalMsDefault). */
  readonly redispatchIntervalMs: number;
  /** The longest wait between two re-sends of one command; the wait grows with the time since its last state change (redispatchIntervalMaxMsDefault). */
  readonly redispatchIntervalMaxMs: number;
  readonly redispatchPerSweepMax: number;
  readonly expirePerSweepMax: number;
  readonly redeliverPerPresenceMax: number;
  /**
   * An event the control plane failed to handle (SQL down) is retried in place first
   * (StreamConsumer retryLimits, imported), then stays pending and is claimed again once idle
   * claimIdleMs (30 s), at the consumer's next claim, every 30 polls of at most 1 s: retried
   * uniformly in [min, max] later, at most consumerDeliveriesMax claims (StreamConsumer).
   */
  readonly eventRetryMsMin: number;
  readonly eventRetryMsMax: number;
  readonly consumerDeliveriesMax: number;
  // --- service costs, virtual ms (0 in the full tier, see above) ---------------------------
  /** From the gateway reading a frame to its report being applied by the control plane. */
  readonly reportServiceMs: number;
  /** From the control plane appending a deliver entry to the gateway writing COMMAND_DELIVERY. */
  readonly dispatchServiceMs: number;
  /** A command's turn on the agent's execution lane (journal writes and the kernel call), before any kernel latency fault. */
  readonly executionServiceMs: number;
  /** Telemetry batches: from the gateway reading a TELEMETRY_BATCH frame to its samples being stored (a frame's cost, whatever its samples). */
  readonly telemetryFrameServiceMs: number;
}

export const defaultModelParams: ModelParams = Object.freeze({
  connectDelayMsMax: 1_000,
  reconnectBaseMs: 500,
  reconnectMaxMs: 8_000,
  failoverEveryFailures: 2,
  agentAuthTimeoutMs: 30_000,
  agentSilenceIntervalsMax: 3,
  telemetryBufferMax: 64,
  telemetryBatchDelayMs: 30_000,
  gatewayAuthTimeoutMs: 10_000,
  gatewaySilenceIntervals: 1.5,
  ackTimeoutMs: 5_000,
  deliveryAttemptsMax: 5,
  reportAttemptsMax: 6,
  backoff: Object.freeze({ baseMs: 1_000, maxMs: 30_000 }),
  pendingDeliveriesPerDeviceMax: 64,
  refusalsMax: 8,
  presenceRefreshDivisor: 4,
  gatewayStartRetryMs: 1_000,
  peerReclaimIntervals: 3,
  expirySweepIntervalMs: 5_000,
  redeliverySweepIntervalMs: 5_000,
  redispatchIntervalMs: 30_000,
  redispatchIntervalMaxMs: 120_000,
  redispatchPerSweepMax: 200,
  expirePerSweepMax: 500,
  redeliverPerPresenceMax: 1_000,
  eventRetryMsMin: 30_000,
  eventRetryMsMax: 60_000,
  consumerDeliveriesMax: 5,
  reportServiceMs: 0,
  dispatchServiceMs: 0,
  executionServiceMs: 0,
  telemetryFrameServiceMs: 0,
});

/**
 * How the mock kernel answers each simulator opcode on a fresh device (kernel/mock/mock-kernel.ts
 * with its defaults, through IoctlKernelBridge): EXEC_LOCK_SCREEN has no session manager to lock
 * (NOT_SUPPORTED), EXEC_ROLLBACK_UPDATE has no previous version to return to (BAD_STATE, which the
 * bridge reports as KERNEL_REFUSED). Anything else succeeds. The validation run compares these
 * codes with the full tier's (outcomesByCode).
 */
export const opcodeFailureCodes: Readonly<Record<string, string>> = Object.freeze({
  EXEC_LOCK_SCREEN: 'KERNEL_NOT_SUPPORTED',
  EXEC_ROLLBACK_UPDATE: 'KERNEL_REFUSED',
});

/** A kernel status fault (scenario faults.kernelErrors) fails the command with this code (IoctlKernelBridge). */
export const kernelFaultCode = 'KERNEL_REFUSED';
/** A delivery the agent refuses because its deadline passed (verifyCommand, on the gateway's clock). */
export const expiredCode = 'COMMAND_EXPIRED';
/** A command whose deadline passed while it waited for the kernel: refused just before the call (agent-core #refusalAtStart). */
export const deadlinePassedCode = 'AGENT_COMMAND_EXPIRED';
/** A command a crash left executing: reported failed, never run again (agent-core #recover). */
export const interruptedCode = 'AGENT_INTERRUPTED';
