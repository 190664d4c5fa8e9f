import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Every repository path the documentation names exists, so a file that moves takes its mentions
 * with it (docs that point at a file that is gone send a newcomer nowhere). A path is a top-level
 * folder of the repository followed by `/...`; a `*` in its last segment must match at least one
 * file; a `<placeholder>` ends the path there.
 */
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const topFolders = ['agent', 'bench', 'bin', 'chaos', 'cli', 'core', 'docs', 'kernel', 'runtime', 'scripts', 'server', 'sim', 'test', 'trust', 'viewer'];

/** Paths the docs may name that a fresh checkout does not have, and why. */
const notInCheckout: Readonly<Record<string, string>> = Object.freeze({
  'kernel/native/build/': 'the native library build output (gitignored), made by the kernel build',
});

/** Not preceded by a path character, so `../shared/x` or `D/pki/x` are not taken for repository paths. */
const pathPattern = new RegExp(`(?<![\\w./<>@-])((?:${topFolders.join('|')})/[\\w./*-]*)`, 'g');

/** Repository paths named in `text`, without trailing sentence punctuation. */
export function pathsNamedIn(text: string): string[] {
  const paths = new Set<string>();
  for (const match of text.matchAll(pathPattern)) paths.add(match[1]!.replace(/[.]+$/, ''));
  return [...paths];
}

/** The layer table of docs/architecture.md names sub-folders and files relative to their layer (`errors/` in the `core/` row). */
export function layerTablePaths(text: string): string[] {
  const paths: string[] = [];
  for (const row of text.split('\n')) {
    const layer = /^\| `([a-z]+)\/` \|([^|]*)\|/.exec(row);
    if (layer === null) continue;
    for (const name of layer[2]!.matchAll(/`([\w.-]+(?:\/|\.json|\.ts|\.md))`/g)) paths.push(`${layer[1]}/${name[1]}`);
  }
  return paths;
}

function exists(path: string): boolean {
  // A folder made by a build counts with everything under it (kernel/native/build/release/).
  if (Object.keys(notInCheckout).some((folder) => path.startsWith(folder))) return true;
  if (!path.includes('*')) return existsSync(join(repoRoot, path));
  const directory = join(repoRoot, dirname(path));
  const pattern = new RegExp(`^${basename(path).split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return existsSync(directory) && readdirSync(directory).some((name) => pattern.test(name));
}

function markdownFiles(directory: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) return markdownFiles(path);
    return name.endsWith('.md') ? [path] : [];
  });
}

test('the path finder takes repository paths, globs and placeholders, and leaves other paths alone', () => {
  const text = 'See `core/protocol/envelope.ts`, trust/jwt-*.ts and kernel/native/build/<variant>/ (gitignored), '
    + 'not ../shared/seed/x.txt, D/pki/root-ca.pem or https://host/core/x. Moved: sim/gone.test.ts.';
  assert.deepEqual(pathsNamedIn(text), ['core/protocol/envelope.ts', 'trust/jwt-*.ts', 'kernel/native/build/', 'sim/gone.test.ts']);
  assert.deepEqual(pathsNamedIn(text).filter((path) => !exists(path)), ['sim/gone.test.ts']);
  assert.deepEqual(layerTablePaths('| `kernel/` | the `contract.json`, `bridge/` and `--flags` | `core/` |'), ['kernel/contract.json', 'kernel/bridge/']);
});

test('every repository path named in README.md and docs/ exists', () => {
  const documents = [join(repoRoot, 'README.md'), ...markdownFiles(join(repoRoot, 'docs'))];
  const missing: string[] = [];
  let checked = 0;
  for (const document of documents) {
    const text = readFileSync(document, 'utf8');
    const named = [...pathsNamedIn(text), ...(basename(document) === 'architecture.md' ? layerTablePaths(text) : [])];
    checked += named.length;
    for (const path of named) if (!exists(path)) missing.push(`${relative(repoRoot, document)}: ${path}`);
  }
  assert.deepEqual(missing, []);
  // The finder found the docs' paths at all (hundreds today): an empty scan would pass for the wrong reason.
  assert.ok(checked > 100, `only ${checked} paths found in ${documents.length} documents`);
});

test('docs/architecture.md names every layer folder and its sub-folders that exist', () => {
  const text = readFileSync(join(repoRoot, 'docs', 'architecture.md'), 'utf8');
  const table = layerTablePaths(text);
  for (const path of ['core/errors/', 'core/protocol/', 'kernel/bridge/', 'server/control-plane/', 'test/e2e/']) assert.ok(table.includes(path), path);
  for (const path of ['core/protocol/command-decisions.ts', 'server/control-plane/command-repository.ts']) assert.ok(pathsNamedIn(text).includes(path), path);
});
