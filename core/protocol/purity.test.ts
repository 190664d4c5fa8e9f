import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The sans-IO rule, checked (TigerBeetle's tidy.zig): code under core/protocol/ never touches
 * sockets, files, timers, the OS clock or OS randomness. Time, randomness and crypto come in
 * through parameters (ports.ts). Tests may do what they like, so *.test.ts files are exempt.
 */
const protocolDir = dirname(fileURLToPath(import.meta.url));
const coreDir = resolve(protocolDir, '..');

const forbiddenCalls: ReadonlyArray<readonly [RegExp, string]> = [
  [/\bDate\.now\s*\(/, 'Date.now()'],
  [/\bnew\s+Date\s*\(\s*\)/, 'new Date() without a time'],
  [/\bMath\.random\s*\(/, 'Math.random()'],
  [/\b(setTimeout|setInterval|setImmediate|clearTimeout|clearInterval)\s*\(/, 'timers'],
  [/\bperformance\.now\s*\(/, 'performance.now()'],
  [/\bprocess\./, 'process'],
  [/\b(globalThis\.)?crypto\.(getRandomValues|randomUUID|subtle)\b/, 'Web Crypto'],
  [/\bfetch\s*\(/, 'fetch'],
  [/\brequire\s*\(/, 'require'],
];

/** Pure modules outside core/protocol that it may import; they are held to the same rule. */
const pureModules = [join(coreDir, 'crypto', 'bytes.ts')];

/** Packages the protocol layer may import: pure computation only. */
const allowedPackages = new Set(['@sinclair/typebox', '@sinclair/typebox/compiler']);
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Returns the rule violations in one source file's text. Exported logic is tested below. */
export function findViolations(source: string, filePath: string): string[] {
  const problems: string[] = [];
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
  for (const [pattern, name] of forbiddenCalls) if (pattern.test(code)) problems.push(`${name}`);
  for (const match of code.matchAll(/\bfrom\s+['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]/g)) {
    const specifier = (match[1] ?? match[2])!;
    if (specifier.startsWith('.')) {
      const target = resolve(dirname(filePath), specifier);
      const inside = [protocolDir, join(coreDir, 'errors')].some((dir) => !relative(dir, target).startsWith('..'))
        || pureModules.includes(target.replace(/\.js$/, '.ts'));
      if (!inside) problems.push(`imports ${specifier} (outside core/protocol and core/errors)`);
    } else if (builtins.has(specifier) || specifier.startsWith('node:')) {
      problems.push(`imports the Node built-in ${specifier}`);
    } else if (!allowedPackages.has(specifier)) {
      problems.push(`imports the package ${specifier} (not on the pure allow-list)`);
    }
  }
  return problems;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') ? [path] : [];
  });
}

test('core/protocol/ does no I/O and reads no clock or OS randomness', () => {
  const files = [...sourceFiles(protocolDir), ...pureModules];
  assert.ok(files.length >= 5, 'the protocol sources were found');
  const violations = files.flatMap((file) =>
    findViolations(readFileSync(file, 'utf8'), file).map((p) => `${relative(coreDir, file)}: ${p}`));
  assert.deepEqual(violations, []);
});

test('the checker catches each forbidden thing', () => {
  const file = join(protocolDir, 'example.ts');
  const bad = [
    'const t = Date.now();', 'const d = new Date();', 'Math.random()', 'setTimeout(f, 1)', 'process.env.X',
    "import { readFileSync } from 'node:fs';", "import net from 'net';", "import x from '../crypto/ed25519-node.js';",
    "import ws from 'ws';", "import { x } from '../crypto/ed25519-node.js';", "const m = await import('node:crypto');", 'crypto.getRandomValues(b)', 'performance.now()',
  ];
  for (const line of bad) assert.notDeepEqual(findViolations(line, file), [], line);
  const good = [
    "import { SdcError } from '../errors/index.js';", "import { Type } from '@sinclair/typebox';",
    'const d = new Date(nowMs);', "import { ensureBytes } from '../crypto/bytes.js';", '// Date.now() is never called here', "import { x } from './messages/catalog.js';",
  ];
  for (const line of good) assert.deepEqual(findViolations(line, file), [], line);
});
