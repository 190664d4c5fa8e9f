import { SdcError } from '../core/errors/index.js';
import { telemetryRetentionDefaults, telemetryRetentionLimits } from '../server/control-plane/telemetry-retention.js';
import type { ParsedCommandArgs } from './command.js';
import { flagOrEnvText } from './flag-or-env.js';

/**
 * `sdc serve --telemetry-rows-per-device N` (docs/api.md, "Telemetry retention"): the telemetry rows
 * each device keeps, newest first; from the flag, else `$SDC_TELEMETRY_ROWS_PER_DEVICE` (a
 * container sets it without changing its command), else the control plane's default.
 */
export const telemetryRetentionFlag = { flag: 'telemetry-rows-per-device', env: 'SDC_TELEMETRY_ROWS_PER_DEVICE' } as const;

export interface TelemetryRetentionTuning {
  telemetryRetention?: { rowsPerDeviceMax: number };
}

export function telemetryRetentionOptions(args: ParsedCommandArgs, env: Readonly<Record<string, string | undefined>>): TelemetryRetentionTuning {
  const { flag, env: variable } = telemetryRetentionFlag;
  const given = flagOrEnvText(args, env, flag, variable);
  if (given === undefined) return {};
  const { rowsPerDeviceMin: min, rowsPerDeviceCeiling: max } = telemetryRetentionLimits;
  const rows = /^\d{1,16}$/.test(given.text.trim()) ? Number(given.text.trim()) : NaN;
  if (!Number.isSafeInteger(rows) || rows < min || rows > max) {
    throw new SdcError('CLI_USAGE', `${given.name} must be a whole number of rows from ${min} to ${max.toLocaleString('en-US')}, got '${given.text}'`);
  }
  return { telemetryRetention: { rowsPerDeviceMax: rows } };
}

export const telemetryRetentionHelp: Array<[string, string]> = [
  [`--${telemetryRetentionFlag.flag} N`, `Telemetry rows kept per device, newest first; older ones are deleted in the background (default ${telemetryRetentionDefaults.rowsPerDeviceMax.toLocaleString('en-US')}; or $${telemetryRetentionFlag.env}); the audit log is not affected`],
];

export const telemetryRetentionParseOptions = {
  [telemetryRetentionFlag.flag]: { type: 'string' },
} as const;
