import { SdcError } from '../core/errors/index.js';
import type { ParsedCommandArgs } from './command.js';
import { formatDurationMs, parseDurationText } from './duration-option.js';
import { flagOrEnvText } from './flag-or-env.js';

/**
 * `sdc serve`'s artifact retention limits (docs/artifacts.md, "Retention and deletion"): each from
 * its flag, else its environment variable (a container sets these without changing its command),
 * else the control plane's default. Durations as the other time options (`30d`, `12h`); sizes as
 * bytes or with a binary unit (`512MiB`, `1GiB`).
 */
export const artifactRetentionFlags = {
  maxAge: { flag: 'artifact-max-age', env: 'SDC_ARTIFACT_MAX_AGE', minMs: 60_000, maxMs: 3650 * 86_400_000 },
  maxBytes: { flag: 'artifact-max-bytes', env: 'SDC_ARTIFACT_MAX_BYTES', min: 1, max: 2 ** 50 },
  sweepInterval: { flag: 'artifact-sweep-interval', env: 'SDC_ARTIFACT_SWEEP_INTERVAL', minMs: 10_000, maxMs: 86_400_000 },
} as const;

export interface ArtifactRetentionTuning {
  artifactRetention?: { ageMsMax?: number; bytesMax?: number };
  artifactRetentionSweepIntervalMs?: number;
}

const binaryUnits = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 } as const;

/** `1073741824`, `512MiB`, `1GiB`: whole numbers of bytes or of a binary unit. */
export function parseByteSize(name: string, text: string): number {
  const match = /^(\d{1,16})(B|KiB|MiB|GiB|TiB)?$/.exec(text.trim());
  const bytes = match === null ? NaN : Number(match[1]) * binaryUnits[(match[2] ?? 'B') as keyof typeof binaryUnits];
  if (!Number.isSafeInteger(bytes)) throw new SdcError('CLI_USAGE', `${name} must be a whole number of bytes, optionally with KiB, MiB, GiB or TiB, like 512MiB, got '${text}'`);
  return bytes;
}

function durationWithin(given: { name: string; text: string }, minMs: number, maxMs: number): number {
  let ms: number;
  try {
    ms = parseDurationText(given.name.replace(/^--/, ''), given.text);
  } catch {
    throw new SdcError('CLI_USAGE', `${given.name} must be a number with a unit (ms, s, m, h, d), like 30d, got '${given.text}'`);
  }
  if (ms < minMs || ms > maxMs) throw new SdcError('CLI_USAGE', `${given.name} must be from ${formatDurationMs(minMs)} to ${formatDurationMs(maxMs)}`);
  return ms;
}

export function artifactRetentionOptions(args: ParsedCommandArgs, env: Readonly<Record<string, string | undefined>>): ArtifactRetentionTuning {
  const { maxAge, maxBytes, sweepInterval } = artifactRetentionFlags;
  const age = flagOrEnvText(args, env, maxAge.flag, maxAge.env);
  const bytes = flagOrEnvText(args, env, maxBytes.flag, maxBytes.env);
  const interval = flagOrEnvText(args, env, sweepInterval.flag, sweepInterval.env);
  let bytesMax: number | undefined;
  if (bytes !== undefined) {
    bytesMax = parseByteSize(bytes.name, bytes.text);
    if (bytesMax < maxBytes.min || bytesMax > maxBytes.max) throw new SdcError('CLI_USAGE', `${bytes.name} must be from 1 byte to 1024 TiB`);
  }
  const retention = {
    ...(age === undefined ? {} : { ageMsMax: durationWithin(age, maxAge.minMs, maxAge.maxMs) }),
    ...(bytesMax === undefined ? {} : { bytesMax }),
  };
  return {
    ...(Object.keys(retention).length === 0 ? {} : { artifactRetention: retention }),
    ...(interval === undefined ? {} : { artifactRetentionSweepIntervalMs: durationWithin(interval, sweepInterval.minMs, sweepInterval.maxMs) }),
  };
}

export const artifactRetentionHelp: Array<[string, string]> = [
  ['--artifact-max-age T', `Delete uploaded artifacts older than this (default 30d; or $${artifactRetentionFlags.maxAge.env}); each deletion audited`],
  ['--artifact-max-bytes N', `Keep at most this many stored artifact bytes, newest first (default 1GiB; 512MiB style; or $${artifactRetentionFlags.maxBytes.env})`],
  ['--artifact-sweep-interval T', `How often the retention pass runs, besides at each upload grant (default 1h; 10s to 1d; or $${artifactRetentionFlags.sweepInterval.env})`],
];

export const artifactRetentionParseOptions = {
  [artifactRetentionFlags.maxAge.flag]: { type: 'string' },
  [artifactRetentionFlags.maxBytes.flag]: { type: 'string' },
  [artifactRetentionFlags.sweepInterval.flag]: { type: 'string' },
} as const;
