import { Type, type Static } from '@sinclair/typebox';
import { deviceTagLimits, deviceTagPattern } from '../../../core/protocol/device-tags.js';
import { policyLimits } from '../../../core/protocol/policy.js';
import { CreateCommandBody, PageQuery } from './schemas.js';

/** Request schemas of issue 12's policy facts: a command's stated reason and device tags. */
const strict = { additionalProperties: false } as const;

/** Why a command is sent (policy `reasonRequired`); printable, since it is shown and audited. */
export const CommandReason = Type.String({
  minLength: 1, maxLength: policyLimits.reasonLengthMax, pattern: '^[^\\x00-\\x1f\\x7f]*\\S[^\\x00-\\x1f\\x7f]*$',
  description: 'Why the command is sent; required by rules with reasonRequired, recorded in the audit entry',
});

export const DeviceTag = Type.String({ pattern: deviceTagPattern, maxLength: deviceTagLimits.tagLengthMax, description: 'A device tag; `group:NAME` is a group' });

export const DeviceTagsBody = Type.Object({
  tags: Type.Array(DeviceTag, { maxItems: deviceTagLimits.tagsPerDeviceMax, uniqueItems: true, description: 'The device\'s tags after the change (replaces them all)' }),
}, strict);
export type DeviceTagsBody = Static<typeof DeviceTagsBody>;

export const DeviceTagsView = Type.Object({ device_id: Type.String(), tags: Type.Array(Type.String()) });

const NullableNumber = Type.Union([Type.Number(), Type.Null()]);
const NullableString = Type.Union([Type.String(), Type.Null()]);
/** GET /v1/devices items and GET /v1/devices/{id} (server/control-plane/devices.ts DeviceView). */
export const DeviceView = Type.Object({
  id: Type.String(), status: Type.String(), created_at_ms: Type.Number(), last_seen_at_ms: NullableNumber, gateway_id: NullableString,
  online: Type.Boolean(), cert_serial: NullableString, cert_not_after_ms: NullableNumber, last_command_seq: NullableNumber,
  clock_offset_ms: NullableNumber, tags: Type.Array(Type.String()), agent_version: NullableString,
  risk_score: Type.Union([Type.Number({ minimum: 0, maximum: 100 }), Type.Null()], { description: 'Risk score (0..100) of the newest telemetry sample; null before any' }),
  risk_scored_at_ms: Type.Union([Type.Number(), Type.Null()], { description: 'When that sample was taken' }),
});
export const DevicePage = Type.Object({ items: Type.Array(DeviceView), next_cursor: NullableString });

/** POST /v1/commands: the command, and optionally the reason it is sent. */
export const CreateCommandWithReasonBody = Type.Object({ ...CreateCommandBody.properties, reason: Type.Optional(CommandReason) }, strict);

/** GET /v1/devices: a page, optionally only the devices with one tag. */
export const DeviceListQuery = Type.Object({ ...PageQuery.properties, tag: Type.Optional(DeviceTag) }, strict);
export type DeviceListQuery = Static<typeof DeviceListQuery>;
