import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findViolations } from '../core/purity.test.js';

/**
 * The agent core is as pure as the session core: agent/agent-core.ts and every module it
 * imports, transitively, use no timers, clock, OS randomness or node: modules. Time, randomness,
 * hashing and transport come in through the ports (core/ports/ports.ts), so the simulator runs
 * thousands of agent cores on virtual time. The rules are core/purity.test.ts's, with the agent's
 * and the kernel bridge's own files allowed beside core/.
 */
const agentDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(agentDir, '..');
const pureDirs = [join(repoRoot, 'core'), agentDir, join(repoRoot, 'kernel')];
const agentCore = join(agentDir, 'agent-core.ts');

/** Relative imports and re-exports, type-only ones too (stricter than the runtime graph). */
const relativeImport = /\bfrom\s+['"](\.[^'"]+)['"]|\bimport\s*\(\s*['"](\.[^'"]+)['"]|^\s*import\s+['"](\.[^'"]+)['"]/gm;

/** Every source file reached from `entry` through relative imports, `entry` included. */
function importClosure(entry: string): string[] {
  const seen = new Set<string>();
  const pending = [entry];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
    for (const match of code.matchAll(relativeImport)) {
      const specifier = (match[1] ?? match[2] ?? match[3])!;
      pending.push(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')));
    }
  }
  return [...seen].sort();
}

test('the agent core and every module it imports do no I/O, read no clock and import no node: module', () => {
  const files = importClosure(agentCore);
  for (const expected of ['agent/agent-core.ts', 'agent/command-journal.ts', 'agent/opcode-executor.ts', 'core/ports/ports.ts']) {
    assert.ok(files.some((f) => relative(repoRoot, f) === expected), `${expected} is checked`);
  }
  const violations = files.flatMap((file) =>
    findViolations(readFileSync(file, 'utf8'), file, pureDirs).map((p) => `${relative(repoRoot, file)}: ${p}`));
  assert.deepEqual(violations, []);
});

test('the agent checker catches node: modules, runtime adapters, timers and the clock in agent code', () => {
  const bad = [
    "import { createHash } from 'node:crypto';", "import { systemClock } from '../runtime/system.js';",
    "import { x } from '../trust/device-profile.js';", 'setTimeout(f, 1)', 'const t = Date.now();',
  ];
  for (const line of bad) assert.notDeepEqual(findViolations(line, agentCore, pureDirs), [], line);
  const good = [
    "import { nobleSha256 } from '../core/crypto/sha256-noble.js';", "import type { CommandJournal } from './command-journal.js';",
    "import { kernelBridgeLimits } from '../kernel/bridge/kernel-bridge.js';",
  ];
  for (const line of good) assert.deepEqual(findViolations(line, agentCore, pureDirs), [], line);
});
