// The built CLI (issue 9, start-up): `sdc` runs from dist/ without tsx, as an installed package or
// the container image does, and --help loads none of the server's libraries; bin/build-state.js
// tells a current build from a stale one.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildIsCurrent, readBuildInfo, sourceListing } from '../../bin/build-state.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
/** A build is one tsc run; generous for a machine busy with other work. */
const buildTimeoutMs = 600_000;
const runTimeoutMs = 120_000;
/** Libraries that only running a service needs; `sdc --help` must load none of them. */
const serviceLibraries = ['fastify', 'ioredis', '@peculiar/x509', 'koffi', 'ws', 'tsx', 'esbuild'];

/**
 * A package root like a production install: bin/, dist/ and node_modules without tsx and
 * esbuild (so a fall-back to the sources could not even start), and no TypeScript sources.
 */
function productionLikeRoot(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'sdc-built-cli-'));
  cpSync(join(root, 'bin'), join(dir, 'bin'), { recursive: true });
  cpSync(join(root, 'package.json'), join(dir, 'package.json'));
  const info = readBuildInfo(root);
  if (info !== undefined && buildIsCurrent(root, info)) {
    symlinkSync(join(root, 'dist'), join(dir, 'dist'));
  } else {
    // The checkout's dist/ is missing or stale (sources being edited): build one for this test.
    const build = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs'), '--out-dir', join(dir, 'dist')], { encoding: 'utf8', timeout: buildTimeoutMs });
    assert.equal(build.status, 0, `build failed: ${build.stderr}`);
  }
  mkdirSync(join(dir, 'node_modules'));
  for (const name of readdirSync(join(root, 'node_modules'))) {
    if (name !== 'tsx' && name !== 'esbuild' && name !== '.bin') symlinkSync(join(root, 'node_modules', name), join(dir, 'node_modules', name));
  }
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The first dist/cli/ module above `url` in the import graph of a run (the command that loads it). */
function commandModuleOf(url: string, edges: ReadonlyArray<readonly [string, string]>): string {
  const parentOf = new Map<string, string>();
  for (const [child, parent] of edges) if (!parentOf.has(child)) parentOf.set(child, parent);
  let current: string | undefined = url;
  for (let depth = 0; current !== undefined && depth < 100; depth++) {
    if (/\/dist\/cli\/commands\//.test(current)) return current.replace(/.*\/dist\//, 'dist/');
    current = parentOf.get(current);
  }
  return url.replace(/.*\/dist\//, 'dist/');
}

/** A module-resolution hook that logs every resolved URL and the module that imported it: what a run loaded. */
function writeModuleLogger(dir: string): string {
  writeFileSync(join(dir, 'log-hooks.mjs'), [
    "import { appendFileSync } from 'node:fs';",
    'export async function resolve(specifier, context, next) {',
    '  const result = await next(specifier, context);',
    "  appendFileSync(process.env.SDC_TEST_MODULE_LOG, result.url + ' ' + context.parentURL + '\\n');",
    '  return result;',
    '}',
  ].join('\n'));
  const registerPath = join(dir, 'log-register.mjs');
  writeFileSync(registerPath, "import { register } from 'node:module';\nregister('./log-hooks.mjs', import.meta.url);\n");
  return registerPath;
}

describe('the built CLI', () => {
  let install: { dir: string; cleanup(): void };
  before(() => { install = productionLikeRoot(); });
  after(() => install.cleanup());

  test('sdc --version and --help run from dist/ without tsx installed', () => {
    const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    const versionRun = spawnSync(process.execPath, [join(install.dir, 'bin', 'sdc.js'), '--version'], { encoding: 'utf8', timeout: runTimeoutMs });
    assert.equal(versionRun.stderr, '');
    assert.equal(versionRun.status, 0);
    assert.equal(versionRun.stdout, `sdc ${version}\n`);
    const helpRun = spawnSync(process.execPath, [join(install.dir, 'bin', 'sdc.js'), 'serve', '--help'], { encoding: 'utf8', timeout: runTimeoutMs });
    assert.equal(helpRun.status, 0, helpRun.stderr);
    assert.match(helpRun.stdout, /--api-port/);
  });

  test('sdc --help loads none of the libraries that only a running service needs', () => {
    const logPath = join(install.dir, 'modules.log');
    writeFileSync(logPath, '');
    const run = spawnSync(process.execPath, ['--import', writeModuleLogger(install.dir), join(install.dir, 'bin', 'sdc.js'), '--help'], {
      encoding: 'utf8', timeout: runTimeoutMs, env: { ...process.env, SDC_TEST_MODULE_LOG: logPath },
    });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /serve/);
    const edges = readFileSync(logPath, 'utf8').split('\n').filter((line) => line.length > 0).map((line) => line.split(' ') as [string, string]);
    // The log itself works: the CLI's own entry point went through it.
    assert.ok(edges.some(([url]) => url.endsWith('/dist/cli/main.js')), `dist/cli/main.js not in the log: ${edges.slice(0, 5).join(', ')}`);
    // Imports from our code into a library (not the library's own files), each named by the command
    // module whose top-level imports reach it: that one should import it when it runs instead.
    const heavy = edges.filter(([url, parent]) => !parent.includes('/node_modules/') && serviceLibraries.some((name) => url.includes(`/node_modules/${name}/`)));
    assert.deepEqual([...new Set(heavy.map(([url, parent]) => `${url.replace(/.*\/node_modules\//, '')} via ${commandModuleOf(parent, edges)}`))], []);
  });

  test('sdc serve from dist/ still refuses a bad option in one line (the lazily loaded modules are found)', () => {
    const run = spawnSync(process.execPath, [join(install.dir, 'bin', 'sdc.js'), 'gateway', '--dir', install.dir, '--gateway-id', 'gw-2', '--redis', 'not a url'], { encoding: 'utf8', timeout: runTimeoutMs });
    assert.equal(run.status, 1, run.stderr);
    assert.equal(run.stderr, "sdc: STORE_URL_INVALID: --redis 'not a url' is not a URL (expected redis://[:PASSWORD@]HOST[:PORT][/DB])\n");
  });
});

describe('bin/build-state.js: is dist/ current?', () => {
  const startedAtMs = Date.UTC(2026, 0, 1);
  const before = startedAtMs - 60_000;
  let dir: string;
  const setMtime = (path: string, ms: number) => utimesSync(join(dir, path), new Date(ms), new Date(ms));
  /** A root built at startedAtMs from core/a.ts and core/sub/b.ts (and a test), every file older than the build. */
  function builtRoot(): void {
    dir = mkdtempSync(join(tmpdir(), 'sdc-build-state-'));
    mkdirSync(join(dir, 'dist'));
    mkdirSync(join(dir, 'core', 'sub'), { recursive: true });
    for (const file of ['package.json', 'core/a.ts', 'core/sub/b.ts', 'core/a.test.ts']) {
      writeFileSync(join(dir, file), '');
      setMtime(file, before);
    }
    const { digest } = sourceListing(dir, ['core', 'cli']);
    writeFileSync(join(dir, 'dist', 'build-info.json'), JSON.stringify({ startedAtMs, sourcesDigest: digest, sourceDirs: ['core', 'cli'], watchedFiles: ['package.json'] }));
  }
  const current = () => {
    const info = readBuildInfo(dir);
    assert.ok(info !== undefined, 'the build record is read');
    return buildIsCurrent(dir, info);
  };
  const cleanup = () => rmSync(dir, { recursive: true, force: true });

  test('sources as built and older than the build: current; a missing source folder changes nothing', () => {
    builtRoot();
    assert.equal(current(), true);
    cleanup();
  });

  test('an edited source file or a newer package.json: stale', () => {
    for (const touch of ['core/sub/b.ts', 'package.json']) {
      builtRoot();
      setMtime(touch, startedAtMs + 1_000);
      assert.equal(current(), false, touch);
      cleanup();
    }
  });

  test('an added, removed or renamed source file is stale even with an old time (git keeps none)', () => {
    builtRoot();
    writeFileSync(join(dir, 'core', 'sub', 'c.ts'), '');
    setMtime('core/sub/c.ts', before);
    assert.equal(current(), false, 'added');
    cleanup();
    builtRoot();
    rmSync(join(dir, 'core', 'sub', 'b.ts'));
    assert.equal(current(), false, 'removed');
    cleanup();
    builtRoot();
    renameSync(join(dir, 'core', 'sub', 'b.ts'), join(dir, 'core', 'sub', 'renamed.ts'));
    assert.equal(current(), false, 'renamed');
    cleanup();
  });

  test('an edited test, or a native build next to the sources, leaves the build current', () => {
    builtRoot();
    setMtime('core/a.test.ts', startedAtMs + 1_000);
    mkdirSync(join(dir, 'core', 'build', 'release'), { recursive: true });
    writeFileSync(join(dir, 'core', 'build', 'release', 'lib.so'), '');
    assert.equal(current(), true);
    cleanup();
  });

  test('no sources at all (an image with dist/ only): current', () => {
    builtRoot();
    rmSync(join(dir, 'core'), { recursive: true });
    assert.equal(current(), true);
    cleanup();
  });

  test('no build-info.json, or one that is not a build record: no build', () => {
    builtRoot();
    writeFileSync(join(dir, 'dist', 'build-info.json'), '{"startedAtMs":"yesterday"}');
    assert.equal(readBuildInfo(dir), undefined);
    rmSync(join(dir, 'dist'), { recursive: true });
    assert.equal(readBuildInfo(dir), undefined);
    cleanup();
  });
});
