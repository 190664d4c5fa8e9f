// What the control-plane tests' helpers leave on a real Redis and MySQL: makeHarness's close()
// removes its cp-test-<hex>: keys, and a database mysqlTarget made is dropped when the process exits
// even when the test file never calls cleanup() (about a dozen did not). Before, each run of the
// suite left its keys (126 on the shared Redis) and sdc_cp_<pid>_<hex> databases behind.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createConnection } from 'mysql2/promise';
import { Redis } from 'ioredis';
import { sourceLoaderExecArgv } from '../../runtime/fork-module.js';
import { literalMatchPattern } from '../stores/redis-prefix-cleanup.js';
import { makeHarness, storePairs, type KvFactory } from './test-support.js';

const redisUrl = process.env['REDIS_URL'];
const mysqlUrl = process.env['MYSQL_URL'];
const real = storePairs().pairs.find((p) => p.kv !== undefined);

async function keysUnder(prefix: string): Promise<string[]> {
  const client = new Redis(redisUrl!);
  try {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', literalMatchPattern(prefix), 'COUNT', 1_000);
      found.push(...keys);
      cursor = next;
    } while (cursor !== '0');
    return found;
  } finally {
    client.disconnect();
  }
}

async function databaseExists(name: string): Promise<boolean> {
  const connection = await createConnection({ uri: mysqlUrl! });
  try {
    const [rows] = await connection.query('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [name]);
    return (rows as unknown[]).length > 0;
  } finally {
    await connection.end();
  }
}

describe('control-plane test helpers: what they leave on the real stores', { skip: real === undefined ? 'MYSQL_URL or REDIS_URL is not set' : false }, () => {
  it('makeHarness close() removes the keys under its prefix', async () => {
    let prefix = '';
    const base = real!.kv!;
    const kv: KvFactory = Object.assign((keyPrefix: string) => { prefix = keyPrefix; return base(keyPrefix); }, { removeKeys: base.removeKeys! });
    const h = await makeHarness(real!.sql, { kv });
    try {
      await h.cp.start();
      assert.ok((await keysUnder(prefix)).length > 0, 'the started control plane wrote keys under its prefix');
    } finally {
      await h.close();
      await real!.sql.cleanup();
    }
    assert.match(prefix, /^cp-test-[0-9a-f]{8}:$/);
    assert.deepEqual(await keysUnder(prefix), []);
  });

  it('a database made by mysqlTarget and never cleaned up is dropped when its process exits', async () => {
    const supportUrl = new URL('./test-support.js', import.meta.url).href;
    const script = `
      const { mysqlTarget } = await import(${JSON.stringify(supportUrl)});
      const target = mysqlTarget(process.env.MYSQL_URL);
      const db = await target.open('/nonexistent');
      await db.query('SELECT 1');
      await db.close();
      process.stdout.write(new URL(target.url).pathname.slice(1));`;
    const { stdout } = await promisify(execFile)(process.execPath, [...sourceLoaderExecArgv(), '--input-type=module', '-e', script], { env: { ...process.env, SDC_TEST_KEEP_STORES: '' } });
    assert.match(stdout, /^sdc_cp_\d+_[0-9a-f]{8}$/);
    assert.equal(await databaseExists(stdout), false, `${stdout} is still on the server`);
  });
});
