#!/usr/bin/env node
// The `sdc` command line. It runs the JavaScript in dist/ (`npm run build`, also run by `npm ci`
// through `prepare`) when that build is current, and otherwise compiles the TypeScript sources on
// load with tsx: a checkout being edited runs what is in it, an installed one starts in a fraction
// of the time (tsx costs seconds of CPU per call, even for --help).
//
// "Current": no source file, folder or package file changed since the build started
// (dist/build-info.json). Folder times count too, so an added, removed or renamed file is seen.
// Tests are not compiled and do not count. Where the sources are absent (a container image holds
// dist/ only) the build is current by definition. SDC_FROM_SOURCE=1 forces tsx.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function readBuildInfo() {
  try {
    return JSON.parse(readFileSync(join(root, 'dist', 'build-info.json'), 'utf8'));
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
      if (entry.name !== 'build' && entry.name !== 'node_modules' && changedSince(path, sinceMs)) return true;
    } else if (!entry.name.endsWith('.test.ts') && mtimeMsOrZero(path) > sinceMs) {
      return true;
    }
  }
  return false;
}

function buildIsCurrent(info) {
  return !info.sourceDirs.some((dir) => changedSince(join(root, dir), info.startedAtMs))
    && !info.watchedFiles.some((file) => mtimeMsOrZero(join(root, file)) > info.startedAtMs);
}

async function loadTsx() {
  try {
    return await import('tsx/esm/api');
  } catch {
    return undefined;
  }
}

async function loadMain() {
  const info = process.env.SDC_FROM_SOURCE === '1' ? undefined : readBuildInfo();
  if (info !== undefined && buildIsCurrent(info)) return import('../dist/cli/main.js');
  const tsx = await loadTsx();
  if (tsx !== undefined) {
    tsx.register();
    return import('../cli/main.ts');
  }
  if (info !== undefined) {
    // A production install without tsx whose sources were touched: the build is still the best we have.
    process.stderr.write('sdc: note: dist/ is older than the sources and tsx is not installed; running dist/ (npm run build to refresh)\n');
    return import('../dist/cli/main.js');
  }
  process.stderr.write('sdc: no build in dist/ and tsx is not installed: run `npm ci` (or `npm run build` with the dev dependencies)\n');
  process.exit(1);
}

const { main } = await loadMain();
process.exitCode = await main(process.argv.slice(2));
