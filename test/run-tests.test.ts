import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { longestFiles, longFilesFirst } from '../scripts/test-file-order.mjs';
import { sweepMysqlDatabases, sweepRedisKeys } from '../scripts/test-store-sweep.mjs';
import { databaseExists, keysUnder } from '../server/stores/leftovers-test-support.js';

const runTests = fileURLToPath(new URL('../scripts/run-tests.mjs', import.meta.url));
const runTestFiles = fileURLToPath(new URL('../scripts/run-test-files.mjs', import.meta.url));

/** The environment for a test run of its own: without NODE_TEST_CONTEXT, which would make node skip the files as a nested run. */
function childEnv(fixture: '1' | 'mirror' | 'stores' | ''): NodeJS.ProcessEnv {
  const { NODE_TEST_CONTEXT: _nested, ...env } = process.env;
  return { ...env, SDC_RUN_TESTS_FIXTURE: fixture };
}

/**
 * The TypeScript loader for the driver's own runs below: the runner's (scripts/test-ts-register.mjs,
 * the compiled files of this run's mirror) rather than tsx, which cost each of those processes and
 * their fixture files' about 0.45 s of CPU to start. What they check is the driver, not a loader.
 */
const tsLoader = pathToFileURL(fileURLToPath(new URL('../scripts/test-ts-register.mjs', import.meta.url))).href;

/**
 * One passing run of both fixtures, shared by the three tests that read a passing run's output (no
 * failure list, the slowest files, the CPU list): each run is the runner, its driver and two fixture
 * processes, and the three spawned the same thing with the same environment.
 */
let passingRunOfBoth: SpawnSyncReturns<string> | undefined;
const bothFixtures = ['test/fixtures/run-tests-fixture.test.ts', 'test/fixtures/run-tests-second-fixture.test.ts'];
function passingRun(): SpawnSyncReturns<string> {
  passingRunOfBoth ??= spawnSync(process.execPath, [runTests, ...bothFixtures], { env: childEnv(''), encoding: 'utf8', timeout: 120_000 });
  return passingRunOfBoth;
}

describe('scripts/run-tests.mjs', () => {
  it('keeps node\'s closing "# pass N / # fail N" lines and then lists each failed test with its file', () => {
    const run = spawnSync(process.execPath, [runTests, 'test/fixtures/run-tests-fixture.test.ts'], {
      env: childEnv('1'), encoding: 'utf8', timeout: 120_000,
    });
    assert.equal(run.status, 1, run.stderr);
    const lines = run.stdout.split('\n');
    const pass = lines.indexOf('# pass 1');
    const fail = lines.indexOf('# fail 1');
    assert.ok(pass >= 0 && fail === pass + 1, run.stdout);
    const summary = lines.indexOf('failed tests (1):');
    assert.ok(summary > fail, 'the list comes after node\'s closing lines');
    assert.equal(lines[summary + 1], '  test/fixtures/run-tests-fixture.test.ts  run-tests fixture > a suite > fails on purpose');
    assert.equal(lines[summary + 2], '      the fixture failure');
    // The suites that failed only because of the test inside are not listed again.
    assert.equal(lines.slice(summary).filter((l) => l.startsWith('  test/')).length, 1);
  });

  it('prints no list when nothing failed', () => {
    const run = passingRun();
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^# fail 0$/m);
    assert.doesNotMatch(run.stdout, /failed tests/);
  });

  it('lists the slowest files after the run, slowest first, each with its seconds', () => {
    const run = passingRun();
    assert.equal(run.status, 0, run.stdout + run.stderr);
    const lines = run.stdout.split('\n');
    const heading = lines.findIndex((l) => l.startsWith('slowest test files'));
    assert.ok(heading > lines.indexOf('# fail 0'), run.stdout);
    const rows = lines.slice(heading + 1, heading + 3).map((l) => /^ +([\d.]+) {2}(\S+)$/.exec(l));
    assert.deepEqual(rows.map((r) => r?.[2]).sort(), ['test/fixtures/run-tests-fixture.test.ts', 'test/fixtures/run-tests-second-fixture.test.ts']);
    const seconds = rows.map((r) => Number(r![1]));
    assert.ok(seconds[0]! >= seconds[1]!, `slowest first: ${seconds.join(', ')}`);
  });

  it('lists the files by CPU seconds (their processes and child processes), most first, with the run\'s total', () => {
    const files = bothFixtures;
    const run = passingRun();
    assert.equal(run.status, 0, run.stdout + run.stderr);
    const lines = run.stdout.split('\n');
    const heading = lines.findIndex((l) => l.startsWith('most CPU'));
    assert.ok(heading > lines.indexOf('# fail 0'), run.stdout);
    const total = /; (\d+) s in all, 2 files\):$/.exec(lines[heading]!);
    assert.ok(total, lines[heading]);
    const rows = lines.slice(heading + 1, heading + 3).map((l) => /^ +([\d.]+) {2}(\S+)$/.exec(l));
    assert.deepEqual(rows.map((r) => r?.[2]).sort(), files);
    const seconds = rows.map((r) => Number(r![1]));
    // Each file's process loads tsx and node:test: some CPU, never none.
    assert.ok(seconds.every((s) => s > 0), `each file used some CPU: ${seconds.join(', ')}`);
    assert.ok(seconds[0]! >= seconds[1]!, `most first: ${seconds.join(', ')}`);
    assert.ok(Math.abs(Number(total[1]) - (seconds[0]! + seconds[1]!)) <= 1, `the total is the files' sum: ${lines[heading]}`);
  });

  it('runs each file as JavaScript from the mirror of compiled sources, without module hooks, named by its source', () => {
    // The fixture checks its own process: argv, execArgv, import.meta.url, a mapped stack trace, a forked sibling.
    const file = 'test/fixtures/run-tests-mirror-fixture.test.ts';
    const run = spawnSync(process.execPath, [runTests, file], { env: childEnv('mirror'), encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^# pass 1$/m);
    assert.doesNotMatch(run.stdout, /^# skipped 1$/m);
    assert.doesNotMatch(run.stdout, /sdc-test-js|\.test\.js/, 'node\'s output names the source, not the mirror');
  });

  it('starts the end-to-end files under test/ first, each group in path order', () => {
    const files = ['core/b.test.ts', 'test/e2e/z.test.ts', 'agent/a.test.ts', 'test/e2e/a.test.ts', 'server/c.test.ts'].map((f) => f.split('/').join(sep));
    assert.deepEqual([...files].sort(longFilesFirst), ['test/e2e/a.test.ts', 'test/e2e/z.test.ts', 'agent/a.test.ts', 'core/b.test.ts', 'server/c.test.ts'].map((f) => f.split('/').join(sep)));
  });

  it('starts the measured long files before all others, in their list\'s order', () => {
    const [longest, second] = longestFiles;
    const files = ['agent/a.test.ts', 'test/e2e/a.test.ts', second!, longest!].map((f) => f.split('/').join(sep));
    assert.deepEqual([...files].sort(longFilesFirst), [longest!, second!, 'test/e2e/a.test.ts', 'agent/a.test.ts'].map((f) => f.split('/').join(sep)));
  });

  it('hands node the files in that order: node --test sorts its files by path, the runner\'s driver does not', () => {
    // The second fixture's path sorts after the first's; given first, with one file at a time, it runs first.
    const files = ['test/fixtures/run-tests-second-fixture.test.ts', 'test/fixtures/run-tests-fixture.test.ts'];
    const report = join(mkdtempSync(join(tmpdir(), 'sdc-run-order-')), 'report.jsonl');
    const run = spawnSync(process.execPath, ['--import', tsLoader, runTestFiles, '--concurrency', '1', '--timeout-ms', '120000', '--reporter', 'tap', '--report', report, ...files], {
      env: childEnv(''), encoding: 'utf8', timeout: 120_000,
    });
    rmSync(join(report, '..'), { recursive: true, force: true });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    const started = [...run.stdout.matchAll(/^ok \d+ - (run-tests (?:second )?fixture)/gm)].map((m) => m[1]);
    assert.deepEqual(started, ['run-tests second fixture', 'run-tests fixture'], run.stdout);
  });

  it('the driver writes node\'s spec reporter too (a terminal gets it)', () => {
    const report = join(mkdtempSync(join(tmpdir(), 'sdc-run-spec-')), 'report.jsonl');
    const run = spawnSync(process.execPath, ['--import', tsLoader, runTestFiles, '--concurrency', '1', '--timeout-ms', '120000', '--reporter', 'spec', '--report', report, 'test/fixtures/run-tests-second-fixture.test.ts'], {
      env: childEnv(''), encoding: 'utf8', timeout: 120_000,
    });
    rmSync(join(report, '..'), { recursive: true, force: true });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^ℹ pass 1$/m);
    assert.doesNotMatch(run.stdout, /^TAP version/m);
  });

  const redisUrl = process.env['REDIS_URL'];
  const mysqlUrl = process.env['MYSQL_URL'];
  it('removes the keys and databases under its namespace that a test file killed at its timeout left', { skip: redisUrl && mysqlUrl ? false : 'REDIS_URL and MYSQL_URL are not set' }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sdc-run-stores-'));
    const marker = join(dir, 'made.json');
    try {
      // The fixture makes two keys and a database under the run's namespace and hangs until the file timeout kills it.
      const run = spawnSync(process.execPath, [runTests, 'test/fixtures/run-tests-stores-fixture.test.ts'], {
        env: { ...childEnv('stores'), SDC_RUN_TESTS_STORES_MARKER: marker, SDC_TEST_FILE_TIMEOUT_MS: '10000' }, encoding: 'utf8', timeout: 120_000,
      });
      assert.equal(run.status, 1, run.stdout + run.stderr);
      assert.match(run.stdout, /timed out|cancelled/, run.stdout);
      const made = JSON.parse(readFileSync(marker, 'utf8')) as { keys: string[]; database: string };
      assert.match(run.stdout, /^Redis: 2 keys left under the run's namespace [0-9a-f]{16} removed$/m, run.stdout);
      assert.match(run.stdout, new RegExp(`^MySQL: 1 databases left with the run's namespace dropped \\(${made.database}\\)$`, 'm'), run.stdout);
      for (const key of made.keys) assert.deepEqual(await keysUnder(redisUrl!, key.slice(0, key.lastIndexOf(':') + 1)), [], key);
      assert.equal(await databaseExists(mysqlUrl!, made.database), false, made.database);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses to sweep under a namespace that is short, empty or not hex (never a broad pattern)', async () => {
    for (const namespace of ['', 'abc', '0123456789a', '*', 'sdc-e2e-0123456789', '0123456789ABCDEF']) {
      await assert.rejects(sweepRedisKeys('redis://127.0.0.1:1', namespace), /refusing to sweep/, JSON.stringify(namespace));
      await assert.rejects(sweepMysqlDatabases('mysql://root@127.0.0.1:1/test', namespace), /refusing to sweep/, JSON.stringify(namespace));
    }
  });
});
