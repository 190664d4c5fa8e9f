import { SdcError } from '../errors/index.js';
import type { TufJson, TufJsonObject } from '../tuf/olpc-json.js';
import { isVersionLabel, versionLabelCharsMax } from '../protocol/version-label.js';

/**
 * What the image repository says about a release, in the TUF target's custom data under `sdc`
 * (the key keeps room for other tools' custom fields). Signed by the targets role, so it is as
 * trustworthy as the artifact's hashes. Fields this version does not know are ignored, as TUF
 * clients ignore unrecognised metadata fields, so a newer repository does not strand older agents.
 *
 * ```json
 * "custom": { "sdc": {
 *   "release_id": "rel-2026-12-01", "version": "2.4.0", "release_counter": 42,
 *   "platforms": ["windows-x64"], "min_agent_version": "1.8.0", "reboot_required": true,
 *   "health_check": { "timeout_ms": 300000, "probes": ["agent_online", "kernel_status"] } } }
 * ```
 */
export interface ReleaseTargetInfo {
  readonly releaseId: string;
  readonly version: string;
  /** Monotonic over the releases of a product: a device never installs a lower one. */
  readonly releaseCounter: number;
  readonly platforms: readonly string[];
  readonly minAgentVersion: string;
  readonly rebootRequired: boolean;
  readonly healthCheck: { readonly timeoutMs: number; readonly probes: readonly string[] };
}

export const releaseTargetLimits = {
  platformsMax: 32,
  probesMax: 16,
  /** An hour: longer and a broken update stays unconfirmed longer than the rollout's step timeouts. */
  healthCheckTimeoutMsMax: 60 * 60_000,
} as const;

const idPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const namePattern = /^[a-z][a-z0-9_-]{0,63}$/;
const versionPattern = /^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})$/;

/** Reads and checks a target's custom data; throws OTA_TARGET_CUSTOM_INVALID. */
export function parseReleaseTarget(custom: TufJson | undefined): ReleaseTargetInfo {
  const sdc = objectField(asObject(custom, 'custom'), 'sdc', 'custom');
  const health = objectField(sdc, 'health_check', 'sdc');
  return {
    releaseId: stringField(sdc, 'release_id', idPattern),
    version: labelField(stringField(sdc, 'version', versionPattern)),
    releaseCounter: counterField(sdc, 'release_counter'),
    platforms: namesField(sdc, 'platforms', releaseTargetLimits.platformsMax, 1),
    minAgentVersion: stringField(sdc, 'min_agent_version', versionPattern),
    rebootRequired: booleanField(sdc, 'reboot_required'),
    healthCheck: {
      timeoutMs: integerField(health, 'timeout_ms', 1, releaseTargetLimits.healthCheckTimeoutMsMax),
      probes: namesField(health, 'probes', releaseTargetLimits.probesMax, 0),
    },
  };
}

/** Compares two `major.minor.patch` versions numerically: negative, zero or positive. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number), pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i]! - pb[i]!;
  return 0;
}

export function isVersion(text: string): boolean {
  return versionPattern.test(text);
}

/** The release's version is what the kernel labels its slot with: one it cannot label is refused here, at create and publish, not on the device. */
function labelField(version: string): string {
  if (!isVersionLabel(version)) refuse(`sdc.version ${version} is not a kernel version label (1..${versionLabelCharsMax} of A-Z a-z 0-9 . _ -)`);
  return version;
}

function asObject(value: TufJson | undefined, name: string): TufJsonObject {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) refuse(`${name} is not an object`);
  return value as TufJsonObject;
}

function objectField(object: TufJsonObject, key: string, parent: string): TufJsonObject {
  return asObject(Object.hasOwn(object, key) ? object[key] : undefined, `${parent}.${key}`);
}

function stringField(object: TufJsonObject, key: string, pattern: RegExp): string {
  const value = object[key];
  if (typeof value !== 'string' || !pattern.test(value)) refuse(`${key} is missing or malformed`);
  return value as string;
}

function booleanField(object: TufJsonObject, key: string): boolean {
  const value = object[key];
  if (typeof value !== 'boolean') refuse(`${key} is not a boolean`);
  return value as boolean;
}

function integerField(object: TufJsonObject, key: string, min: number, max: number): number {
  const value = object[key];
  // A bigint from the parser is beyond 2^53: out of range for every field here.
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) refuse(`${key} is not an integer in ${min}..${max}`);
  return value as number;
}

function counterField(object: TufJsonObject, key: string): number {
  return integerField(object, key, 0, Number.MAX_SAFE_INTEGER);
}

function namesField(object: TufJsonObject, key: string, countMax: number, countMin: number): string[] {
  const value = object[key];
  if (!Array.isArray(value) || value.length < countMin || value.length > countMax) refuse(`${key} is not a list of ${countMin}..${countMax} names`);
  const names = value as TufJson[];
  for (const name of names) if (typeof name !== 'string' || !namePattern.test(name)) refuse(`${key} holds a malformed name`);
  if (new Set(names).size !== names.length) refuse(`${key} names one entry twice`);
  return names as string[];
}

function refuse(message: string): never {
  throw new SdcError('OTA_TARGET_CUSTOM_INVALID', `target custom data: ${message}`);
}
