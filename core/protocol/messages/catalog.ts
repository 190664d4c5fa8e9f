import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Base64Url, DeviceId, DurationMs, EpochMs, ErrorCodeField, FrameId, Kid, Nonce, Seq, SessionId, ShortText, Traceparent, X25519PublicKey } from './fields.js';
import { CommandOutcomeError, CommandResultStatus, SignedCommandSchema } from './command.js';
import { clockOffsetLimits } from '../clock-offset.js';
import { telemetryBatchLimits } from '../limits.js';
import { PolicyBundleReportSchema, SignedPolicyBundleSchema } from '../policy-bundle-schema.js';
import { DevicePostureSchema } from './posture.js';
import { OtaNoticeSchema, OtaReportSchema } from './ota.js';

/**
 * Every agent-gateway message body, one schema each. The envelope (envelope.ts) carries
 * v, type, id, device_id, session_id, seq, ts and the signature; these are the `body`s.
 * The schemas are the single source for validation (compiled once in validate.ts), the
 * TypeScript types (`MessageBody<T>`) and docs/protocol-messages.md (generated).
 */
export type Direction = 'gateway->agent' | 'agent->gateway' | 'both';

interface MessageSpec {
  readonly direction: Direction;
  readonly summary: string;
  readonly body: TSchema;
}

const strict = { additionalProperties: false } as const;
const Percent = Type.Number({ minimum: 0, maximum: 100 });
const Rate = Type.Number({ minimum: 0, maximum: 1e15 });

const TelemetryMetricsSchema = Type.Object({
  cpu_pct: Percent,
  mem_pct: Percent,
  disk_pct: Percent,
  net_rx_bytes_per_sec: Rate,
  net_tx_bytes_per_sec: Rate,
  process_count: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
}, strict);
const TelemetryPrevHash = Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' }));

export const messageCatalog = {
  AUTH_CHALLENGE: {
    direction: 'gateway->agent',
    summary: 'First frame on a new connection: a fresh nonce the agent must sign, and the session id the rest of the session uses.',
    body: Type.Object({
      nonce: Nonce,
      gateway_id: ShortText(64),
      server_time_ms: EpochMs,
    }, strict),
  },
  AUTH: {
    direction: 'agent->gateway',
    summary: "The agent's answer: its envelope signature, made with the device key, covers the challenge nonce.",
    body: Type.Object({
      nonce: Nonce,
      agent_version: ShortText(64),
      /** Highest command device_seq the agent has executed, so the gateway can skip what is done. */
      last_command_seq: Seq,
      /** The agent's ephemeral X25519 key for the session MAC (session-mac.ts); absent: HEARTBEAT and TELEMETRY stay Ed25519-signed. */
      x25519_pub: Type.Optional(X25519PublicKey),
      /** What the agent reports for compliance (posture.ts): once per connection, not on the heartbeat's hot path. */
      posture: Type.Optional(DevicePostureSchema),
      /** The agent takes `traceparent` in COMMAND_DELIVERY; the gateway adds it only when this is true, so older agents get what they know. */
      trace_context: Type.Optional(Type.Boolean()),
      /** The agent can send TELEMETRY_BATCH; the gateway announces `telemetry_samples_max` in AUTH_ACK only when this is true, so an older agent's schema never meets the member. */
      telemetry_batch: Type.Optional(Type.Boolean()),
      /** The agent takes TELEMETRY_ACK (decision 0004, "Acknowledgements"); the gateway announces `telemetry_ack` in AUTH_ACK only when this is true, and sends acks only then. */
      telemetry_ack: Type.Optional(Type.Boolean()),
      /** The agent takes OTA_NOTICE's signed `notice_state` (core/ota/notice-state.ts); the gateway passes the member on only when this is true, so an older agent's schema never meets it. */
      ota_notice_state: Type.Optional(Type.Boolean()),
    }, strict),
  },
  AUTH_ACK: {
    direction: 'gateway->agent',
    summary: "Authentication succeeded: the session token, heartbeat interval, the seq each side starts from, and the device clock's measured offset, which the agent applies from now on.",
    body: Type.Object({
      session_id: SessionId,
      session_token: ShortText(2048),
      heartbeat_interval_ms: DurationMs(3_600_000),
      seq_start: Seq,
      server_time_ms: EpochMs,
      /** Device clock minus gateway clock, measured at AUTH; the agent stamps frames and judges deadlines with its clock minus this. */
      clock_offset_ms: Type.Integer({ minimum: -clockOffsetLimits.offsetMsMax, maximum: clockOffsetLimits.offsetMsMax }),
      /** The gateway's ephemeral X25519 key, only in answer to one in AUTH: from now on HEARTBEAT and TELEMETRY carry the session MAC. */
      x25519_pub: Type.Optional(X25519PublicKey),
      /**
       * The most samples per TELEMETRY_BATCH this gateway accepts; only in answer to `telemetry_batch`
       * in AUTH and only with the session MAC agreed. Absent: the agent sends one TELEMETRY per sample.
       */
      telemetry_samples_max: Type.Optional(Type.Integer({ minimum: 1, maximum: telemetryBatchLimits.samplesPerFrameMax })),
      /** Only in answer to `telemetry_ack` in AUTH: this gateway will send TELEMETRY_ACK once the session's telemetry is appended to the bus. Absent: no acks (an older gateway, or one that does not offer them). */
      telemetry_ack: Type.Optional(Type.Literal(true)),
    }, strict),
  },
  AUTH_ERROR: {
    direction: 'gateway->agent',
    summary: 'Authentication refused; the gateway closes the connection after sending it.',
    body: Type.Object({ code: ErrorCodeField, message: ShortText(512) }, strict),
  },
  HEARTBEAT: {
    direction: 'both',
    summary: 'Liveness. The agent sends one every heartbeat interval; the gateway refreshes presence and echoes it.',
    body: Type.Object({
      uptime_ms: DurationMs(Number.MAX_SAFE_INTEGER),
      queue_depth: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
    }, strict),
  },
  TELEMETRY: {
    direction: 'agent->gateway',
    summary: 'A host metrics sample, authenticated by the session MAC when one was agreed at AUTH. `prev_hash` chains the samples of a session, so a dropped one is detected.',
    body: Type.Object({
      sampled_at: EpochMs,
      metrics: TelemetryMetricsSchema,
      prev_hash: TelemetryPrevHash,
    }, strict),
  },
  TELEMETRY_BATCH: {
    direction: 'agent->gateway',
    summary: "1 to `telemetry_samples_max` host metrics samples in one frame (a fast sensor, or samples buffered while offline), each with its own `sampled_at`, in non-decreasing order. Only under the session MAC, only to a gateway that announced `telemetry_samples_max` in AUTH_ACK, and at most that many samples. The MAC, the seq window and `prev_hash` apply to the frame: the chain runs through TELEMETRY and TELEMETRY_BATCH frames alike.",
    body: Type.Object({
      samples: Type.Array(Type.Object({ sampled_at: EpochMs, metrics: TelemetryMetricsSchema }, strict), { minItems: 1, maxItems: telemetryBatchLimits.samplesPerFrameMax }),
      prev_hash: TelemetryPrevHash,
    }, strict),
  },
  TELEMETRY_ACK: {
    direction: 'gateway->agent',
    summary: "Cumulative: every TELEMETRY and TELEMETRY_BATCH frame of this session whose envelope seq is at most `through_seq` has been appended to the bus (durably accepted), so the agent may forget its samples. Sent only to an agent that offered `telemetry_ack` in AUTH and was answered `telemetry_ack` in AUTH_ACK, coalesced (at most one per session per ack interval, plus one with each HEARTBEAT's turn), each acknowledging more than the one before; under the session MAC when one was agreed, else signed by the gateway key.",
    body: Type.Object({
      through_seq: Seq,
    }, strict),
  },
  COMMAND_DELIVERY: {
    direction: 'gateway->agent',
    summary: "A command signed by the control plane, with the delivery attempt number and, to an agent that announced `trace_context` in AUTH, the operation's W3C `traceparent`.",
    body: Type.Object({
      command: SignedCommandSchema, attempt: Type.Integer({ minimum: 1, maximum: 100 }),
      /** The trace the command was created under (the API request's); outside the signed command, which the kernel verifies byte for byte. */
      traceparent: Type.Optional(Traceparent),
    }, strict),
  },
  COMMAND_ACK: {
    direction: 'agent->gateway',
    summary: 'The agent took the command (`received`, after persisting it) or started it (`executing`).',
    body: Type.Object({
      command_id: FrameId,
      device_seq: Seq,
      stage: Type.Union([Type.Literal('received'), Type.Literal('executing')]),
      /** The delivery's trace, passed back by the agent; present when the delivery carried one. */
      traceparent: Type.Optional(Traceparent),
    }, strict),
  },
  COMMAND_RESULT: {
    direction: 'agent->gateway',
    summary: "The command's outcome, signed by the device; stored verbatim in the audit log.",
    body: Type.Object({
      command_id: FrameId,
      device_seq: Seq,
      status: CommandResultStatus,
      output: Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), { maxProperties: 64 }),
      error: Type.Optional(CommandOutcomeError),
      finished_at: EpochMs,
      /** The delivery's trace, passed back by the agent; signed with the result, so the audit names it too. */
      traceparent: Type.Optional(Traceparent),
    }, strict),
  },
  POLICY_BUNDLE: {
    direction: 'gateway->agent',
    summary: "The device's policy bundle, signed by the control plane (core/protocol/policy-bundle.ts): sent after AUTH_ACK and whenever the policy revision changes. The agent checks it, keeps it on disk and enforces it before every command; it answers with POLICY_BUNDLE_REPORT.",
    body: Type.Object({ signed: SignedPolicyBundleSchema }, strict),
  },
  POLICY_BUNDLE_REPORT: {
    direction: 'agent->gateway',
    summary: "The agent's answer to a POLICY_BUNDLE: accepted, or refused with the code (bad signature, lower version, expired, another device, malformed). The gateway passes it on as an alert, which the control plane audits.",
    body: PolicyBundleReportSchema,
  },
  OTA_NOTICE: {
    direction: 'gateway->agent',
    summary: "An update for this device (docs/ota.md): the execution, the director's signed document naming one target, and the control plane's signed kernel commands; sent again after AUTH while the execution runs, with the health check's nonce once it is issued, or with cancel set; both only with the control plane's signed `notice_state`, which the agent requires for them.",
    body: OtaNoticeSchema,
  },
  OTA_REPORT: {
    direction: 'agent->gateway',
    summary: "The device's progress on one execution, signed with the device key; `version_report` (after the reboot, with the health check's nonce) is the only way an execution succeeds. The gateway passes it on to the control plane verbatim.",
    body: OtaReportSchema,
  },
  ALERT: {
    direction: 'both',
    summary: 'Something an operator should see: a high risk score, a kernel fault, a tamper signal.',
    body: Type.Object({
      severity: Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('critical')]),
      kind: Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$' }),
      message: ShortText(1024),
      risk_score: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    }, strict),
  },
  ERROR: {
    direction: 'both',
    summary: 'A refused frame: the code from docs/errors.md and the id of the frame it refers to, if any.',
    body: Type.Object({
      code: ErrorCodeField,
      message: ShortText(512),
      ref_id: Type.Optional(FrameId),
    }, strict),
  },
} as const satisfies Record<string, MessageSpec>;

export type MessageType = keyof typeof messageCatalog;
export const messageTypes = Object.keys(messageCatalog) as MessageType[];
export type MessageBody<T extends MessageType> = Static<(typeof messageCatalog)[T]['body']>;

export function isMessageType(value: unknown): value is MessageType {
  return typeof value === 'string' && Object.hasOwn(messageCatalog, value);
}

// Re-exported so callers name fields from one place.
export { Base64Url, DeviceId, Kid, FrameId, SessionId };
