// What the control-plane tests' helpers leave on a real Redis and MySQL: makeHarness's close()
// removes its cp-test-<hex>: keys, and a database mysqlTarget made is dropped when the process exits
// even when the test file never calls cleanup() (about a dozen did not). Before, each run of the
// suite left its keys (126 on the shared Redis) and sdc_cp_<pid>_<hex> databases behind.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { sourceLoaderExecArgv } from '../../runtime/fork-module.js';
import { makeHarness, storePairs, type KvFactory } from './test-support.js';
import { databaseExists, keysUnder } from '../stores/leftovers-test-support.js';
import { testStoreNamespace } from '../stores/test-store-namespace.js';

const redisUrl = process.env['REDIS_URL'];
const mysqlUrl = process.env['MYSQL_URL'];
const real = storePairs().pairs.find((p) => p.kv !== undefined);

describe('control-plane test helpers: what they leave on the real stores', { skip: real === undefined ? 'MYSQL_URL or REDIS_URL is not set' : false }, () => {
  it('makeHarness close() removes the keys under its prefix', async () => {
    let prefix = '';
    const base = real!.kv!;
    const kv: KvFactory = Object.assign((keyPrefix: string) => { prefix = keyPrefix; return base(keyPrefix); }, { removeKeys: base.removeKeys! });
    const h = await makeHarness(real!.sql, { kv });
    try {
      await h.cp.start();
      assert.ok((await keysUnder(redisUrl!, prefix)).length > 0, 'the started control plane wrote keys under its prefix');
    } finally {
      await h.close();
      await real!.sql.cleanup();
    }
    // The test runner's namespace first (server/stores/test-store-namespace.ts): the runner removes them if the file is killed.
    assert.match(prefix, new RegExp(`^cp-test-${testStoreNamespace()}[0-9a-f]{8}:$`));
    assert.deepEqual(await keysUnder(redisUrl!, prefix), []);
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
    assert.match(stdout, new RegExp(`^sdc_cp_\\d+_${testStoreNamespace()}[0-9a-f]{8}$`));
    assert.equal(await databaseExists(mysqlUrl!, stdout), false, `${stdout} is still on the server`);
  });
});
