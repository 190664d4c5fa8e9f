/**
 * The update version label: the one rule for what a version may be wherever it reaches the
 * kernel. The kernel stores each version as a sandbox file name in a 32-byte NUL-padded field
 * (kernel/contract.json VERSION_LABEL_BYTES; sdc_label_valid in kernel/native/src/sdc_ops.c), so
 * a label is 1..31 characters of [A-Za-z0-9._-] and never `.` or `..` (directory names). The
 * opcode schema (messages/opcodes.ts), the kernel payload encoder (kernel/payloads.ts) and OTA
 * release versions (core/ota/release-target.ts) all use it, so a version the kernel must refuse
 * is refused where it is first named (API_VALIDATION / PROTO_SCHEMA_INVALID), not on the device.
 */

/** Characters in a label: the kernel's 32-byte field less its terminating NUL (a kernel test pins it to the contract). */
export const versionLabelCharsMax = 31;

/** The label as a JSON-schema pattern (ECMAScript): the lookahead refuses `.` and `..`. */
export const versionLabelPattern = `^(?!\\.\\.?$)[A-Za-z0-9._-]{1,${versionLabelCharsMax}}$`;

const versionLabelRegExp = new RegExp(versionLabelPattern);

/** True when `text` is a version the kernel can label. */
export function isVersionLabel(text: string): boolean {
  return versionLabelRegExp.test(text);
}
