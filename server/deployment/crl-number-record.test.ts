// The highest CRL number a gateway took, kept in the shared key/value store (decision 0021): a
// restarted gateway (a new CrlFileWatch on the same record) refuses an older CRL our CA really
// signed, put back in the file, as the running one does. On the memory store, ioredis-mock and,
// with REDIS_URL, real Redis.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { kvKeys } from '../bus-contract/streams.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import { MemoryKeyValueStore } from '../stores/kv/memory-key-value-store.js';
import { createEmbeddedKeyValueStore, createRedisKeyValueStore } from '../stores/kv/redis-key-value-store.js';
import { deleteKeysWithPrefix, testKeyPrefix } from '../stores/redis-test-keys.js';
import { generateCrl } from '../../trust/crl.js';
import { MemoryRevocationStore } from '../../trust/revocation.js';
import { makeTestPki, type TestPki } from '../../trust/test-fixtures.js';
import { CrlFileWatch } from './crl-file-watch.js';

const redisUrl = process.env['REDIS_URL'];

const variants: Array<{ name: string; open(): KeyValueStore }> = [
  { name: 'the memory store', open: () => new MemoryKeyValueStore({ clock: new VirtualTime(), keyPrefix: `crl-record-${randomBytes(4).toString('hex')}:` }) },
  { name: 'ioredis-mock', open: () => createEmbeddedKeyValueStore({ keyPrefix: `crl-record-${randomBytes(4).toString('hex')}:` }) },
];
const redisPrefix = testKeyPrefix('crl-number-record');
if (redisUrl !== undefined && redisUrl !== '') {
  variants.push({ name: 'Redis', open: () => createRedisKeyValueStore({ url: redisUrl, keyPrefix: redisPrefix }) });
  after(() => deleteKeysWithPrefix(redisUrl, redisPrefix));
}
// Without REDIS_URL the Redis variant is not run; the memory store and ioredis-mock take the same steps.

for (const variant of variants) {
  describe(`the highest CRL number taken outlives a gateway restart, on ${variant.name}`, () => {
    let pki: TestPki;
    let dir: string;
    const now = new Date();
    before(async () => {
      pki = await makeTestPki(new Date(now.getTime() - 60_000));
      dir = await mkdtemp(join(tmpdir(), 'sdc-crl-record-'));
    });
    after(() => rm(dir, { recursive: true, force: true }));

    it('a restarted gateway refuses an older CRL put back (TRUST_CRL_ROLLED_BACK), still counting its entries, and takes the next newer one', async () => {
      const kv = variant.open();
      const key = kvKeys.gatewayCrlNumber('gw-r');
      const path = join(dir, 'crl.pem');
      const store = new MemoryRevocationStore();
      await store.revoke('a1', 'keyCompromise', now);
      const older = (await generateCrl({ issuer: pki.intermediate, store, now })).pem;
      await store.revoke('b2', 'keyCompromise', now);
      const newer = (await generateCrl({ issuer: pki.intermediate, store, now })).pem;
      await store.revoke('c3', 'keyCompromise', now);
      const newest = (await generateCrl({ issuer: pki.intermediate, store, now })).pem;
      const time = new VirtualTime(now.getTime());
      const watchOn = () => new CrlFileWatch({
        path, intermediateCaPem: pki.intermediate.certificate.toString('pem'), scheduler: time, clock: time, logger: pino({ level: 'silent' }), record: { kv, key },
      });
      try {
        await writeFile(path, newer);
        const first = watchOn();
        await first.start();
        assert.equal(await kv.get(key), '2', 'the number taken is recorded');
        first.stop();

        await writeFile(path, older);
        const restarted = watchOn();
        await restarted.start();
        assert.deepEqual(restarted.freshness(), { state: 'none', crlNumber: null, nextUpdateMs: null }, 'the older CRL is not taken');
        assert.deepEqual([...restarted.refusals()], [['TRUST_CRL_ROLLED_BACK', 1]]);
        assert.deepEqual([...restarted.serials()], ['a1'], 'its entries still count as revocations');
        assert.equal(await kv.get(key), '2', 'the record is never lowered');

        await writeFile(path, newest);
        await restarted.reload();
        assert.equal(restarted.freshness().crlNumber, 3n);
        assert.deepEqual([...restarted.serials()].sort(), ['a1', 'b2', 'c3']);
        assert.equal(await kv.get(key), '3');

        // A store that lost the record (a wipe) has it written again at the next reload.
        await kv.del(key);
        await restarted.reload();
        assert.equal(await kv.get(key), '3');

        // A CRL taken while the record could not be read (here: the record moved past it behind the
        // gateway's back) is no longer current once the record is read again; its entries still count.
        await kv.set(key, '9');
        await restarted.reload();
        assert.equal(restarted.freshness().state, 'none');
        assert.deepEqual([...restarted.serials()].sort(), ['a1', 'b2', 'c3']);
        assert.equal(await kv.get(key), '9');
        restarted.stop();
      } finally {
        await kv.del(key);
        await kv.close();
      }
    });
  });
}
