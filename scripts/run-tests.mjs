#!/usr/bin/env node
// Runs every *.test.ts under the source folders with node's own test runner.
// Node 20 has no glob support in `--test`, so the file list is collected here.
// Usage: npm test [-- <substring> ...]   (only files whose path contains a substring)
//
// node's output (TAP, or spec on a terminal) goes to stdout unchanged, closing lines
// "# pass N" / "# fail N" included, as CI reads them. A second reporter (scripts/run-reporter.mjs)
// writes the failed tests and each file's time to a file; after node's output the runner prints
// the slowest files and then the failures, so a run thousands of lines long ends with what failed.
// Each file's process also records its CPU seconds (scripts/test-cpu-probe.mjs), listed too: on
// 2 cores the run cannot take less than its CPU time over 2, however the files are scheduled.
//
// The test files run as JavaScript from the mirror of compiled sources that scripts/test-ts-cache.mjs
// keeps (refreshed here first: a changed source is compiled again), with plain node: no module
// hooks, so no hooks thread and no round trip to it for every import. Source maps are on, so
// stack traces name the TypeScript lines; the reports name the sources (run-test-files.mjs).
// Measured 6 December 00:30 UTC on the 2-core machine while other sessions ran their tests (load
// average 20-40, so CPU is the figure to read): one test file's process, user + sys, median of 7
// interleaved runs, through the loader (node --import test-ts-register.mjs, as before) -> from the
// mirror: the 17-line run-tests fixture 0.26 -> 0.17 s, core/protocol/semver.test.ts 0.38 -> 0.24 s,
// server/gateway/forward-message.test.ts 0.75 -> 0.45 s (the saving grows with the modules a file
// imports: each import was a round trip to the hooks thread). TypeBox's ES modules load faster than
// its CommonJS build without hooks (0.27-0.34 s against 0.35-0.57 s for the three entry points),
// so the hooks' redirect to the CommonJS build has no counterpart here. Whole runs: docs/deployment.md.
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { longFilesFirst } from './test-file-order.mjs';
import { cacheDir, cachePathOf, refreshCache } from './test-ts-cache.mjs';
import { newStoreNamespace, storeNamespaceVariable, sweepStores } from './test-store-sweep.mjs';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const sourceDirs = ['core', 'runtime', 'trust', 'server', 'agent', 'kernel', 'sim', 'chaos', 'bench', 'viewer', 'cli', 'test'];
const skipDirs = new Set(['node_modules', 'build', 'data']);
/** Failures listed at the end; a run with more lists the first ones and says how many more. */
const listedFailuresMax = 200;

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

/** The second reporter's JSON lines: failures and file times (scripts/run-reporter.mjs). */
function readRecords(path) {
  let text = '';
  try { text = readFileSync(path, 'utf8'); } catch { return []; }
  return text.split('\n').filter((line) => line.length > 0).map((line) => JSON.parse(line));
}

function printFailures(failures) {
  if (failures.length === 0) return;
  const lines = ['', `failed tests (${failures.length}):`];
  for (const failure of failures.slice(0, listedFailuresMax)) {
    // No line number: the reporter's location is not reliably the source line (a compiled module's).
    lines.push(`  ${failure.file === null ? '(no file)' : relative(root, failure.file)}  ${failure.name}`, `      ${failure.message}`);
  }
  if (failures.length > listedFailuresMax) lines.push(`  ... and ${failures.length - listedFailuresMax} more`);
  process.stdout.write(lines.join('\n') + '\n');
}

/** Slowest files listed after a run: where to look first when the suite gets long. */
const listedSlowFilesMax = 12;

function printSlowestFiles(secondsByFile) {
  const slowest = Object.entries(secondsByFile).sort((a, b) => b[1] - a[1]).slice(0, listedSlowFilesMax);
  if (slowest.length < 2) return;
  const lines = ['', `slowest test files (seconds of their own tests, ${process.env.TEST_CONCURRENCY ?? testConcurrencyDefault} files at once):`];
  for (const [file, seconds] of slowest) lines.push(`  ${seconds.toFixed(1).padStart(7)}  ${relative(root, file)}`);
  process.stdout.write(lines.join('\n') + '\n');
}

/** CPU seconds per file (its process and the children it waited for), most first, with the run's total. */
function printCpuFiles(records) {
  const secondsByFile = new Map();
  for (const r of records) secondsByFile.set(r.file, (secondsByFile.get(r.file) ?? 0) + r.own + r.children);
  if (secondsByFile.size < 2) return;
  const total = [...secondsByFile.values()].reduce((sum, s) => sum + s, 0);
  const most = [...secondsByFile].sort((a, b) => b[1] - a[1]).slice(0, listedSlowFilesMax);
  const lines = ['', `most CPU (user + system seconds of each file's process and its child processes; ${total.toFixed(0)} s in all, ${secondsByFile.size} files):`];
  for (const [file, seconds] of most) lines.push(`  ${seconds.toFixed(1).padStart(7)}  ${relative(root, file)}`);
  process.stdout.write(lines.join('\n') + '\n');
}

const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const files = sourceDirs.flatMap((d) => collect(join(root, d), [])).sort(longFilesFirst)
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
/**
 * A test file that runs longer than this has hung. Generous: the end-to-end files take a minute on
 * an idle machine and several on one busy with other work; none should fail for being slow.
 */
const testFileTimeoutMs = Number(process.env.SDC_TEST_FILE_TIMEOUT_MS) || 900_000; // the override for test/run-tests.test.ts's hanging fixture
/**
 * Test files at once. Three on a 2-core machine: many end-to-end files wait on sockets, child
 * processes and fault windows, so two left a core idle (clean clone, 3 December: 2 files 14:28 wall
 * at 123 % CPU, 3 files 11:17 at 172 %, both 2,063/2,063). TEST_CONCURRENCY overrides it.
 * Four instead, 6 December with the mirror, `npm test -- core/` twice: the same wall (62 and 28 s
 * against 63 and 28 s), 8 % more CPU (docs/deployment.md); the end-to-end files not measured apart.
 */
const testConcurrencyDefault = 3;
// Every changed source compiled once here, not in each of the files' processes.
refreshCache();
const reportDir = mkdtempSync(join(tmpdir(), 'sdc-test-report-'));
const reportFile = join(reportDir, 'report.jsonl');
const cpuFile = join(reportDir, 'cpu.jsonl');
// The run's own namespace for the real stores, never inherited (a run inside a test would sweep its parent's): scripts/test-store-sweep.mjs.
const storeNamespace = newStoreNamespace();
try {
  // Not `node --test FILES`: node 20 sorts those by path and so ignores longFilesFirst (scripts/run-test-files.mjs).
  const result = spawnSync(process.execPath, [
    // The files' JavaScript from the runner's mirror (scripts/test-ts-cache.mjs), with their source maps.
    '--enable-source-maps',
    '--import', pathToFileURL(join(root, 'scripts', 'test-cpu-probe.mjs')).href,
    join(root, 'scripts', 'run-test-files.mjs'),
    '--concurrency', String(process.env.TEST_CONCURRENCY ?? testConcurrencyDefault), '--timeout-ms', String(testFileTimeoutMs),
    // node's default reporter for the terminal or a pipe, as before; the failure list to a file.
    '--reporter', process.stdout.isTTY ? 'spec' : 'tap', '--report', reportFile,
    ...files.map((file) => cachePathOf(join(root, file))),
  ], {
    cwd: root, stdio: 'inherit',
    env: {
      ...process.env, SDC_TEST_CPU_FILE: cpuFile, [storeNamespaceVariable]: storeNamespace,
      // SDC_TS_IMPORT: the children the tests fork from the sources read the same compiled files,
      // through the hooks (runtime/fork-module.ts); the test files run without.
      SDC_TS_IMPORT: pathToFileURL(join(root, 'scripts', 'test-ts-register.mjs')).href,
      // The mirror (also as node names it when a folder above it is a link) and the sources, to name each file by its source.
      SDC_TEST_JS_MIRROR: [...new Set([cacheDir, realpathSync(cacheDir)])].join('\n'), SDC_TEST_JS_SOURCES: root,
    },
  });
  const records = readRecords(reportFile);
  printSlowestFiles(records.find((r) => r.kind === 'fileTimes')?.secondsByFile ?? {});
  printCpuFiles(readRecords(cpuFile).filter((r) => r.kind === 'fileCpu'));
  printFailures(records.filter((r) => r.kind === 'failure'));
  process.exitCode = result.status ?? 1;
  // What the run's files left under its namespace: a file killed at its timeout or crashed, or one
  // whose clean-up missed something (printed, to be fixed). After every run, passed or not: knowing
  // whether anything was left takes the same SCAN. SDC_TEST_KEEP_STORES=1 keeps them. The sweep ends
  // by its deadline and reports what it could not remove; that is printed, and the run's exit code stands.
  const { REDIS_URL: redisUrl, MYSQL_URL: mysqlUrl } = process.env;
  if ((redisUrl || mysqlUrl) && process.env.SDC_TEST_KEEP_STORES !== '1') {
    const swept = await sweepStores({ namespace: storeNamespace, redisUrl, mysqlUrl })
      .catch((error) => [`The stores' sweep of the run's namespace ${storeNamespace} failed: ${error?.message ?? error}`]);
    if (swept.length > 0) process.stdout.write(['', ...swept].join('\n') + '\n');
  }
} finally {
  rmSync(reportDir, { recursive: true, force: true });
}
