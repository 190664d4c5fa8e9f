import { SdcError } from '../errors/index.js';

/**
 * Device clock skew, measured once per session in the AUTH exchange, which carries both clocks:
 * the gateway's in AUTH_CHALLENGE (`ts`, `server_time_ms`), the device's in the AUTH envelope's
 * `ts`. The offset is the device clock minus the gateway clock (positive: the device is ahead).
 * The gateway measures it against the midpoint of sending the challenge and receiving the AUTH,
 * so its error is at most half the round trip, reports it (presence `clock_offset_ms`, an alert
 * above `alertMs`) and hands it to the agent in AUTH_ACK. From then on the agent stamps and checks
 * frames, and judges command deadlines, on the gateway's clock. The servers' clocks are kept by
 * NTP, so the gateway's clock stands for the control plane's.
 */
export const clockOffsetLimits = Object.freeze({
  /**
   * Largest offset a session is opened with (5 min); beyond it AUTH is refused with
   * PROTO_CLOCK_SKEW and a critical alert. The offset itself is corrected, but a device clock
   * this far off is broken rather than drifting, and the device still uses it for what the
   * protocol cannot correct: TLS certificate validity, its logs.
   */
  offsetMsMax: 300_000,
  /**
   * Offsets above this (5 s) raise a `clock_skew` warning alert. Below it is NTP-level drift plus
   * the measurement's error (half a round trip); above it the device's clock needs fixing.
   */
  alertMs: 5_000,
  /**
   * The agent accepts a challenge whose `ts` is up to this far from its own clock (twice the
   * gateway's bound), so that a device the gateway will refuse still answers, and the gateway can
   * measure and report its offset. Beyond it the agent closes the connection (its log says why).
   */
  agentChallengeOffsetMsMax: 600_000,
});

/** Device clock minus gateway clock, from the AUTH frame's ts and the gateway's send/receive times. */
export function measureClockOffsetMs(options: { deviceTsMs: number; challengeSentAtMs: number; authReceivedAtMs: number }): number {
  const midpointMs = Math.floor((options.challengeSentAtMs + options.authReceivedAtMs) / 2);
  return options.deviceTsMs - midpointMs;
}

/** Throws PROTO_CLOCK_SKEW (details: clockOffsetMs) when the offset is beyond `offsetMsMax`. */
export function checkClockOffset(offsetMs: number, offsetMsMax: number = clockOffsetLimits.offsetMsMax): void {
  if (Math.abs(offsetMs) <= offsetMsMax) return;
  throw new SdcError('PROTO_CLOCK_SKEW', `device clock is ${offsetMs} ms off the gateway's; at most ${offsetMsMax} ms is accepted`, { clockOffsetMs: offsetMs });
}
