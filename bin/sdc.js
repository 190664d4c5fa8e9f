#!/usr/bin/env node
// The `sdc` command line. It runs the JavaScript in dist/ (`npm run build`, also run by `npm ci`
// through `prepare`) when that build is current for the sources beside it (bin/build-state.js),
// and otherwise compiles the TypeScript sources on load with tsx: a checkout being edited runs
// what is in it, an installed one starts in a fraction of the time (tsx costs seconds of CPU per
// call, even for --help). SDC_FROM_SOURCE=1 forces tsx.
import { fileURLToPath } from 'node:url';
import { buildIsCurrent, readBuildInfo } from './build-state.js';

const root = fileURLToPath(new URL('..', import.meta.url));

async function loadTsx() {
  try {
    return await import('tsx/esm/api');
  } catch {
    return undefined;
  }
}

async function loadMain() {
  const info = process.env.SDC_FROM_SOURCE === '1' ? undefined : readBuildInfo(root);
  if (info !== undefined && buildIsCurrent(root, info)) return import('../dist/cli/main.js');
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
