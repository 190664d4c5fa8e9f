import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { longestFiles, longFilesFirst } from '../scripts/test-file-order.mjs';
import { createConnection } from 'mysql2/promise';
import { newStoreNamespace, sweepMysqlDatabases, sweepRedisKeys, sweepStores } from '../scripts/test-store-sweep.mjs';
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

/**
 * A "Redis" that accepts connections and never answers (review h13's repro): `closed` settles once
 * every socket it accepted has been closed by the client, the sweep having let go of it.
 */
async function silentServer(): Promise<{ server: Server; url: string; accepted: () => number; closed: () => Promise<void> }> {
  const sockets: Socket[] = [];
  const ends: Promise<void>[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    ends.push(new Promise((resolve) => socket.on('close', () => resolve())));
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { server, url: `redis://127.0.0.1:${port}`, accepted: () => sockets.length, closed: async () => { await Promise.all(ends); } };
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

  // Review h13: the sweep waited forever on a store that accepts and never answers, or on a database
  // a live connection holds open. The time limits below are generous; what is asserted is that it
  // ends, reports what it left, and lets go of its connections, not how fast.
  it('reports, and does not wait forever for, a Redis that accepts connections and never answers', { timeout: 180_000 }, async () => {
    const silent = await silentServer();
    try {
      const namespace = newStoreNamespace();
      const lines = await sweepStores({ namespace, redisUrl: silent.url });
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(lines[0]!, new RegExp(`^Redis: keys under the run's namespace ${namespace} not removed: Command timed out$`));
      assert.equal(silent.accepted(), 1);
      await silent.closed();
    } finally {
      silent.server.close();
    }
  });

  it('ends the whole sweep at its deadline, reports both stores as not swept, and closes its connection', { timeout: 180_000 }, async () => {
    const silent = await silentServer();
    try {
      const namespace = newStoreNamespace();
      // The deadline below the requests' own 5 s limits: it is what ends this sweep. MySQL is not reached
      // (port 1 would refuse at once); the deadline has passed by its turn, so it is reported with it.
      const lines = await sweepStores({ namespace, redisUrl: silent.url, mysqlUrl: 'mysql://root@127.0.0.1:1/test', deadlineMs: 500 });
      assert.deepEqual(lines, [
        `Redis: keys under the run's namespace ${namespace} not removed: no answer within the sweep's 500 ms`,
        `MySQL: databases of the run's namespace ${namespace} not dropped: no answer within the sweep's 500 ms`,
      ]);
      await silent.closed();
    } finally {
      silent.server.close();
    }
  });

  it('keeps a passing run\'s exit code when the sweep cannot reach its store, and prints what it left', { timeout: 180_000 }, async () => {
    const silent = await silentServer();
    try {
      const { MYSQL_URL: _mysql, ...env } = childEnv('');
      // Spawned, not spawnSync: this process's event loop keeps serving the silent server meanwhile.
      const child = spawn(process.execPath, [runTests, 'test/fixtures/run-tests-second-fixture.test.ts'], { env: { ...env, REDIS_URL: silent.url }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (text: string) => { stdout += text; });
      child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text; });
      const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      assert.equal(status, 0, stdout + stderr);
      assert.match(stdout, /^Redis: keys under the run's namespace [0-9a-f]{16} not removed: Command timed out$/m, stdout);
    } finally {
      silent.server.close();
    }
  });

  it('reports, and does not wait a day for, a database whose table another connection holds open', { skip: mysqlUrl ? false : 'MYSQL_URL is not set', timeout: 180_000 }, async () => {
    const namespace = newStoreNamespace();
    const database = `sdc_sweep_lock_${namespace}`;
    const free = `sdc_sweep_free_${namespace}`;
    const server = new URL(mysqlUrl!);
    server.pathname = '/';
    const admin = await createConnection({ uri: server.toString() });
    const holder = await createConnection({ uri: server.toString() });
    try {
      await admin.query(`CREATE DATABASE \`${database}\``);
      await admin.query(`CREATE TABLE \`${database}\`.t (a INT)`);
      await admin.query(`CREATE DATABASE \`${free}\``);
      // An open transaction that read the table holds its metadata lock, as a killed file's deployment child's connection can.
      await holder.query('BEGIN');
      await holder.query(`SELECT * FROM \`${database}\`.t`);
      const lines = await sweepStores({ namespace, mysqlUrl: mysqlUrl! });
      // The locked one is reported and skipped; the other is dropped whichever the server lists first.
      assert.equal(lines.length, 2, lines.join('\n'));
      assert.equal(lines[0], `MySQL: 1 databases left with the run's namespace dropped (${free})`);
      assert.match(lines[1]!, new RegExp(`^MySQL: databases of the run's namespace ${namespace} not dropped: ${database} not dropped: Lock wait timeout exceeded`));
      assert.equal(await databaseExists(mysqlUrl!, database), true);
      assert.equal(await databaseExists(mysqlUrl!, free), false);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
      await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
      await admin.query(`DROP DATABASE IF EXISTS \`${free}\``);
      await admin.end();
    }
  });

  it('refuses to sweep under a namespace that is short, empty or not hex (never a broad pattern)', async () => {
    for (const namespace of ['', 'abc', '0123456789a', '*', 'sdc-e2e-0123456789', '0123456789ABCDEF']) {
      await assert.rejects(sweepRedisKeys('redis://127.0.0.1:1', namespace), /refusing to sweep/, JSON.stringify(namespace));
      await assert.rejects(sweepMysqlDatabases('mysql://root@127.0.0.1:1/test', namespace), /refusing to sweep/, JSON.stringify(namespace));
    }
  });
});
