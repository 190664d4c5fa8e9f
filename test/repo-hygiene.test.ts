import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The directories README's walkthrough writes to (`--dir D` of pki, user, serve, agent). */
async function walkthroughDirs(): Promise<string[]> {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const dirs = [...readme.matchAll(/--dir ([^\s`]+)/g)].map((m) => m[1]!).filter((d) => d !== 'D' && d !== 'A' && d !== 'N');
  return [...new Set(dirs)];
}

/**
 * Whether a .dockerignore excludes `path`. Docker's rules, for the patterns we use: each pattern
 * is anchored at the context root, `*` stays within one path segment, `**` spans any number, and
 * excluding a directory excludes everything under it.
 */
function dockerIgnores(patterns: readonly string[], path: string): boolean {
  const segments = path.split('/');
  const prefixes = segments.map((_, i) => segments.slice(0, i + 1).join('/'));
  return patterns.some((pattern) => {
    const source = pattern.replace(/\*\*\/|\*|[.+?^${}()|[\]\\]/g, (token) => (token === '**/' ? '(?:[^/]+/)*' : token === '*' ? '[^/]*' : `\\${token}`));
    const regex = new RegExp(`^${source}$`);
    return prefixes.some((prefix) => regex.test(prefix));
  });
}

describe('repository hygiene', () => {
  it('README walkthrough directories and the keys in them are ignored by git and by docker build', async () => {
    const dirs = await walkthroughDirs();
    assert.ok(dirs.includes('data') && dirs.includes('agent-lab-01'), `walkthrough dirs: ${dirs.join(', ')}`);
    const dockerPatterns = (await readFile(new URL('../.dockerignore', import.meta.url), 'utf8'))
      .split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('#'));
    const written = dirs.flatMap((d) => [`${d}/device.key`, `${d}/pki/root-ca.key`, `${d}/db/sdc.sqlite`]);
    for (const path of [...written, 'somewhere/else/stray.key']) {
      const git = spawnSync('git', ['check-ignore', '--no-index', '-q', path], { cwd: root });
      assert.equal(git.status, 0, `.gitignore does not exclude ${path}`);
      assert.ok(dockerIgnores(dockerPatterns, path), `.dockerignore does not exclude ${path}`);
    }
    // The sources stay in: the agent sources are agent/, not an agent directory.
    for (const path of ['agent/agent-runtime.ts', 'trust/key-files.ts', 'package.json']) {
      assert.notEqual(spawnSync('git', ['check-ignore', '--no-index', '-q', path], { cwd: root }).status, 0, path);
      assert.ok(!dockerIgnores(dockerPatterns, path), `.dockerignore excludes ${path}`);
    }
  });
});
