#!/usr/bin/env node
// The `sdc` command line. It runs the JavaScript in dist/ (`npm run build`, also run by `npm ci`
// through `prepare`) when that build is current for the sources beside it (bin/build-state.js),
// and otherwise compiles the TypeScript sources on load with tsx: a checkout being edited runs
// what is in it, an installed one starts in a fraction of the time (tsx costs seconds of CPU per
// call, even for --help). SDC_FROM_SOURCE=1 forces the sources (under `npm test`, the runner's
// compiled mirror of them; see testMirrorMain).
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildIsCurrent, readBuildInfo } from './build-state.js';

const root = fileURLToPath(new URL('..', import.meta.url));

async function loadTsx() {
  try {
    return await import('tsx/esm/api');
  } catch {
    return undefined;
  }
}

/**
 * Under `npm test`, these sources as the test files run them: the runner compiles every source
 * once per run into a mirror of the tree (scripts/test-ts-cache.mjs; SDC_TEST_JS_MIRROR, its first
 * line, for the checkout SDC_TEST_JS_SOURCES), so a test that runs `sdc` from the sources (an
 * edited checkout, or SDC_FROM_SOURCE=1) gets the code under test without tsx's seconds of CPU per
 * call. Undefined elsewhere, for another checkout (an installed copy), or when the mirror lacks it.
 */
function testMirrorMain() {
  const mirror = process.env.SDC_TEST_JS_MIRROR?.split('\n')[0];
  const sources = process.env.SDC_TEST_JS_SOURCES;
  if (!mirror || !sources || resolve(sources) !== resolve(root)) return undefined;
  const main = join(mirror, 'cli', 'main.js');
  return existsSync(main) ? main : undefined;
}

async function loadMain() {
  const info = process.env.SDC_FROM_SOURCE === '1' ? undefined : readBuildInfo(root);
  if (info !== undefined && buildIsCurrent(root, info)) return import('../dist/cli/main.js');
  const mirrored = testMirrorMain();
  if (mirrored !== undefined) {
    // Stack traces name the TypeScript lines, as under tsx (the mirror's files carry inline source maps).
    process.setSourceMapsEnabled(true);
    return import(pathToFileURL(mirrored).href);
  }
  const tsx = await loadTsx();
  if (tsx !== undefined) {
    tsx.register();
    return import('../cli/main.ts');
  }
  if (info !== undefined) {
    // A production install without tsx whose sources were touched: the build is still the best there is.
    process.stderr.write('sdc: note: dist/ is older than the sources and tsx is not installed; running dist/ (npm run build to refresh)\n');
    return import('../dist/cli/main.js');
  }
  process.stderr.write('sdc: no build in dist/ and tsx is not installed: run `npm ci` (or `npm run build` with the dev dependencies)\n');
  process.exit(1);
}

const { main } = await loadMain();
process.exitCode = await main(process.argv.slice(2));
