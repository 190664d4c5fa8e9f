import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The sans-IO rule, checked (TigerBeetle's tidy.zig): code under core/ never touches sockets,
 * files, timers, the OS clock or OS randomness, and imports nothing outside core/. Time,
 * randomness and crypto come in through the ports (core/ports/ports.ts). Tests may read files
 * and use node:test, so *.test.ts files are held only to the folder rule
 * (test/architecture/import-rules.test.ts).
 */
const coreDir = dirname(fileURLToPath(import.meta.url));

const forbiddenCalls: ReadonlyArray<readonly [RegExp, string]> = [
  [/\bDate\.now\s*\(/, 'Date.now()'],
  [/\bnew\s+Date\s*\(\s*\)/, 'new Date() without a time'],
  [/\bMath\.random\s*\(/, 'Math.random()'],
  [/\b(setTimeout|setInterval|setImmediate|clearTimeout|clearInterval|queueMicrotask)\s*\(/, 'timers'],
  [/\bperformance\.now\s*\(/, 'performance.now()'],
  [/\bprocess\./, 'process'],
  [/\b(globalThis\.)?crypto\.(getRandomValues|randomUUID|subtle)\b/, 'Web Crypto'],
  [/\bfetch\s*\(/, 'fetch'],
  [/\brequire\s*\(/, 'require'],
];

/** Packages core/ may import: pure computation only (schemas, Ed25519 and SHA-2 in JS). */
const allowedPackages = new Set([
  '@sinclair/typebox', '@sinclair/typebox/compiler', '@noble/ed25519', '@noble/hashes/sha2.js',
  // The session-key primitives (core/crypto/session-crypto-noble.ts): pure JS, no I/O.
  '@noble/curves/ed25519.js', '@noble/hashes/hkdf.js', '@noble/hashes/hmac.js',
]);
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/**
 * Returns the rule violations in one source file's text. Relative imports must stay inside one
 * of `pureDirs` (core/ alone by default; agent/purity.test.ts also allows the agent core's own files).
 */
export function findViolations(source: string, filePath: string, pureDirs: readonly string[] = [coreDir]): string[] {
  const problems: string[] = [];
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
  for (const [pattern, name] of forbiddenCalls) if (pattern.test(code)) problems.push(name);
  for (const match of code.matchAll(/\bfrom\s+['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]/gm)) {
    const specifier = (match[1] ?? match[2] ?? match[3])!;
    if (specifier.startsWith('.')) {
      const target = resolve(dirname(filePath), specifier);
      if (pureDirs.every((dir) => relative(dir, target).startsWith('..'))) problems.push(`imports ${specifier} (outside ${folderNames(pureDirs)})`);
    } else if (builtins.has(specifier) || specifier.startsWith('node:')) {
      problems.push(`imports the Node built-in ${specifier}`);
    } else if (!allowedPackages.has(specifier)) {
      problems.push(`imports the package ${specifier} (not on the pure allow-list)`);
    }
  }
  return problems;
}

function folderNames(dirs: readonly string[]): string {
  return dirs.map((dir) => `${relative(dirname(coreDir), dir)}/`).join(', ');
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') ? [path] : [];
  });
}

test('core/ does no I/O, reads no clock or OS randomness, and imports nothing outside core/', () => {
  const files = sourceFiles(coreDir);
  for (const part of ['protocol', 'errors', 'crypto', 'ports', 'random', 'time']) {
    assert.ok(files.some((f) => relative(coreDir, f).startsWith(`${part}/`)), `core/${part}/ sources were found`);
  }
  const violations = files.flatMap((file) =>
    findViolations(readFileSync(file, 'utf8'), file).map((p) => `core/${relative(coreDir, file)}: ${p}`));
  assert.deepEqual(violations, []);
});

test('the checker catches each forbidden thing', () => {
  const file = join(coreDir, 'protocol', 'example.ts');
  const bad = [
    'const t = Date.now();', 'const d = new Date();', 'Math.random()', 'setTimeout(f, 1)', 'process.env.X',
    "import { readFileSync } from 'node:fs';", "import net from 'net';", "import x from '../../runtime/ed25519-node.js';",
    "import ws from 'ws';", "import { x } from '../../server/stores/index.js';", "const m = await import('node:crypto');",
    'crypto.getRandomValues(b)', 'performance.now()', "import '../../runtime/system.js';", 'queueMicrotask(f)',
  ];
  for (const line of bad) assert.notDeepEqual(findViolations(line, file), [], line);
  const good = [
    "import { SdcError } from '../errors/index.js';", "import { Type } from '@sinclair/typebox';",
    'const d = new Date(nowMs);', "import { ensureBytes } from '../crypto/bytes.js';", '// Date.now() is never called here',
    "import { x } from './messages/catalog.js';", "import type { Clock } from '../ports/ports.js';",
  ];
  for (const line of good) assert.deepEqual(findViolations(line, file), [], line);
});
