import { Type } from '@sinclair/typebox';
import { ErrorCodeField, FrameId, Nonce, ShortText } from './fields.js';
import { SignedCommandSchema } from './command.js';

/**
 * The OTA messages of a device session (docs/ota.md, "Rollouts"): OTA_NOTICE tells a device to
 * run one execution (with the director's signed document and the control plane's signed kernel
 * commands), and OTA_REPORT carries the device's progress back. A report is an envelope signed
 * with the device key like every agent frame, so its version report (with the health check's
 * nonce) is the device's signed word, verified again by the control plane.
 */
const strict = { additionalProperties: false } as const;
const OtaId = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' });

/** The director's envelope (core/ota/director.ts); checked fully by the agent (verifyDirectorEnvelope), only bounded here. */
export const DirectorEnvelopeSchema = Type.Object({
  signed: Type.Object({}, { additionalProperties: true, description: 'The director document (core/ota/director.ts), RFC 8785 canonical JSON signed' }),
  signature: Type.Object({ key_id: ShortText(128), sig: Type.String({ pattern: '^[A-Za-z0-9_-]{86}$' }) }, strict),
}, strict);

/** The signed notice state's envelope (core/ota/notice-state.ts); checked fully by the agent (verifyNoticeState), only bounded here. */
export const NoticeStateEnvelopeSchema = Type.Object({
  signed: Type.Object({}, { additionalProperties: true, description: 'The notice state (core/ota/notice-state.ts), RFC 8785 canonical JSON signed' }),
  signature: Type.Object({ key_id: ShortText(128), sig: Type.String({ pattern: '^[A-Za-z0-9_-]{86}$' }) }, strict),
}, strict);

export const OtaNoticeSchema = Type.Object({
  execution_id: OtaId,
  rollout_id: OtaId,
  wave: Type.Integer({ minimum: 0, maximum: 63 }),
  director: DirectorEnvelopeSchema,
  /**
   * The kernel's authorisations for this execution, signed by the control plane's command key:
   * STAGE names the approved version, SHA-256 and size; COMMIT the version; ROLLBACK nothing.
   */
  kernel_commands: Type.Object({ stage: SignedCommandSchema, commit: SignedCommandSchema, rollback: SignedCommandSchema }, strict),
  /** Set once the control plane waits for the health check: the version report must carry it. */
  health_nonce: Type.Optional(Nonce),
  /**
   * Where to download the artifact: a presigned GET URL of the blob store (bound to GET and this
   * object, living 60 s to 1 h), minted afresh each time the notice is sent. Not trusted for
   * anything but location: the bytes are checked against the director's and the image
   * repository's length and hashes. When it has expired the device reports
   * `artifact_url_expired` and gets a notice with a new one. Absent: the TUF targets route.
   */
  artifact_url: Type.Optional(Type.String({ minLength: 8, maxLength: 4096, pattern: '^https?://[^\\s]+$' })),
  /** The operator canceled the execution: stop before the next step, or roll back after commit. */
  cancel: Type.Boolean(),
  /**
   * The control plane's signed word on `cancel` and `health_nonce` (core/ota/notice-state.ts),
   * with the director's key: an agent refuses a notice that says cancel or carries a nonce
   * without it (docs/ota.md, "Signed notice state"). Sent only to an agent that announced
   * `ota_notice_state` in AUTH (an older agent's schema refuses the member).
   */
  notice_state: Type.Optional(NoticeStateEnvelopeSchema),
}, strict);

/** What a device reports; the control plane maps each to an execution event (core/ota/execution-machine.ts). */
export const otaReportEvents = [
  'accept', 'refuse', 'precheck_pass', 'download_complete', 'download_fail', 'verify_fail', 'stage', 'stage_fail',
  'commit', 'commit_fail', 'reboot', 'reboot_fail', 'rebooted', 'health_check_start', 'version_report',
  'watchdog_rollback', 'rollback_complete', 'rollback_fail', 'canceled',
  // Not a step: the device refused a notice for this execution whose cancel or nonce is not the control plane's signed word (error: the code).
  'notice_refused',
  // Not a step: the notice's artifact URL was refused (expired); the control plane sends the notice again with a fresh one.
  'artifact_url_expired',
] as const;
export type OtaReportEvent = (typeof otaReportEvents)[number];

export const OtaReportSchema = Type.Object({
  execution_id: OtaId,
  event: Type.Union(otaReportEvents.map((event) => Type.Literal(event))),
  /** version_report only: the health check's nonce, the release counter the device runs, and the health verdict. */
  nonce: Type.Optional(Nonce),
  release_counter: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
  healthy: Type.Optional(Type.Boolean()),
  error: Type.Optional(Type.Object({ code: ErrorCodeField, message: ShortText(512) }, strict)),
  /** A frame id of the report, so a re-sent report is recognisably the same one. */
  report_id: FrameId,
}, strict);
