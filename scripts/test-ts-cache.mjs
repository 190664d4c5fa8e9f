// The TypeScript-to-JavaScript cache that `npm test` runs the test files from (instead of tsx).
//
// Why: every test file runs in a process of its own, and tsx cost each of them about 0.45 s of
// CPU before the first test (its hooks thread loads esbuild and tsx's own bundle; `node --import
// tsx -e ""` 0.33 s user + 0.16 s system against 0.1 s for plain node, measured 3 December on
// Node 20.20). Over 350 files that is about 160 s, a tenth of the suite's CPU. Here the runner
// compiles every changed source once, up front, with the same esbuild tsx uses and the options
// tsx passes it.
//
// The cache is a mirror of the source tree: x.ts compiles to <cacheDir>/x.js, at the same path
// relative to the cache folder as x.ts to the repository, so our './x.js' imports (TypeScript's
// NodeNext spelling) find the compiled sibling with node's own resolver. `npm test` runs the test
// files' compiled JavaScript with plain node, no module hooks (scripts/run-tests.mjs): with hooks
// registered, node 20 starts a hooks thread in every process and sends every import of every
// module through it (measured 6 December, see run-tests.mjs). Other processes (children forked
// from the sources through SDC_TS_IMPORT, scratch modules of tests) still run .ts files through
// the hooks of scripts/test-ts-hooks.mjs, which serve the same compiled files.
//
// import.meta.url in the compiled code is the source file's URL (esbuild's define), so fixtures,
// docs and child scripts found relative to a module resolve next to the source as before, and a
// module forks its siblings' .ts sources (runtime/fork-module.ts) as it did. A relative import of
// a file that is not TypeScript (an .mjs script, bin/build-state.js) finds a symbolic link to it in
// the mirror; node follows it, so that module runs from its own path.
//
// Each cached file ends with a line naming its source's mtime and size; a source whose
// stat differs is compiled again (by the runner at the start of a run, or by the hooks). Writes go
// through a temporary file and a rename, so concurrent test processes never read half a file.
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const root = join(fileURLToPath(import.meta.url), '..', '..');
/**
 * Under node_modules: ignored by git, gone with `npm ci`, never mistaken for a source folder. One
 * folder per checkout (a digest of its path): clones that share one node_modules through a link
 * would otherwise overwrite each other's files (correct, by the stamps below, but compiled again
 * every time the other ran).
 */
export const cacheDir = join(root, 'node_modules', '.cache', 'sdc-test-js', createHash('sha256').update(root).digest('hex').slice(0, 16));
/** The source folders with TypeScript that tests import (tsconfig.json's include). */
export const sourceDirs = ['core', 'runtime', 'trust', 'server', 'agent', 'kernel', 'sim', 'chaos', 'bench', 'viewer', 'cli', 'scripts', 'test'];
const skipDirs = new Set(['node_modules', 'build', 'data', 'dist']);
/** v3: the mirror layout, import.meta.url defined as the source's URL, no sourcesContent (files of before are compiled again). */
const stampPrefix = '//sdc-test-js v3 ';
let esbuild;
let tsconfigRaw;

function loadEsbuild() {
  // esbuild is tsx's compiler, a devDependency of ours in its own right (package.json).
  esbuild ??= createRequire(join(root, 'package.json'))('esbuild');
  tsconfigRaw ??= JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8'));
  return esbuild;
}

/**
 * The cached JavaScript's path: in the mirror, the source's own path under cacheDir with .js for
 * .ts; outside the repository, a digest of it.
 */
export function cachePathOf(sourcePath) {
  const inRepository = relative(root, sourcePath);
  if (!inRepository.startsWith('..') && !isAbsolute(inRepository)) return join(cacheDir, inRepository.replace(/\.ts$/, '')) + '.js';
  // A test's own scratch module (in a temporary folder): never a path that climbs out of cacheDir.
  return join(cacheDir, 'outside', `${createHash('sha256').update(sourcePath).digest('hex').slice(0, 32)}-${basename(sourcePath)}.js`);
}

/** The source of a test file in the mirror (cachePathOf's inverse for a repository's .ts), or undefined for any other path. */
export function sourcePathOf(cachePath, cacheFolder = cacheDir, sourceRoot = root) {
  const inCache = relative(cacheFolder, cachePath);
  if (inCache.startsWith('..') || isAbsolute(inCache) || inCache.startsWith('outside') || !inCache.endsWith('.js')) return undefined;
  return join(sourceRoot, `${inCache.slice(0, -'.js'.length)}.ts`);
}

/**
 * The last line of a cached file: its source's mtime and size. Last, not first: a line before the
 * code would shift every line of the inline source map, and stack traces would name the wrong lines.
 */
function stampOf(stat) {
  return `\n${stampPrefix}${stat.mtimeMs} ${stat.size}\n`;
}

/** The cached JavaScript of a source with this stat, or undefined when the cache holds none or an older one. */
function cachedText(cachePath, stat) {
  let text;
  try { text = readFileSync(cachePath, 'utf8'); } catch { return undefined; }
  return text.endsWith(stampOf(stat)) ? text : undefined;
}

/**
 * The files a source imports by a relative path that are not our TypeScript (an .mjs script, a
 * .js of bin/): each gets a symbolic link at its place in the mirror. Read from the source text; a
 * match inside a string or comment at most adds a link that nothing uses.
 */
function linkPlainImports(sourcePath, source) {
  for (const match of source.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = resolve(dirname(sourcePath), match[1]);
    if (target.endsWith('.ts') || (target.endsWith('.js') && existsSync(`${target.slice(0, -'.js'.length)}.ts`)) || !existsSync(target)) continue;
    const inRepository = relative(root, target);
    if (inRepository.startsWith('..') || isAbsolute(inRepository) || inRepository.split(/[\\/]/).includes('node_modules')) continue;
    const link = join(cacheDir, inRepository);
    try {
      lstatSync(link);
      continue;
    } catch {
      // No link yet.
    }
    mkdirSync(dirname(link), { recursive: true });
    try { symlinkSync(target, link); } catch (error) { if (error.code !== 'EEXIST') throw error; }
  }
}

/** Compiles sourcePath as tsx would (same esbuild, same options) and caches it; returns the JavaScript. */
export function compileToCache(sourcePath, stat = statSync(sourcePath)) {
  const source = readFileSync(sourcePath, 'utf8');
  const out = loadEsbuild().transformSync(source, {
    loader: 'ts',
    format: 'esm',
    target: `node${process.versions.node}`,
    sourcefile: sourcePath,
    sourcemap: 'inline',
    // The map without the source text: node maps stack traces from the mappings alone (and reads
    // the source file for the line it prints under an uncaught error); a compiled file half the size.
    sourcesContent: false,
    // As tsx: function and class names survive, so errors and tests that name them read the same.
    keepNames: true,
    minifyWhitespace: true,
    tsconfigRaw,
    // The compiled file lives in the mirror; its code sees the source's URL, as under the hooks.
    define: { 'import.meta.url': JSON.stringify(pathToFileURL(sourcePath).href) },
  });
  const text = out.code + stampOf(stat);
  const cachePath = cachePathOf(sourcePath);
  mkdirSync(dirname(cachePath), { recursive: true });
  const temporary = `${cachePath}.${process.pid}.${Math.floor(Math.random() * 1e9)}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, cachePath);
  if (!cachePath.startsWith(join(cacheDir, 'outside'))) linkPlainImports(sourcePath, source);
  return text;
}

/** The compiled JavaScript of sourcePath: from the cache when it is current, else compiled now. */
export function compiledSource(sourcePath) {
  const stat = statSync(sourcePath);
  const cachePath = cachePathOf(sourcePath);
  return cachedText(cachePath, stat) ?? compileToCache(sourcePath, stat);
}

function collectTs(dir, out) {
  let entries;
  try { entries = readdirSync(dir, { withFileTypes: true }); } catch { return out; }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!skipDirs.has(entry.name)) collectTs(path, out);
    } else if (entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      out.push(path);
    }
  }
  return out;
}

/**
 * The mirror's package.json: the cache sits under node_modules, where node stops looking for the
 * package scope, so without it node would take the compiled .js files for CommonJS.
 */
function writePackageJson() {
  const path = join(cacheDir, 'package.json');
  const text = '{ "type": "module", "private": true }\n';
  let current;
  try { current = readFileSync(path, 'utf8'); } catch { current = undefined; }
  if (current === text) return;
  mkdirSync(cacheDir, { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}

/**
 * Removes the mirror's compiled files whose source is gone (deleted, renamed; and the layout of
 * before the mirror, x.ts.js): node would otherwise still find one where the hooks found nothing.
 */
function removeOrphans(dir, sources) {
  let entries;
  try { entries = readdirSync(dir, { withFileTypes: true }); } catch { return; }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (path !== join(cacheDir, 'outside')) removeOrphans(path, sources);
    } else if (entry.isFile() && entry.name.endsWith('.js')) {
      const source = sourcePathOf(path);
      if (source !== undefined && !sources.has(source)) {
        try { unlinkSync(path); } catch { /* another run removed it */ }
      }
    }
  }
}

/** Compiles every source whose cache is missing or stale; returns how many were compiled and how many there are. */
export function refreshCache() {
  writePackageJson();
  const sources = sourceDirs.flatMap((d) => collectTs(join(root, d), []));
  removeOrphans(cacheDir, new Set(sources));
  let compiled = 0;
  for (const sourcePath of sources) {
    const stat = statSync(sourcePath);
    if (cachedText(cachePathOf(sourcePath), stat) === undefined) {
      compileToCache(sourcePath, stat);
      compiled += 1;
    }
  }
  return { compiled, sources: sources.length };
}
