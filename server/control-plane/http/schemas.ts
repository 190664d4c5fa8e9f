import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { DeviceId, FrameId } from '../../../core/protocol/messages/fields.js';
import { CommandTtlMsMax } from '../../../core/protocol/messages/command.js';
import { commandStates } from '../../../core/protocol/command-machine.js';
import { revocationReasons } from '../../../trust/revocation.js';
import { pairingTokensPerBatchMax } from '../../../trust/pairing-tokens.js';
import { pageLimitMax } from '../pagination.js';
import { policyRoles } from '../../../core/protocol/policy.js';
import type { JsonObject } from '../../../core/protocol/json-value.js';
import { queryInteger, queryNumberLimits } from './query-numbers.js';

/** Request schemas for every route: fastify compiles each once at start; OpenAPI is generated from them. */
const strict = { additionalProperties: false } as const;
const Limit = queryInteger({ minimum: 1, maximum: pageLimitMax, description: `Page size, at most ${pageLimitMax}` });
const TimeMs = (description: string) => queryInteger({ minimum: 0, maximum: queryNumberLimits.valueMax, description });
const Cursor = Type.String({ maxLength: 256, pattern: '^[A-Za-z0-9_-]*$', description: 'Opaque cursor from the previous page' });

export const DeviceParams = Type.Object({ id: DeviceId }, strict);
export const CommandParams = Type.Object({ id: FrameId }, strict);

export const LoginBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 128 }),
  password: Type.String({ minLength: 1, maxLength: 1024 }),
}, strict);
export type LoginBody = Static<typeof LoginBody>;

export const CreateUserBody = Type.Object({
  name: Type.String({ pattern: '^[A-Za-z0-9_.@-]{1,128}$' }),
  role: Type.Union(policyRoles.map((r) => Type.Literal(r))),
  password: Type.String({ minLength: 12, maxLength: 1024 }),
}, strict);
export type CreateUserBody = Static<typeof CreateUserBody>;

const UserName = Type.String({ pattern: '^[A-Za-z0-9_.@-]{1,128}$' });
export const UserParams = Type.Object({ name: UserName }, strict);
export const SetRoleBody = Type.Object({ role: Type.Union(policyRoles.map((r) => Type.Literal(r))) }, strict);
export type SetRoleBody = Static<typeof SetRoleBody>;
/** `current_password` is required when a user changes their own password, and not read otherwise. */
export const SetPasswordBody = Type.Object({
  password: Type.String({ minLength: 12, maxLength: 1024 }),
  current_password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
}, strict);
export type SetPasswordBody = Static<typeof SetPasswordBody>;
/** One operator as the API answers it: never the password hash. */
export const UserView = Type.Object({ id: Type.String(), name: Type.String(), role: Type.String(), created_at_ms: Type.Integer() });
export const UserPage = Type.Object({ items: Type.Array(UserView), next_cursor: Type.Union([Type.String(), Type.Null()]) });

export const PageQuery = Type.Object({ limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) }, strict);
export type PageQuery = Static<typeof PageQuery>;

export const PairingTokenBody = Type.Object({
  ttl_ms: Type.Optional(Type.Integer({ minimum: 1000, maximum: 24 * 3600 * 1000 })),
}, strict);
export type PairingTokenBody = Static<typeof PairingTokenBody>;

/**
 * Bulk pairing (issue 15): either `device_ids` (at most 500, so the body stays under the 64 KiB
 * limit) or `prefix` + `count` (ids prefix0001.., up to pairingTokensPerBatchMax), with `first`
 * the first index (default 1). The handler refuses a body with both or neither.
 */
export const PairingTokenBatchBody = Type.Object({
  device_ids: Type.Optional(Type.Array(DeviceId, { minItems: 1, maxItems: 500 })),
  prefix: Type.Optional(Type.String({ maxLength: 48, pattern: '^[a-z0-9][a-z0-9._-]*$' })),
  count: Type.Optional(Type.Integer({ minimum: 1, maximum: pairingTokensPerBatchMax })),
  first: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000_000 })),
  ttl_ms: Type.Optional(Type.Integer({ minimum: 1000, maximum: 24 * 3600 * 1000 })),
}, strict);
export type PairingTokenBatchBody = Static<typeof PairingTokenBatchBody>;

export const RevokeBody = Type.Object({
  reason: Type.Optional(Type.Union(revocationReasons.map((r) => Type.Literal(r)))),
}, strict);
export type RevokeBody = Static<typeof RevokeBody>;

export const EnrollBody = Type.Object({
  device_id: DeviceId,
  // The token's exact format is trust's (hashPairingToken); here only its alphabet and size.
  token: Type.String({ pattern: '^[A-Za-z0-9_-]{1,128}$' }),
  csr_pem: Type.String({ minLength: 1, maxLength: 8192 }),
}, strict);
export type EnrollBody = Static<typeof EnrollBody>;

export const RenewBody = Type.Object({
  csr_pem: Type.String({ minLength: 1, maxLength: 8192 }),
}, strict);
export type RenewBody = Static<typeof RenewBody>;

export const CreateCommandBody = Type.Object({
  device_id: DeviceId,
  opcode: Type.String({ pattern: '^[A-Z][A-Z0-9_]{0,63}$' }),
  // Typed as the JsonObject it is: bodies come through the strict JSON parser, so every value is JSON.
  args: Type.Unsafe<JsonObject>(Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), { maxProperties: 32 })),
  ttl_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: CommandTtlMsMax })),
}, strict);
export type CreateCommandBody = Static<typeof CreateCommandBody>;

export const CreateCommandHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$' })),
});
export type CreateCommandHeaders = Static<typeof CreateCommandHeaders>;

export const CommandListQuery = Type.Object({
  device_id: Type.Optional(DeviceId),
  state: Type.Optional(Type.Union(commandStates.map((s) => Type.Literal(s)))),
  limit: Type.Optional(Limit),
  cursor: Type.Optional(Cursor),
}, strict);
export type CommandListQuery = Static<typeof CommandListQuery>;

export const TelemetryQuery = Type.Object({
  from_ms: Type.Optional(TimeMs('Only samples taken at or after this time (ms since epoch)')),
  to_ms: Type.Optional(TimeMs('Only samples taken at or before this time (ms since epoch)')),
  limit: Type.Optional(Limit),
}, strict);
export type TelemetryQuery = Static<typeof TelemetryQuery>;

export const AuditQuery = Type.Object({
  from_seq: Type.Optional(queryInteger({ minimum: 1, maximum: queryNumberLimits.valueMax, description: 'First audit sequence number to answer' })),
  limit: Type.Optional(Limit),
}, strict);
export type AuditQuery = Static<typeof AuditQuery>;

export const AlertParams = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }) }, strict);

export const AlertListQuery = Type.Object({
  device_id: Type.Optional(DeviceId),
  since_ms: Type.Optional(TimeMs('Only alerts raised at or after this time (ms since epoch)')),
  state: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('acked')], { description: 'open: not yet acknowledged; acked: acknowledged' })),
  acknowledged: Type.Optional(Type.Boolean({ description: 'Same as state (true: acked, false: open); kept for older clients' })),
  limit: Type.Optional(Limit),
  cursor: Type.Optional(Cursor),
}, strict);
export type AlertListQuery = Static<typeof AlertListQuery>;

/** The body of an acknowledgement; may be absent. */
export const AlertAckBody = Type.Object({
  note: Type.Optional(Type.String({ maxLength: 1024, description: 'Why, or what was done; kept with the alert and in the audit entry' })),
}, strict);
export type AlertAckBody = Static<typeof AlertAckBody>;

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/** One alert as the API answers it (also the 200 response schema, so the OpenAPI document shows it). */
export const Alert = Type.Object({
  id: Type.String(),
  device_id: Nullable(Type.String()),
  kind: Type.String(),
  severity: Type.String(),
  state: Type.Union([Type.Literal('open'), Type.Literal('acknowledged')]),
  message: Type.String(),
  detail: Nullable(Type.Record(Type.String(), Type.Unknown())),
  created_at_ms: Type.Integer(),
  updated_at_ms: Type.Integer(),
  acknowledged_by: Nullable(Type.String()),
  acknowledged_at_ms: Nullable(Type.Integer()),
  ack_note: Nullable(Type.String()),
  cleared_at_ms: Nullable(Type.Integer({ description: 'When the condition that raised it was over (its episode ended); null while it holds' })),
});
export const AlertPage = Type.Object({ items: Type.Array(Alert), next_cursor: Nullable(Type.String()) });

const JsonObjectSchema = Type.Record(Type.String(), Type.Unknown());
/**
 * One command as the API answers it (server/control-plane/commands.ts CommandView). Members not
 * named here are still sent (additionalProperties), so a field added to the view is never
 * dropped silently by the response serializer.
 */
const commandMembers = {
  id: Type.String(),
  device_id: Type.String(),
  opcode: Type.String(),
  args: JsonObjectSchema,
  state: Type.String({ description: `One of ${commandStates.join(', ')}` }),
  device_seq: Nullable(Type.Integer({ description: 'null while the command waits for approvals' })),
  created_by: Type.String(),
  created_at_ms: Type.Integer(),
  updated_at_ms: Type.Integer(),
  expires_at_ms: Type.Integer(),
  attempts: Type.Integer(),
  gateway_id: Nullable(Type.String()),
  signed: Nullable(Type.Object({}, { additionalProperties: true, description: 'The signed command the device received (core/protocol/signed-command.ts); null while it waits for approvals' })),
  result_frame: Nullable(Type.Object({}, { additionalProperties: true, description: 'The device-signed COMMAND_RESULT envelope, as an object; its RFC 8785 canonical JSON is the signed text' })),
};
export const Command = Type.Object(commandMembers, { additionalProperties: true });
export const CommandDetail = Type.Object({
  ...commandMembers,
  history: Type.Array(Type.Object({ state: Type.String(), at_ms: Type.Integer(), detail: Type.Optional(Type.Unknown()) }, { additionalProperties: true })),
}, { additionalProperties: true });
export const CommandPage = Type.Object({ items: Type.Array(Command), next_cursor: Nullable(Type.String()) });

/** `?ticket=` from POST /v1/live/tickets (base64url of 32 bytes); a `?token=` is refused before this (authentication.ts). */
export const LiveQuery = Type.Object({ ticket: Type.Optional(Type.String({ maxLength: 64 })) }, strict);
export const LiveTicketAnswer = Type.Object({
  ticket: Type.String({ description: 'One-time: opens one stream as GET /v1/live?ticket=, until expires_at_ms' }),
  expires_at_ms: Type.Integer({ description: 'The ticket is refused from then on: 30 s from now, or the token\'s expiry if sooner' }),
}, strict);

export const LogoutAllAnswer = Type.Object({
  name: Type.String({ description: 'The user whose tokens were revoked (the caller)' }),
  live_streams_closed: Type.Integer({ description: 'The user\'s live streams this control plane closed (token_revoked); other replicas\' streams close at their token\'s expiry' }),
}, strict);

export const ErrorBody = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String(), trace_id: Type.String() }),
});
