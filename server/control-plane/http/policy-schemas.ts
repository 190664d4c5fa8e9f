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

/** POST /v1/commands: the command, and optionally the reason it is sent. */
export const CreateCommandWithReasonBody = Type.Object({ ...CreateCommandBody.properties, reason: Type.Optional(CommandReason) }, strict);

/** GET /v1/devices: a page, optionally only the devices with one tag. */
export const DeviceListQuery = Type.Object({ ...PageQuery.properties, tag: Type.Optional(DeviceTag) }, strict);
export type DeviceListQuery = Static<typeof DeviceListQuery>;
