import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isErrorCode } from '../core/errors/index.js';
import { viewerErrors } from '../core/errors/codes/viewer.js';

const viewerDir = fileURLToPath(new URL('.', import.meta.url));

/** Every .ts of viewer/ (components included), tests left out. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

test('every code the console shows of its own is in the error registry (docs/errors.md), and every registered one is used', () => {
  const used = new Set<string>();
  for (const file of sources(viewerDir)) for (const match of readFileSync(file, 'utf8').matchAll(/'(VIEWER_[A-Z0-9_]+)'/g)) used.add(match[1]!);
  assert.ok(used.size >= 5, `found ${[...used].join(', ')}`);
  for (const code of used) assert.ok(isErrorCode(code), `${code} is shown by the console but not registered in core/errors/codes/viewer.ts`);
  assert.deepEqual(Object.keys(viewerErrors).filter((code) => !used.has(code)), [], 'registered but never shown');
});
