// The TypeScript-to-JavaScript cache that `npm test` runs the test files from (instead of tsx).
//
// Why: every test file runs in a process of its own, and tsx cost each of them about 0.45 s of
// CPU before the first test (its hooks thread loads esbuild and tsx's own bundle; `node --import
// tsx -e ""` 0.33 s user + 0.16 s system against 0.1 s for plain node, measured 3 December on
// Node 20.20). Over 350 files that is about 160 s, a tenth of the suite's CPU. Here the runner
// compiles every changed source once, up front, with the same esbuild tsx uses and the options
// tsx passes it, and each test process's hooks (scripts/test-ts-hooks.mjs) only read the result:
// a stat and a read per module.
//
// import.meta.url stays the source file's URL (the hooks serve the compiled text under the
// .ts URL), so fixtures, docs and child scripts found relative to a test resolve as before.
//
// Each cached file ends with a line naming its source's mtime and size; a source whose
// stat differs is compiled again (by the hooks, when the runner did not). Writes go through a
// temporary file and a rename, so concurrent test processes never read half a file.
import { mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

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
const stampPrefix = '//sdc-test-js ';
let esbuild;
let tsconfigRaw;

function loadEsbuild() {
  // esbuild is tsx's compiler, a devDependency of ours in its own right (package.json).
  esbuild ??= createRequire(join(root, 'package.json'))('esbuild');
  tsconfigRaw ??= JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8'));
  return esbuild;
}

/** The cached JavaScript's path: the source's own path under cacheDir, or (outside the repository) a digest of it. */
export function cachePathOf(sourcePath) {
  const inRepository = relative(root, sourcePath);
  if (!inRepository.startsWith('..') && !isAbsolute(inRepository)) return join(cacheDir, inRepository) + '.js';
  // A test's own scratch module (in a temporary folder): never a path that climbs out of cacheDir.
  return join(cacheDir, 'outside', `${createHash('sha256').update(sourcePath).digest('hex').slice(0, 32)}-${basename(sourcePath)}.js`);
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

/** Compiles sourcePath as tsx would (same esbuild, same options) and caches it; returns the JavaScript. */
export function compileToCache(sourcePath, stat = statSync(sourcePath)) {
  const source = readFileSync(sourcePath, 'utf8');
  const out = loadEsbuild().transformSync(source, {
    loader: 'ts',
    format: 'esm',
    target: `node${process.versions.node}`,
    sourcefile: sourcePath,
    sourcemap: 'inline',
    // As tsx: function and class names survive, so errors and tests that name them read the same.
    keepNames: true,
    minifyWhitespace: true,
    tsconfigRaw,
  });
  const text = out.code + stampOf(stat);
  const cachePath = cachePathOf(sourcePath);
  mkdirSync(dirname(cachePath), { recursive: true });
  const temporary = `${cachePath}.${process.pid}.${Math.floor(Math.random() * 1e9)}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, cachePath);
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

/** Compiles every source whose cache is missing or stale; returns how many were compiled and how many there are. */
export function refreshCache() {
  const sources = sourceDirs.flatMap((d) => collectTs(join(root, d), []));
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
