import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { OpcodeName } from './opcode-names.js';
import { versionLabelCharsMax, versionLabelPattern } from '../version-label.js';

/**
 * Command opcodes and their argument schemas. The kernel contract (kernel/contract.json)
 * defines how each opcode crosses the kernel boundary; this is the operator-facing side.
 */
const NoArgs = Type.Object({}, { additionalProperties: false });
const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$' });
/** A version the kernel can label (version-label.ts): 1..31 of [A-Za-z0-9._-], not `.` or `..`; no `+build` metadata. */
const Version = Type.String({ pattern: versionLabelPattern, maxLength: versionLabelCharsMax });

export const opcodeArgs = {
  EXEC_PING_KERNEL: NoArgs,
  EXEC_LOCK_SCREEN: NoArgs,
  EXEC_GET_PROCESS_LIST: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096 })) }, { additionalProperties: false }),
  EXEC_GET_STATUS: NoArgs,
  EXEC_STAGE_UPDATE: Type.Object({
    version: Version,
    sha256: Sha256Hex,
    size_bytes: Type.Integer({ minimum: 1, maximum: 2 ** 32 - 1 }),
    url: Type.Optional(Type.String({ maxLength: 2048 })),
  }, { additionalProperties: false }),
  /**
   * `sha256`: the approved digest, recomputed by the kernel over the staged bytes. `watchdog_ms`:
   * the commit watchdog's window (kernel watchdogWindowMsMin..Max); when the control plane names
   * them the kernel requires exactly these, so they are the control plane's choice, not the
   * agent's (docs/kernel-contract.md, "Commit watchdog").
   */
  EXEC_COMMIT_UPDATE: Type.Object({
    version: Version,
    sha256: Type.Optional(Sha256Hex),
    watchdog_ms: Type.Optional(Type.Integer({ minimum: 100, maximum: 86_400_000 })),
  }, { additionalProperties: false }),
  EXEC_ROLLBACK_UPDATE: NoArgs,
  /**
   * Asks the device for an artifact (docs/artifacts.md): its logs, or a screenshot where the
   * platform has one. The device seals it to the control plane's artifact key, uploads it by a
   * presigned PUT the control plane issues for this device and command, and the result carries
   * its id, length and SHA-256.
   */
  EXEC_COLLECT_ARTIFACT: Type.Object({ kind: Type.Union([Type.Literal('logs'), Type.Literal('screenshot')]) }, { additionalProperties: false }),
} as const satisfies Record<OpcodeName, TSchema>;

export type Opcode = keyof typeof opcodeArgs;
export const opcodes = Object.keys(opcodeArgs) as Opcode[];
export type OpcodeArgs<O extends Opcode> = Static<(typeof opcodeArgs)[O]>;
export const OpcodeSchema = Type.Union(opcodes.map((o) => Type.Literal(o)));

export function isOpcode(value: unknown): value is Opcode {
  return typeof value === 'string' && Object.hasOwn(opcodeArgs, value);
}
