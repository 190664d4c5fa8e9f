// Whether dist/ (scripts/build.mjs) is current for the sources beside it; bin/sdc.js runs dist/ only then.
// Plain JavaScript on node's own modules: it runs before anything is built or compiled.
//
// "Current": the same source files as when the build started (a digest of their paths, so an
// added, removed or renamed file counts whatever its time), none of them changed since, and no
// watched package file changed since (dist/build-info.json). Tests are not compiled and do not
// count; nor do `build` folders (the native library) and node_modules. Where the sources are
// absent (a container image holds dist/ only) the build is current by definition.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Folders never compiled: the native library's output and installed packages. */
const skippedDirs = new Set(['build', 'node_modules']);

/** dist/build-info.json under root, or undefined when there is no (readable) build. */
export function readBuildInfo(root) {
  try {
    const info = JSON.parse(readFileSync(join(root, 'dist', 'build-info.json'), 'utf8'));
    const valid = Number.isFinite(info.startedAtMs) && typeof info.sourcesDigest === 'string'
      && Array.isArray(info.sourceDirs) && Array.isArray(info.watchedFiles);
    return valid ? info : undefined;
  } catch {
    return undefined;
  }
}

function walk(root, relativeDir, out) {
  let entries;
  try {
    entries = readdirSync(join(root, relativeDir), { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = `${relativeDir}/${entry.name}`;
    if (entry.isDirectory()) {
      if (!skippedDirs.has(entry.name)) walk(root, path, out);
    } else if (!entry.name.endsWith('.test.ts')) {
      out.paths.push(path);
      out.newestMtimeMs = Math.max(out.newestMtimeMs, statSync(join(root, path)).mtimeMs);
    }
  }
}

/** The files the build compiles or copies under sourceDirs: a digest of their paths and the newest mtime. */
export function sourceListing(root, sourceDirs) {
  const out = { paths: [], newestMtimeMs: 0 };
  for (const dir of sourceDirs) walk(root, dir, out);
  const digest = createHash('sha256').update(out.paths.sort().join('\n')).digest('hex');
  return { digest, newestMtimeMs: out.newestMtimeMs, fileCount: out.paths.length };
}

function mtimeMsOrZero(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/** True when the sources under root are those of the build described by info, unchanged since it started. */
export function buildIsCurrent(root, info) {
  const listing = sourceListing(root, info.sourceDirs);
  // No sources at all: an installed image or package that ships dist/ alone.
  if (listing.fileCount === 0) return true;
  return listing.digest === info.sourcesDigest && listing.newestMtimeMs <= info.startedAtMs
    && !info.watchedFiles.some((file) => mtimeMsOrZero(join(root, file)) > info.startedAtMs);
}
