import { Type, type Static } from '@sinclair/typebox';
import { DeviceId, DurationMs, EpochMs, FrameId, Kid, Seq, Signature, ShortText, ErrorCodeField } from './fields.js';
import { OpcodeSchema } from './opcodes.js';

/** Approver or requester name: the user-name alphabet of the API. */
const UserName = Type.String({ pattern: '^[A-Za-z0-9_.@-]{1,128}$' });

/** One approver's signed approval, as carried in the command (the statement it signs is rebuilt from the command). */
export const EmbeddedApprovalSchema = Type.Object({
  approver: UserName,
  kid: Kid,
  decision: Type.Literal('approve'),
  expires_at: EpochMs,
  sig: Type.String({ pattern: '^[A-Za-z0-9_-]{86}$', description: '64-byte Ed25519 signature over the approval statement, base64url' }),
}, { additionalProperties: false });

/**
 * The approvals that released a command needing them (docs/policy.md "Approvals"): who asked,
 * the rule that asked for approvals, and each approver's signature over the approval statement.
 */
export const CommandApprovalBlockSchema = Type.Object({
  requested_by: UserName,
  rule_id: ShortText(128),
  approvals: Type.Array(EmbeddedApprovalSchema, { minItems: 1, maxItems: 16 }),
}, { additionalProperties: false });

const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256, lower-case hex' });
const Count = (max: number) => Type.Integer({ minimum: 0, maximum: max });

/**
 * The approvals an OTA rollout started with, carried by each of its kernel commands so the device
 * can check them (core/ota/rollout-approval.ts, docs/ota.md "Rollouts that need approvals"): the
 * rollout's reduced subject (every wave as one digest; its hash is the `command_sha256` approvers
 * signed), when the rollout started (the approvals had to hold then), each approver's signature,
 * and this device's wave: its member count, thresholds and the device's Merkle path to the wave's
 * device root (core/ota/device-merkle.ts). Bounds: 64 waves (rolloutLimits.wavesMax), 20 path
 * hashes (deviceMerkleLimits.pathHashesMax), 16 approvals; the whole command stays under the
 * kernel's 16 KiB of signed bytes (core/ota/rollout-approval.test.ts measures the largest).
 */
export const RolloutApprovalBlockSchema = Type.Object({
  subject: Type.Object({
    kind: Type.Literal('ota_rollout'),
    v: Type.Literal(2),
    id: FrameId,
    release_id: ShortText(128),
    platform: ShortText(64),
    target: Type.Object({
      path: ShortText(1024), length: Count(Number.MAX_SAFE_INTEGER), sha256: Sha256Hex, sha512: Type.String({ pattern: '^[0-9a-f]{128}$' }),
      release_counter: Count(Number.MAX_SAFE_INTEGER), version: ShortText(64),
    }, { additionalProperties: false }),
    waves: Type.Array(Sha256Hex, { minItems: 1, maxItems: 64 }),
    devices_per_minute_max: Count(Number.MAX_SAFE_INTEGER),
    expires_at: EpochMs,
    issuer: ShortText(128),
    requested_by: UserName,
  }, { additionalProperties: false }),
  started_at: EpochMs,
  approvals: Type.Array(EmbeddedApprovalSchema, { minItems: 1, maxItems: 16 }),
  wave: Type.Object({
    index: Count(63),
    devices_count: Type.Integer({ minimum: 1, maximum: 1 << 20 }),
    success_threshold: Type.Object({ succeeded_min: Count(Number.MAX_SAFE_INTEGER), succeeded_percent_min: Count(100), soak_ms: Count(Number.MAX_SAFE_INTEGER) }, { additionalProperties: false }),
    error_threshold: Type.Object({ executed_min: Count(Number.MAX_SAFE_INTEGER), failed_percent_max: Count(100) }, { additionalProperties: false }),
    position: Count((1 << 20) - 1),
    siblings: Type.Array(Sha256Hex, { maxItems: 20 }),
  }, { additionalProperties: false }),
}, { additionalProperties: false });

export type RolloutApprovalBlock = Static<typeof RolloutApprovalBlockSchema>;

/**
 * Who asked for the command and in which role, as the control plane admitted it (the role at
 * creation, or the requester's role re-read at release after approvals). Signed with the command,
 * so the agent can evaluate its policy bundle for exactly this actor: role-specific rules (a deny
 * aimed at operators only) are then enforced on the device too (docs/policy.md, "The device's
 * policy bundle"). Absent on commands no user asked for (OTA rollouts) and on commands signed
 * before it was carried. The roles are policy.ts's `policyRoles`.
 */
export const CommandRequesterSchema = Type.Object({
  name: UserName,
  role: Type.Union([Type.Literal('viewer'), Type.Literal('operator'), Type.Literal('approver'), Type.Literal('admin')]),
}, { additionalProperties: false });

export type CommandRequester = Static<typeof CommandRequesterSchema>;

const requesterRoles: readonly string[] = ['viewer', 'operator', 'approver', 'admin'];
const userNamePattern = /^[A-Za-z0-9_.@-]{1,128}$/;

/** The requester block for a user and role, or undefined when either is outside the schema (then the command carries none). */
export function commandRequester(name: string, role: string): CommandRequester | undefined {
  return userNamePattern.test(name) && requesterRoles.includes(role) ? { name, role: role as CommandRequester['role'] } : undefined;
}

/**
 * A command as the control plane signs it. The signature (in `sig`) covers the canonical form
 * of every other field, so the gateway, the bus and the stores can carry it without being able
 * to change it; the device verifies it against control-plane keys pinned at enrollment.
 */
export const SignedCommandSchema = Type.Object({
  id: FrameId,
  device_id: DeviceId,
  opcode: OpcodeSchema,
  args: Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), { maxProperties: 32 }),
  issued_at: EpochMs,
  expires_at: EpochMs,
  device_seq: Seq,
  issuer: ShortText(128),
  /** Present only on a command released by approvals (core/protocol/approvals.ts); covered by `sig`. */
  approval: Type.Optional(CommandApprovalBlockSchema),
  /** Present only on an approved OTA rollout's kernel commands (RolloutApprovalBlockSchema); covered by `sig`. */
  rollout_approval: Type.Optional(RolloutApprovalBlockSchema),
  /** The requesting user and their role (CommandRequesterSchema); covered by `sig`. */
  requester: Type.Optional(CommandRequesterSchema),
  sig: Signature,
}, { additionalProperties: false, description: 'A command signed by the control plane (see signed-command.ts)' });
export type SignedCommand = Static<typeof SignedCommandSchema>;

export const CommandResultStatus = Type.Union([Type.Literal('succeeded'), Type.Literal('failed'), Type.Literal('rejected')]);
export type CommandResultStatus = Static<typeof CommandResultStatus>;

export const CommandOutcomeError = Type.Object({ code: ErrorCodeField, message: ShortText(512) }, { additionalProperties: false });
export const CommandTtlMsMax = 7 * 24 * 3600 * 1000;
export const CommandTtlMs = DurationMs(CommandTtlMsMax);
