// Types for bin/build-state.js (plain JavaScript: it runs before anything is compiled), for the tests.
export interface BuildInfo {
  /** When the build started (ms since the epoch): a source changed after it makes the build stale. */
  readonly startedAtMs: number;
  /** The folders compiled, relative to the package root. */
  readonly sourceDirs: readonly string[];
  /** SHA-256 of the sorted paths of the files compiled or copied, when the build started. */
  readonly sourcesDigest: string;
  /** Package files whose change makes the build stale (package.json, tsconfig files). */
  readonly watchedFiles: readonly string[];
}
export function readBuildInfo(root: string): BuildInfo | undefined;
export function sourceListing(root: string, sourceDirs: readonly string[]): { digest: string; newestMtimeMs: number; fileCount: number };
export function buildIsCurrent(root: string, info: BuildInfo): boolean;
