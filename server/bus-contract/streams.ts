/**
 * Names of the streams and keys that connect the control plane and the gateways. One place, so
 * that both services (and the simulator) agree. Everything lives under the `sdc:` prefix, which
 * the stores may extend with a per-deployment namespace.
 *
 * Flow:
 * - control plane -> gateway: `gatewayCommandStream(gw)`, consumer group `gatewayGroup`. The
 *   control plane appends a command to the stream of the gateway that holds the device's session
 *   (from the presence key); a gateway acks the entry only when the command reached a terminal
 *   state or was handed back, so a gateway that dies leaves it pending for another to claim.
 * - gateway -> control plane: `eventsStream` (presence, command progress, results, alerts),
 *   consumer group `controlPlaneGroup`. This is the authenticated path for presence: only
 *   services holding store credentials can write it; there is no unauthenticated webhook.
 * - gateway -> telemetry writer: `telemetryStream`, consumer group `telemetryGroup`.
 */
export const streamNames = {
  events: 'sdc:events',
  telemetry: 'sdc:telemetry',
} as const;

export const groups = {
  gateway: 'gateways',
  controlPlane: 'control-plane',
  telemetry: 'telemetry-writer',
} as const;

export const gatewayCommandStream = (gatewayId: string): string => `sdc:gw:${gatewayId}:commands`;

/** Key/value keys. Presence keys expire after 1.5 heartbeat intervals unless refreshed. */
export const kvKeys = {
  presence: (deviceId: string): string => `sdc:presence:${deviceId}`,
  gatewayAlive: (gatewayId: string): string => `sdc:gw:alive:${gatewayId}`,
  /** Set of gateway ids ever seen, so a survivor can find a dead gateway's stream. Stored as JSON array. */
  gatewayIds: 'sdc:gw:ids',
  revoked: (serialHex: string): string => `sdc:revoked:${serialHex}`,
  /**
   * Present while the device is enrolled (value: its current certificate serial). The control
   * plane sets it at enrollment and renewal, deletes it on revocation, and re-publishes every
   * enrolled device when it starts; gateways refuse a device without it (GATEWAY_DEVICE_UNKNOWN).
   */
  device: (deviceId: string): string => `sdc:device:${deviceId}`,
  /**
   * Present while the certificate with this serial (normalized hex) is one the control plane
   * issued to a device through enrollment or renewal and has not revoked; value: the device id;
   * TTL: until the certificate's notAfter. A gateway admits a client certificate only if this key
   * names the certificate's device, so one our CA signed outside enrollment (`sdc pki issue`), or
   * one superseded by a re-enrollment, is refused (GATEWAY_CERT_UNKNOWN), and a missing key
   * refuses (fail closed) until the control plane re-publishes it from SQL.
   */
  deviceCertificate: (serialHex: string): string => `sdc:device-cert:${serialHex}`,
  /**
   * Written by a control plane after it re-published every enrolled device, current certificate
   * and revoked serial from SQL; when it is missing the store lost its data (Redis restarted
   * without persistence, FLUSHALL), and the control plane re-publishes at once.
   */
  trustPublished: 'sdc:cp:trust-published',
  /**
   * The control plane's high-water mark of entries of `stream` trimmed before `group` read them,
   * already reported (server/control-plane/bus-trim-watch.ts). Beside the stream on purpose: lost
   * with it when the store loses its data, as the stream's own counters are.
   */
  busTrimmed: (stream: string, group: string): string => `sdc:cp:bus-trimmed:${stream}:${group}`,
  /**
   * The highest CRL any gateway of the deployment has taken, as the signed CRL itself (PEM),
   * raised by compare-and-set, never lowered; one record for the deployment: `<key>:head` (number,
   * SHA-256, part count; no TTL) and `<key>:part:<sha256>:<index>` (the PEM in parts of 512 KiB, a
   * week's TTL), so it holds a CRL of 100,000 entries (server/deployment/crl-record.ts); the key
   * itself is the single-value record of builds before 2026-12-06, read only while no head exists.
   * A gateway takes it once it verifies against our intermediate when it is the highest it has,
   * and refuses a CRL file numbered below it (TRUST_CRL_ROLLED_BACK); one that does not verify is
   * ignored and written over (TRUST_CRL_RECORD_INVALID). server/deployment/crl-file-watch.ts, decision 0021.
   */
  gatewayCrl: 'sdc:gw:crl',
} as const;

/**
 * Pub/sub channel on which the control plane announces revoked certificates (RevocationNotice as
 * JSON); every gateway subscribes and closes the sessions that use them at once.
 */
export const revocationChannel = 'sdc:revocations';

export interface RevocationNotice {
  readonly device_id: string;
  /** Normalized serials (lower-case hex, no leading zeros) revoked just now. */
  readonly serials: readonly string[];
}

/** Pub/sub channel for live operator updates (command states, presence, alerts). */
export const liveChannel = 'sdc:live';

/**
 * Pub/sub channel on which a control plane announces that it changed a user's standing (tokens
 * revoked, role changed, account removed), as UserChangeNotice JSON. Every control plane forgets
 * the user's cached token subject and re-checks that user's live streams at once, instead of
 * within its subject cache's 5 s (server/control-plane/live.ts).
 */
export const userChangeChannel = 'sdc:cp:user-changed';

export interface UserChangeNotice {
  /** The user's name; what changed is read from the users table, never trusted from the notice. */
  readonly user: string;
}

/** Bounds on stream lengths: the bus trims beyond these (see AppendOptions.maxLen). */
export const streamMaxLen = {
  events: 1_000_000,
  telemetry: 1_000_000,
  gatewayCommands: 100_000,
} as const;
