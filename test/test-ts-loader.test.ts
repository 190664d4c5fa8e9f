import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
// @ts-expect-error: plain JavaScript without declarations (scripts/ runs before anything is built).
import { cachePathOf, cacheDir } from '../scripts/test-ts-cache.mjs';

// npm test runs the test files from JavaScript compiled once (scripts/test-ts-cache.mjs), not
// through tsx. What must hold: an edited source is never served from a stale cache, './x.js'
// finds x.ts, stack traces name the TypeScript lines, and a scratch module outside the repository
// is cached inside the cache folder.
const register = new URL('../scripts/test-ts-register.mjs', import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), 'sdc-ts-loader-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function runModule(path: string): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, ['--import', register, path], { encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('scripts/test-ts-cache.mjs: TypeScript for the test processes', () => {
  it('compiles a module that imports its sibling as ./x.js (x.ts on disk), with types stripped', () => {
    writeFileSync(join(dir, 'sibling.ts'), 'export const answer: number = 41 + 1;\n');
    writeFileSync(join(dir, 'main.ts'), "import { answer } from './sibling.js';\ninterface Shape { n: number }\nconst s: Shape = { n: answer };\nconsole.log(`n=${s.n}`);\n");
    const run = runModule(join(dir, 'main.ts'));
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, 'n=42\n');
  });

  it('compiles an edited source again, even one edited within the same second and of the same size', () => {
    const path = join(dir, 'edited.ts');
    writeFileSync(path, "console.log('first');\n");
    assert.equal(runModule(path).stdout, 'first\n');
    const before = statSync(path);
    writeFileSync(path, "console.log('again');\n");
    assert.equal(statSync(path).size, before.size, 'same size: only the modification time tells them apart');
    // A later modification time than the cached one, as any edit has (set explicitly: the clock may not have moved).
    utimesSync(path, before.atime, new Date(before.mtimeMs + 1_000));
    assert.equal(runModule(path).stdout, 'again\n');
  });

  it('names the TypeScript line in a stack trace (the compiled code carries a source map)', () => {
    const path = join(dir, 'throws.ts');
    writeFileSync(path, 'type Unused = { a: string };\n\n\nfunction fail(): never {\n  throw new Error("planted");\n}\nfail();\n');
    const run = runModule(path);
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5:`), run.stderr);
  });

  it('caches a module outside the repository inside the cache folder, and a repository module under its own path', () => {
    const outside = cachePathOf(join(dir, 'main.ts')) as string;
    assert.ok(outside.startsWith(join(cacheDir as string, 'outside')), outside);
    const inside = cachePathOf(fileURLToPath(import.meta.url)) as string;
    assert.equal(inside, join(cacheDir as string, 'test', 'test-ts-loader.test.js'));
    assert.ok((cacheDir as string).startsWith(join(fileURLToPath(new URL('..', import.meta.url)), 'node_modules', '.cache', 'sdc-test-js')), cacheDir);
  });
});
