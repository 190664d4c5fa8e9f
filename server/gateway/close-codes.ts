/**
 * WebSocket close codes the gateway uses (RFC 6455 7.4; 4000-4999 are ours). The close reason
 * carries the error code from docs/errors.md when there is one.
 */
export const closeCodes = {
  normal: 1000,
  goingAway: 1001,
  /** A refusal: bad certificate, failed AUTH, too many refused frames, rate limit. */
  policyViolation: 1008,
  tooLarge: 1009,
  /** Silent past 1.5 heartbeat intervals, or no AUTH before the authentication timeout. */
  timeout: 4000,
  /** A newer session of the same device took over. */
  replaced: 4001,
  overloaded: 4002,
  /** The device's certificate was revoked (or superseded) while the session was open; reason TRUST_CERT_REVOKED. */
  revoked: 4003,
  /** The device's certificate reached its notAfter while the session was open; reason TRUST_CERT_EXPIRED. */
  certificateExpired: 4004,
} as const;
