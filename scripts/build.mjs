// npm run build (and `prepare`, so every `npm ci` / `npm install` builds): compiles the
// TypeScript sources to JavaScript in dist/, so that `sdc` starts without compiling anything
// (tsx took about 3 s of CPU per call, even for --help). bin/sdc.js runs dist/ when it is current.
//
// Plain JavaScript on purpose: it must run before anything is built and without tsx.
//
// Steps: compile into a scratch folder beside dist/, copy the files the code reads at run time
// through import.meta.url (scenario JSON, the kernel contract), write dist/package.json (the
// version `sdc --version` reads, and "type": "module") and dist/build-info.json (what
// bin/sdc.js compares the sources against), then swap the scratch folder in. A failed build
// leaves the previous dist/ untouched; a removed source file leaves no stale module behind.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { sourceListing } from '../bin/build-state.js';
import { buildViewer } from './build-viewer.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
// --out-dir DIR builds elsewhere (test/packaging builds into a temporary folder); default dist/.
const { values: cliOptions } = parseArgs({ options: { 'out-dir': { type: 'string' } } });
const distDir = cliOptions['out-dir'] === undefined ? join(root, 'dist') : resolve(cliOptions['out-dir']);
/** The folders compiled, as in tsconfig.build.json; bin/sdc.js watches the same list (build-info.json). */
const sourceDirs = ['core', 'runtime', 'trust', 'server', 'agent', 'kernel', 'sim', 'chaos', 'bench', 'cli'];
/**
 * Not copied: the C sources and the native library stay in the package's own kernel/native/, which
 * kernel/native/build.ts resolves from dist/ too (one library for the built and the tsx CLI).
 */
const assetSkipDirs = new Set(['node_modules', 'build', 'native']);
/** tsc on this repo takes about 10 s of CPU; a run beyond this has hung. */
const compileTimeoutMs = 600_000;

function typescriptCompiler() {
  try {
    return createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
  } catch {
    return undefined;
  }
}

/** Every file under dir that the code may read at run time: anything but TypeScript. */
function copyAssets(fromDir, toDir) {
  let count = 0;
  for (const entry of readdirSync(fromDir, { withFileTypes: true })) {
    const from = join(fromDir, entry.name);
    if (entry.isDirectory()) {
      if (!assetSkipDirs.has(entry.name)) count += copyAssets(from, join(toDir, entry.name));
    } else if (entry.isFile() && !entry.name.endsWith('.ts')) {
      mkdirSync(toDir, { recursive: true });
      cpSync(from, join(toDir, entry.name));
      count += 1;
    }
  }
  return count;
}

function compile(tsc, outDir) {
  // --noCheck: emit only. `npm run check` type-checks (CI runs it); checking again here would
  // double the install time, and a type error must not stop an install that otherwise works.
  const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--noCheck', '--outDir', outDir],
    { cwd: root, stdio: 'inherit', timeout: compileTimeoutMs });
  if (result.status !== 0) throw new Error(`tsc exited with ${result.signal ?? result.status}${result.error ? `: ${result.error.message}` : ''}`);
}

function writeMetadata(outDir, startedAtMs, sourcesDigest) {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  // cli/main.ts reads the version from '../package.json' beside it, which from dist/cli/ is this file.
  writeFileSync(join(outDir, 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, private: true, type: 'module' }, null, 2) + '\n');
  // Sources changed after startedAtMs, or another set of source files, make the build stale
  // (bin/build-state.js); a change during the build counts.
  const info = { startedAtMs, sourcesDigest, sourceDirs, watchedFiles: ['package.json', 'tsconfig.json', 'tsconfig.build.json'] };
  writeFileSync(join(outDir, 'build-info.json'), JSON.stringify(info, null, 2) + '\n');
}

function build() {
  const tsc = typescriptCompiler();
  if (tsc === undefined) {
    // A production install (npm ci --omit=dev) has no compiler; it runs a dist/ built elsewhere.
    process.stderr.write('build: typescript is not installed (production install?); dist/ left as it is\n');
    return 0;
  }
  const startedAtMs = Date.now();
  const { digest } = sourceListing(root, sourceDirs);
  const scratch = join(dirname(distDir), `.dist-build-${process.pid}`);
  rmSync(scratch, { recursive: true, force: true });
  try {
    compile(tsc, scratch);
    const assets = sourceDirs.reduce((sum, dir) => sum + copyAssets(join(root, dir), join(scratch, dir)), 0);
    writeMetadata(scratch, startedAtMs, digest);
    // The operator console, served by the control plane from dist/viewer/ (docs/viewer.md).
    if (buildViewer({ outDir: join(scratch, 'viewer') }) === undefined) process.stderr.write('build: esbuild is not installed; the console is not built\n');
    rmSync(distDir, { recursive: true, force: true });
    renameSync(scratch, distDir);
    process.stdout.write(`build: ${relative(process.cwd(), distDir) || 'dist'} compiled, ${assets} assets copied, in ${((Date.now() - startedAtMs) / 1000).toFixed(1)} s\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`build: ${error.message}\n`);
    return 1;
  } finally {
    if (existsSync(scratch)) rmSync(scratch, { recursive: true, force: true });
  }
}

process.exitCode = build();
