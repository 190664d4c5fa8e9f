import { Type, type Static } from '@sinclair/typebox';
import { DeviceId, DurationMs, EpochMs, FrameId, Seq, Signature, ShortText, ErrorCodeField } from './fields.js';
import { OpcodeSchema } from './opcodes.js';

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
  sig: Signature,
}, { additionalProperties: false, description: 'A command signed by the control plane (see signed-command.ts)' });
export type SignedCommand = Static<typeof SignedCommandSchema>;

export const CommandResultStatus = Type.Union([Type.Literal('succeeded'), Type.Literal('failed'), Type.Literal('rejected')]);
export type CommandResultStatus = Static<typeof CommandResultStatus>;

export const CommandOutcomeError = Type.Object({ code: ErrorCodeField, message: ShortText(512) }, { additionalProperties: false });
export const CommandTtlMsMax = 7 * 24 * 3600 * 1000;
export const CommandTtlMs = DurationMs(CommandTtlMsMax);
