#!/usr/bin/env node
// Runs every *.test.ts under the source folders with node's own test runner.
// Node 20 has no glob support in `--test`, so the file list is collected here.
// Usage: npm test [-- <substring> ...]   (only files whose path contains a substring)
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const sourceDirs = ['core', 'agent', 'kernel', 'sim', 'chaos', 'bench', 'viewer', 'cli', 'test'];
const skipDirs = new Set(['node_modules', 'build', 'data']);

function collect(dir, out) {
  let entries;
  try { entries = readdirSync(dir); } catch { return out; }
  for (const name of entries) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (!skipDirs.has(name)) collect(path, out);
    } else if (name.endsWith('.test.ts')) {
      out.push(relative(root, path));
    }
  }
  return out;
}

const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const files = sourceDirs.flatMap((d) => collect(join(root, d), [])).sort()
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const result = spawnSync(process.execPath, [
  '--import', 'tsx', '--test', `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`,
  '--test-timeout=300000', ...files,
], { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
