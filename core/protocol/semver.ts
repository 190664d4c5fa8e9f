/**
 * Just enough of Semantic Versioning 2.0.0 precedence for the policy's `agentVersionAtLeast`:
 * MAJOR.MINOR.PATCH compared as numbers, then a pre-release sorts below its release, and
 * pre-release identifiers compare numerically when numeric, else by ASCII (semver.org, item 11).
 * Build metadata is ignored. Pure.
 */

export interface SemVer {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  readonly prerelease: readonly string[];
}

/** An exact version, as a policy author writes it: `1.4.0`, `2.0.0-rc.1`. */
const exactPattern = /^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/;
/** A version inside what an agent reports, e.g. `sdc-agent/0.1.0` or `0.1.0+build.7`. */
const embeddedPattern = /(?:^|[^0-9.])(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]*)?$/;

function fromMatch(match: RegExpMatchArray | null): SemVer | undefined {
  if (match === null) return undefined;
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3]), prerelease: match[4] === undefined ? [] : match[4].split('.') };
}

/** An exact version string, or undefined. */
export function parseSemVer(text: string): SemVer | undefined {
  return text.length > 64 ? undefined : fromMatch(exactPattern.exec(text));
}

/** The version at the end of an agent's version string (`name/1.2.3`), or undefined when it names none. */
export function semVerIn(text: string): SemVer | undefined {
  return text.length > 64 ? undefined : fromMatch(embeddedPattern.exec(text));
}

/** Negative when a < b, 0 when equal in precedence, positive when a > b. */
export function compareSemVer(a: SemVer, b: SemVer): number {
  const core = a.major - b.major || a.minor - b.minor || a.patch - b.patch;
  if (core !== 0) return core;
  if (a.prerelease.length === 0 || b.prerelease.length === 0) return b.prerelease.length - a.prerelease.length;
  for (let index = 0; index < Math.min(a.prerelease.length, b.prerelease.length); index += 1) {
    const order = compareIdentifier(a.prerelease[index]!, b.prerelease[index]!);
    if (order !== 0) return order;
  }
  return a.prerelease.length - b.prerelease.length;
}

function compareIdentifier(a: string, b: string): number {
  const aNumeric = /^[0-9]+$/.test(a);
  const bNumeric = /^[0-9]+$/.test(b);
  if (aNumeric && bNumeric) return Number(a) - Number(b);
  // Numeric identifiers have lower precedence than alphanumeric ones.
  if (aNumeric !== bNumeric) return aNumeric ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
