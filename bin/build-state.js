// Whether dist/ (scripts/build.mjs) is current for the sources beside it; bin/sdc.js runs dist/ only then.
// Plain JavaScript, and only node:fs: it runs before anything is built or compiled.
//
// "Current": no source file, folder or watched package file changed after the build started
// (dist/build-info.json). Folder times count too, so an added, removed or renamed file is seen.
// Tests are not compiled and do not count. Where the sources are absent (a container image holds
// dist/ only) the build is current by definition.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Folders never compiled: the native library's output and installed packages. */
const skippedDirs = new Set(['build', 'node_modules']);

/** dist/build-info.json under root, or undefined when there is no (readable) build. */
export function readBuildInfo(root) {
  try {
    const info = JSON.parse(readFileSync(join(root, 'dist', 'build-info.json'), 'utf8'));
    const valid = Number.isFinite(info.startedAtMs) && Array.isArray(info.sourceDirs) && Array.isArray(info.watchedFiles);
    return valid ? info : undefined;
  } catch {
    return undefined;
  }
}

function mtimeMsOrZero(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/** True when something under dir that the build compiles or copies changed after sinceMs. */
function changedSince(dir, sinceMs) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return false;
  }
  if (mtimeMsOrZero(dir) > sinceMs) return true;
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!skippedDirs.has(entry.name) && changedSince(path, sinceMs)) return true;
    } else if (!entry.name.endsWith('.test.ts') && mtimeMsOrZero(path) > sinceMs) {
      return true;
    }
  }
  return false;
}

/** True when no source under root changed since the build described by info started. */
export function buildIsCurrent(root, info) {
  return !info.sourceDirs.some((dir) => changedSince(join(root, dir), info.startedAtMs))
    && !info.watchedFiles.some((file) => mtimeMsOrZero(join(root, file)) > info.startedAtMs);
}
