import { SdcError } from '../core/errors/index.js';
import type { ParsedCommandArgs } from './command.js';

/**
 * One style for every time option: `--duration 10m`, `--timeout 30m`, `--ttl 15m`, `--validity 30d`
 * (`500ms`, `90s`, `1.5s`, `10m`, `1h`, `30d`). The old spellings (`--duration-s`, `--seconds`,
 * `--timeout-s`, `--ttl-minutes`, `--days`) still work for one release, with a deprecation note on
 * stderr and in help; they are dropped in the release after.
 */

const unitMs = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Parses `1.5s`, `10m`, `30d`; the unit is required (a bare `10` is ambiguous between the old spellings). */
export function parseDurationText(optionName: string, text: string): number {
  const match = /^(\d{1,12}(?:\.\d{1,6})?)(ms|s|m|h|d)$/.exec(text.trim());
  if (match === null) throw new SdcError('CLI_USAGE', `--${optionName} must be a number with a unit (ms, s, m, h, d), like 90s or 10m, got '${text}'`);
  return Math.round(Number(match[1]) * unitMs[match[2] as keyof typeof unitMs]);
}

/** Renders milliseconds the way the options are written: the largest whole unit. */
export function formatDurationMs(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) if (ms >= unitMs[unit] && ms % unitMs[unit] === 0) return `${ms / unitMs[unit]}${unit}`;
  return `${ms}ms`;
}

export interface DurationOptionSpec {
  /** The option's name, without dashes (`duration`). */
  name: string;
  fallbackMs: number;
  minMs: number;
  maxMs: number;
  /** The deprecated spelling this option replaces and its unit: `{ name: 'seconds', unitMs: 1000 }`. */
  legacy?: { name: string; unitMs: number; fractions?: boolean };
}

/** `parseArgs` option entries for a duration option and its deprecated spelling. */
export function durationOptions(spec: DurationOptionSpec): Record<string, { type: 'string' }> {
  return { [spec.name]: { type: 'string' }, ...(spec.legacy ? { [spec.legacy.name]: { type: 'string' } } : {}) };
}

/** The help line of the deprecated spelling. */
export function legacyHelp(spec: DurationOptionSpec): Array<[string, string]> {
  return spec.legacy ? [[`--${spec.legacy.name} N`, `deprecated, use --${spec.name} (kept for one release)`]] : [];
}

function legacyValueMs(spec: DurationOptionSpec, raw: string): number {
  const legacy = spec.legacy!;
  const pattern = legacy.fractions === true ? /^\d{1,12}(\.\d{1,6})?$/ : /^\d{1,12}$/;
  if (!pattern.test(raw)) throw new SdcError('CLI_USAGE', `--${legacy.name} must be a ${legacy.fractions === true ? 'number' : 'whole number'}, got '${raw}'`);
  return Math.round(Number(raw) * legacy.unitMs);
}

/**
 * The duration in ms from `--<name>` (or its deprecated spelling, with a note through `warn`),
 * within [minMs, maxMs]; both spellings at once is a usage error.
 */
export function durationOption(args: ParsedCommandArgs, spec: DurationOptionSpec, warn: (text: string) => void = () => undefined): number {
  const raw = args.values[spec.name];
  const legacyRaw = spec.legacy ? args.values[spec.legacy.name] : undefined;
  if (typeof raw === 'string' && typeof legacyRaw === 'string') throw new SdcError('CLI_USAGE', `give --${spec.name} or --${spec.legacy!.name}, not both`);
  let ms = spec.fallbackMs;
  if (typeof raw === 'string') ms = parseDurationText(spec.name, raw);
  else if (typeof legacyRaw === 'string') {
    ms = legacyValueMs(spec, legacyRaw);
    warn(`sdc: --${spec.legacy!.name} is deprecated and goes in the next release; use --${spec.name} ${formatDurationMs(ms)}\n`);
  }
  if (!(ms >= spec.minMs && ms <= spec.maxMs)) {
    throw new SdcError('CLI_USAGE', `--${spec.name} must be from ${formatDurationMs(spec.minMs)} to ${formatDurationMs(spec.maxMs)}`);
  }
  return ms;
}
