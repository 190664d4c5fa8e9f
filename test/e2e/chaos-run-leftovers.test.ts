// `sdc chaos run` on a real Redis and MySQL makes a key prefix (sdc-chaos-<tag>:, 17-19 keys a run)
// and a database (sdc_chaos_<tag>) of its own. Both are removed when the run ends, passed or thrown,
// unless --keep-stores asks to keep them for a post-mortem. Before, every run left its keys behind
// (about 1,200 on a developer's Redis after a day of runs). Only the run's own names are asserted
// on: other runs and test files share the servers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createConnection } from 'mysql2/promise';
import pino from 'pino';
import { realFaultScenario, runChaosScenario } from '../../cli/commands/chaos-run.js';
import { removeKeysWithPrefix } from '../../server/stores/redis-prefix-cleanup.js';
import { chaosRun } from './support/chaos-run-driver.js';
import { databaseExists, keysUnder } from '../../server/stores/leftovers-test-support.js';

const redisUrl = process.env.REDIS_URL;
const mysqlUrl = process.env.MYSQL_URL;
const skip = redisUrl === undefined || redisUrl === '' || mysqlUrl === undefined || mysqlUrl === '' ? 'REDIS_URL or MYSQL_URL is not set' : false;
/** The smallest run: one agent, 2 s of commands, the fault from 0 s to 1 s. */
const smallest = ['--agents', '1', '--duration', '2s', '--fault-at', '0s', '--fault-for', '1s', '--seed', '3', '--json'] as const;

async function dropDatabase(name: string): Promise<void> {
  const connection = await createConnection({ uri: mysqlUrl! });
  try { await connection.query(`DROP DATABASE IF EXISTS \`${name}\``); } finally { await connection.end(); }
}

/** The names the run announced on stderr ("run stores: Redis keys P*, MySQL database D (...)"). */
function announcedStores(err: string): { prefix: string; database: string } {
  const match = /run stores: Redis keys (sdc-chaos-[0-9a-f]+:)\*, MySQL database (sdc_chaos_[0-9a-f]+) /.exec(err);
  assert.ok(match, err);
  return { prefix: match[1]!, database: match[2]! };
}

describe('sdc chaos run: what it leaves on the real stores', { concurrency: 3 }, () => {
  // A run that passes removes its keys and drops its database: asserted on the two store-cut runs of
  // chaos-stores.test.ts (a deployment each on the same real stores), not on a run of its own here.

  it('a run that throws (its fault fails to go on) removes them too', { skip }, async () => {
    const progress: string[] = [];
    const latency = realFaultScenario('latency')!;
    const failing = { ...latency, name: 'latency-failing', inject: async () => { throw new Error('the fault could not be put on'); } };
    await assert.rejects(runChaosScenario({
      scenario: failing, seed: 3, agents: 1, durationMs: 2_000, faultAtMs: 0, faultMs: 1_000, drainBoundMs: 60_000, reconnectBoundMs: 30_000,
      redisUrl: redisUrl!, mysqlUrl: mysqlUrl!, logger: pino({ level: 'silent' }), onProgress: (line) => progress.push(line),
    }), /CHAOS_FAULT_FAILED|could not be put on/);
    const { prefix, database } = announcedStores(progress.join('\n'));
    assert.deepEqual(await keysUnder(redisUrl!, prefix), []);
    assert.equal(await databaseExists(mysqlUrl!, database), false);
  });

  it('--keep-stores keeps them for a post-mortem (and says so)', { skip }, async () => {
    const { code, reports, err, detail } = await chaosRun(['--scenario', 'latency', '--redis', redisUrl!, '--mysql', mysqlUrl!, '--keep-stores'], smallest);
    const { prefix, database } = announcedStores(err);
    try {
      assert.equal(code, 0, detail);
      assert.match(err, /kept at the end: --keep-stores/);
      // The names announced on stderr are the report's.
      assert.deepEqual(reports[0]!.run_stores, { redis_key_prefix: prefix, mysql_database: database, kept: true });
      assert.ok((await keysUnder(redisUrl!, prefix)).length > 0, 'the run\'s keys are kept');
      assert.equal(await databaseExists(mysqlUrl!, database), true);
    } finally {
      await removeKeysWithPrefix(redisUrl!, prefix);
      await dropDatabase(database);
    }
  });
});

describe('sdc chaos run stopped by Ctrl-C', () => {
  it('SIGINT mid-run: the process ends by the signal after removing its keys and database', { skip }, async () => {
    const { spawn } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const sdc = fileURLToPath(new URL('../../bin/sdc.js', import.meta.url));
    const child = spawn(process.execPath, [sdc, 'chaos', 'run', '--scenario', 'latency', '--redis', redisUrl!, '--mysql', mysqlUrl!, '--agents', '1', '--duration', '60s', '--fault-at', '1s', '--fault-for', '50s', '--json'], {
      env: { ...process.env, SDC_FROM_SOURCE: '1', SDC_LOG_LEVEL: 'silent' }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    // Interrupted while the fault is on (the fleet online, the keys and the database in use).
    await new Promise<void>((resolve, reject) => {
      child.stderr!.on('data', (chunk: Buffer) => {
        err += chunk.toString();
        if (/fault latency on at/.test(err)) resolve();
      });
      child.on('exit', () => reject(new Error(`exited before the commands: ${err}`)));
    });
    const { prefix, database } = announcedStores(err);
    assert.ok((await keysUnder(redisUrl!, prefix)).length > 0 || await databaseExists(mysqlUrl!, database), 'the run is using its stores');
    child.kill('SIGINT');
    const { signal } = await exited;
    assert.equal(signal, 'SIGINT', err);
    assert.deepEqual(await keysUnder(redisUrl!, prefix), []);
    assert.equal(await databaseExists(mysqlUrl!, database), false);
  });
});
