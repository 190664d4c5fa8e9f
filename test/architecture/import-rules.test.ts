import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The layers of docs/architecture.md, checked over every TypeScript file, tests included:
 * a folder imports only the folders it may build on. The arrows point down the table; none
 * points up, so the protocol core never learns about servers, and the device side never learns
 * about the server side or the testbed.
 */
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Each top-level folder and the top-level folders its files may import (itself included). */
export const allowedImports: Readonly<Record<string, readonly string[]>> = Object.freeze({
  core: ['core'],
  runtime: ['core', 'runtime'],
  trust: ['core', 'runtime', 'trust'],
  kernel: ['core', 'runtime', 'kernel'],
  server: ['core', 'runtime', 'trust', 'server'],
  agent: ['core', 'runtime', 'trust', 'kernel', 'agent'],
  chaos: ['core', 'runtime', 'trust', 'kernel', 'server', 'chaos'],
  sim: ['core', 'runtime', 'trust', 'kernel', 'server', 'agent', 'chaos', 'sim'],
  bench: ['core', 'runtime', 'trust', 'kernel', 'server', 'agent', 'chaos', 'sim', 'bench'],
  viewer: ['core', 'viewer'],
  cli: ['core', 'runtime', 'trust', 'kernel', 'server', 'agent', 'chaos', 'sim', 'bench', 'viewer', 'cli'],
  test: ['core', 'runtime', 'trust', 'kernel', 'server', 'agent', 'chaos', 'sim', 'bench', 'viewer', 'cli', 'bin', 'scripts', 'test'],
  scripts: ['core', 'runtime', 'trust', 'kernel', 'server', 'agent', 'chaos', 'sim', 'bench', 'viewer', 'cli', 'scripts'],
});

function topFolder(path: string): string {
  return relative(repoRoot, path).split(sep)[0]!;
}

/**
 * Static imports and re-exports at the start of a statement (so that import lines quoted inside a
 * test's strings are not taken for imports), side-effect imports, and dynamic imports.
 */
const importPattern = /^\s*(?:import|export)\s[^;'"]*?\bfrom\s+['"](\.[^'"]*)['"]|\bimport\s*\(\s*['"](\.[^'"]*)['"]|^\s*import\s+['"](\.[^'"]*)['"]/gm;

/** Returns the forbidden imports in one file's text, as `specifier (from -> to)`. */
export function forbiddenImports(source: string, filePath: string): string[] {
  const from = topFolder(filePath);
  const allowed = allowedImports[from];
  if (allowed === undefined) return [`${from}/ is not in the layer table`];
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
  const problems: string[] = [];
  for (const match of code.matchAll(importPattern)) {
    const specifier = (match[1] ?? match[2] ?? match[3])!;
    const to = topFolder(resolve(dirname(filePath), specifier));
    if (!allowed.includes(to)) problems.push(`${specifier} (${from}/ -> ${to}/)`);
  }
  return problems;
}

function typeScriptFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    if (name === 'node_modules' || name === 'build' || name.startsWith('.')) return [];
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return typeScriptFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

test('every import follows the layer table, tests included', () => {
  const folders = Object.keys(allowedImports).filter((f) => {
    try { return statSync(join(repoRoot, f)).isDirectory(); } catch { return false; }
  });
  for (const required of ['core', 'runtime', 'trust', 'server', 'agent', 'kernel', 'sim', 'cli']) {
    assert.ok(folders.includes(required), `${required}/ exists`);
  }
  const files = folders.flatMap((f) => typeScriptFiles(join(repoRoot, f)));
  assert.ok(files.length > 100, 'the sources were found');
  const violations = files.flatMap((file) =>
    forbiddenImports(readFileSync(file, 'utf8'), file).map((p) => `${relative(repoRoot, file)}: ${p}`));
  assert.deepEqual(violations, []);
});

test('the named rules hold in the table: server/agent/kernel/core boundaries', () => {
  for (const side of ['server', 'runtime', 'trust']) {
    assert.ok(!allowedImports[side]!.includes('agent') && !allowedImports[side]!.includes('sim'), `${side} never imports agent/ or sim/`);
  }
  assert.ok(!allowedImports.agent!.includes('server') && !allowedImports.agent!.includes('sim'));
  assert.ok(!allowedImports.kernel!.includes('agent'));
  assert.deepEqual(allowedImports.core, ['core']);
});

test('the checker catches an upward import and passes a downward one', () => {
  const at = (path: string) => join(repoRoot, path);
  assert.deepEqual(forbiddenImports("import { x } from '../agent/agent-core.js';", at('server/gateway.ts')), ['../agent/agent-core.js (server/ -> agent/)']);
  assert.notDeepEqual(forbiddenImports("import { x } from '../../sim/run.js';", at('agent/state/a.ts')), []);
  assert.notDeepEqual(forbiddenImports("import { x } from '../agent/x.js';", at('kernel/bridge.ts')), []);
  assert.notDeepEqual(forbiddenImports("const m = await import('../runtime/system.js');", at('core/x.ts')), []);
  assert.notDeepEqual(forbiddenImports("import '../cli/main.js';", at('bench/x.ts')), []);
  assert.deepEqual(forbiddenImports("import { x } from '../core/protocol/envelope.js';", at('server/x.ts')), []);
  assert.deepEqual(forbiddenImports("// import { x } from '../agent/a.js';", at('server/x.ts')), []);
});
