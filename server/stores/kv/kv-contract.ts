import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { SdcError } from '../../../core/errors/index.js';
import type { KeyValueStore } from './kv-port.js';

export interface KvContractTarget {
  /** A store; stores created with different namespaces must not see each other's keys or channels. */
  create(namespace?: string): Promise<KeyValueStore>;
  reset(): Promise<void>;
  /** ioredis-mock's Lua VM loses the error of a command inside a script: STORE_QUERY_FAILED, not STORE_CONFLICT. */
  readonly scriptErrorsUntyped?: boolean;
  /**
   * ioredis-mock's Lua (fengari) STRLEN counts UTF-16 code units, not bytes, and its GET of an
   * empty string comes back as nil: getBounded's multibyte and empty cases are not asked of it
   * through the script (the embedded store reads its keyspace instead, and is asked them).
   */
  readonly mockLuaStrings?: boolean;
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => SdcError.is(error) && error.code === code);
}

/** Polls until `condition` holds; pub/sub delivery is asynchronous on every adapter. */
async function eventually(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  for (let waitedMs = 0; !condition(); waitedMs += 5) {
    if (waitedMs >= timeoutMs) assert.fail('condition did not hold in time');
    await sleep(5);
  }
}

/** The one behaviour every KeyValueStore adapter must have. TTLs are short real times (ioredis-mock and Redis keep real time). */
export function runKvContract(name: string, target: KvContractTarget): void {
  describe(`KeyValueStore contract: ${name}`, () => {
    let kv: KeyValueStore;
    beforeEach(async () => {
      await target.reset();
      kv = await target.create();
    });
    afterEach(async () => {
      await kv.close();
    });

    it('gets, sets and deletes strings', async () => {
      assert.equal(await kv.get('k'), null);
      assert.equal(await kv.set('k', 'v1 ünï'), true);
      assert.equal(await kv.get('k'), 'v1 ünï');
      assert.equal(await kv.set('k', 'v2'), true);
      assert.equal(await kv.get('k'), 'v2');
      assert.equal(await kv.del('k'), true);
      assert.equal(await kv.del('k'), false);
      assert.equal(await kv.get('k'), null);
    });

    it('writes with onlyIfAbsent only when the key is missing', async () => {
      assert.equal(await kv.set('nx', 'first', { onlyIfAbsent: true }), true);
      assert.equal(await kv.set('nx', 'second', { onlyIfAbsent: true }), false);
      assert.equal(await kv.get('nx'), 'first');
      assert.equal(await kv.set('nx-ttl', 'a', { onlyIfAbsent: true, ttlMs: 10_000 }), true);
      assert.equal(await kv.set('nx-ttl', 'b', { onlyIfAbsent: true, ttlMs: 10_000 }), false);
    });

    it('compareAndSet writes only over exactly the expected value, never a missing key, and sets the TTL', async () => {
      assert.equal(await kv.compareAndSet('cas', 'a', 'b'), false, 'a missing key is not the expected value');
      assert.equal(await kv.get('cas'), null);
      await kv.set('cas', 'a');
      assert.equal(await kv.compareAndSet('cas', 'other', 'b'), false);
      assert.equal(await kv.get('cas'), 'a');
      assert.equal(await kv.compareAndSet('cas', 'a', 'b', { ttlMs: 10_000 }), true);
      assert.equal(await kv.get('cas'), 'b');
      const remaining = await kv.ttlMs('cas');
      assert.ok(remaining !== null && remaining > 0 && remaining <= 10_000, `ttl ${remaining}`);
      assert.equal(await kv.compareAndSet('cas', 'b', 'c'), true);
      assert.equal(await kv.ttlMs('cas'), null, 'a write without ttlMs removes the TTL, as set does');
      // Of concurrent writers expecting the same value, exactly one wins.
      const wins = await Promise.all(['x', 'y', 'z'].map((v) => kv.compareAndSet('cas', 'c', v)));
      assert.equal(wins.filter(Boolean).length, 1);
    });

    it('deleteIfEqual removes only exactly the expected value, and one of racing deleters wins', async () => {
      assert.equal(await kv.deleteIfEqual('die', 'a'), false, 'a missing key is not the expected value');
      await kv.set('die', 'a', { ttlMs: 10_000 });
      assert.equal(await kv.deleteIfEqual('die', 'other'), false);
      assert.equal(await kv.deleteIfEqual('die', ''), false, 'an empty expectation is not a wildcard');
      assert.equal(await kv.get('die'), 'a');
      assert.ok((await kv.ttlMs('die'))! > 0, 'a refused delete leaves the TTL');
      assert.equal(await kv.deleteIfEqual('die', 'a'), true);
      assert.equal(await kv.get('die'), null);
      // An old owner's delete after a new owner wrote its value removes nothing.
      await kv.set('die', 'new');
      assert.equal(await kv.deleteIfEqual('die', 'old'), false);
      assert.equal(await kv.get('die'), 'new');
      const wins = await Promise.all([1, 2, 3].map(() => kv.deleteIfEqual('die', 'new')));
      assert.equal(wins.filter(Boolean).length, 1);
    });

    it('getBounded answers a value above the bound by its size only, and deleteIfLarger removes only such a value', async () => {
      assert.deepEqual(await kv.getBounded('gb', 4), { state: 'absent' });
      await kv.set('gb', 'abcdef');
      assert.deepEqual(await kv.getBounded('gb', 6), { state: 'value', value: 'abcdef' });
      assert.deepEqual(await kv.getBounded('gb', 5), { state: 'tooLarge', bytes: 6 });
      if (target.mockLuaStrings !== true) {
        await kv.set('gb-utf8', 'üñï'); // 6 bytes in UTF-8, 3 characters: the bound counts bytes, as Redis STRLEN does
        assert.deepEqual(await kv.getBounded('gb-utf8', 6), { state: 'value', value: 'üñï' });
        assert.deepEqual(await kv.getBounded('gb-utf8', 5), { state: 'tooLarge', bytes: 6 });
        assert.equal(await kv.deleteIfLarger('gb-utf8', 5), true);
        await kv.set('gb-empty', '');
        assert.deepEqual(await kv.getBounded('gb-empty', 0), { state: 'value', value: '' }, 'an empty value is not a missing one');
      }
      assert.equal(await kv.deleteIfLarger('gb', 6), false, 'a value within the bound is kept');
      assert.equal(await kv.get('gb'), 'abcdef');
      assert.equal(await kv.deleteIfLarger('gb', 5), true);
      assert.equal(await kv.get('gb'), null);
      assert.equal(await kv.deleteIfLarger('gb', 0), false, 'a missing key');
      await rejectsWithCode(kv.getBounded('gb', -1), 'STORE_INVALID_ARGUMENT');
      await rejectsWithCode(kv.getBounded('gb', 1.5), 'STORE_INVALID_ARGUMENT');
      await rejectsWithCode(kv.deleteIfLarger('gb', -1), 'STORE_INVALID_ARGUMENT');
    });

    it('take gets and deletes at once, and of racing takers exactly one gets the value', async () => {
      assert.equal(await kv.take('tk'), null, 'a missing key');
      await kv.set('tk', 'once ü', { ttlMs: 10_000 });
      assert.equal(await kv.take('tk'), 'once ü');
      assert.equal(await kv.get('tk'), null, 'taken means deleted');
      assert.equal(await kv.take('tk'), null, 'a second take finds nothing');
      await kv.set('tk', 'raced');
      const taken = await Promise.all([1, 2, 3, 4].map(() => kv.take('tk')));
      assert.deepEqual(taken.filter((value) => value !== null), ['raced']);
      await kv.set('tk-short', 'v', { ttlMs: 100 });
      await sleep(250);
      assert.equal(await kv.take('tk-short'), null, 'an expired key is not taken');
    });

    it('expires keys after their TTL', async () => {
      await kv.set('short', 'v', { ttlMs: 150 });
      const remaining = await kv.ttlMs('short');
      assert.ok(remaining !== null && remaining > 0 && remaining <= 150, `ttl ${remaining}`);
      await kv.set('long', 'v');
      assert.equal(await kv.ttlMs('long'), null, 'no TTL');
      assert.equal(await kv.expire('long', 150), true);
      assert.equal(await kv.expire('missing', 150), false);
      await kv.set('cleared', 'v', { ttlMs: 150 });
      await kv.set('cleared', 'v'); // a plain write removes the TTL
      await sleep(300);
      assert.equal(await kv.get('short'), null);
      assert.equal(await kv.get('long'), null);
      assert.equal(await kv.ttlMs('short'), null);
      assert.equal(await kv.get('cleared'), 'v');
      assert.equal(await kv.set('short', 'again', { onlyIfAbsent: true }), true, 'an expired key is absent');
    });

    it('counts with incr', async () => {
      assert.equal(await kv.incr('n'), 1);
      assert.equal(await kv.incr('n', 5), 6);
      assert.equal(await kv.incr('n', -10), -4);
      assert.equal(await kv.get('n'), '-4');
      await kv.set('text', 'abc');
      await rejectsWithCode(kv.incr('text'), 'STORE_CONFLICT');
      await rejectsWithCode(kv.incr('n', 1.5), 'STORE_INVALID_ARGUMENT');
    });

    it('expiringSetAdd bounds unexpired members on the caller\'s clock; a refusal adds and extends nothing', async () => {
      const t0 = 1_000_000;
      const add = (member: string, nowMs: number, expiresAtMs: number, membersMax = 3) => kv.expiringSetAdd('held', member, { nowMs, expiresAtMs, membersMax });
      assert.equal(await kv.expiringSetCount('held', t0), 0, 'a missing set');
      assert.deepEqual(await add('a', t0, t0 + 10_000), { added: true, members: 1 });
      assert.deepEqual(await add('b', t0, t0 + 20_000), { added: true, members: 2 });
      assert.deepEqual(await add('c', t0, t0 + 30_000), { added: true, members: 3 });
      const ttlBefore = await kv.ttlMs('held');
      assert.ok(ttlBefore !== null && ttlBefore > 0 && ttlBefore <= 30_000, `the key lives until its last member expires: ${ttlBefore}`);
      assert.deepEqual(await add('d', t0 + 5_000, t0 + 35_000), { added: false, members: 3 });
      const ttlAfter = await kv.ttlMs('held');
      assert.ok(ttlAfter !== null && ttlAfter <= ttlBefore, `a refusal does not extend the key: ${ttlAfter} after ${ttlBefore}`);
      assert.equal(await kv.expiringSetCount('held', t0 + 5_000), 3, 'the refused member is not there');
      // At a's expiry it stops counting, and its place is free without anyone removing it.
      assert.equal(await kv.expiringSetCount('held', t0 + 10_000), 2);
      assert.deepEqual(await add('d', t0 + 10_000, t0 + 40_000), { added: true, members: 3 });
      assert.deepEqual(await add('b', t0 + 10_000, t0 + 25_000, 4), { added: true, members: 3 }, 'adding a member again moves its expiry');
      assert.equal(await kv.expiringSetCount('held', t0 + 20_000), 3, 'b now expires at +25 s');
      assert.equal(await kv.expiringSetRemove('held', 'b'), true);
      assert.equal(await kv.expiringSetRemove('held', 'b'), false);
      assert.equal(await kv.expiringSetCount('held', t0 + 20_000), 2);
      assert.equal(await kv.expiringSetCount('held', t0 + 40_000), 0, 'all expired');
      assert.deepEqual(await add('e', t0 + 40_000, t0 + 41_000, 1), { added: true, members: 1 }, 'expired members were pruned');
      // Of racing adders for the last places, exactly that many win.
      const raced = await Promise.all(['p', 'q', 'r', 's', 't'].map((member) => kv.expiringSetAdd('race', member, { nowMs: t0, expiresAtMs: t0 + 10_000, membersMax: 3 })));
      assert.equal(raced.filter((result) => result.added).length, 3);
      assert.equal(await kv.expiringSetCount('race', t0), 3);
      await rejectsWithCode(add('x', t0, t0), 'STORE_INVALID_ARGUMENT');
      await rejectsWithCode(add('x', t0, t0 + 1, 0), 'STORE_INVALID_ARGUMENT');
      await rejectsWithCode(add('', t0, t0 + 1), 'STORE_INVALID_ARGUMENT');
      await kv.set('plain', 'v');
      await rejectsWithCode(kv.expiringSetAdd('plain', 'm', { nowMs: t0, expiresAtMs: t0 + 1_000, membersMax: 3 }), target.scriptErrorsUntyped === true ? 'STORE_QUERY_FAILED' : 'STORE_CONFLICT');
      assert.equal(await kv.get('plain'), 'v');
    });

    it('delivers published messages to subscribers until they unsubscribe', async () => {
      const received: string[] = [];
      const other: string[] = [];
      const unsubscribe = await kv.subscribe('news', (message) => received.push(message));
      const unsubscribeOther = await kv.subscribe('news', (message) => other.push(`other:${message}`));
      assert.equal(await kv.publish('news', 'hello'), 1, 'one connection is subscribed, however many handlers');
      await eventually(() => received.length === 1 && other.length === 1);
      assert.deepEqual(received, ['hello']);
      await unsubscribe();
      await kv.publish('news', 'second');
      await eventually(() => other.length === 2);
      assert.deepEqual(received, ['hello'], 'an unsubscribed handler hears nothing more');
      await unsubscribeOther();
      assert.equal(await kv.publish('news', 'nobody'), 0);
      await unsubscribeOther(); // unsubscribing twice is harmless
    });

    it('keeps namespaces apart', async () => {
      const neighbour = await target.create('neighbour');
      try {
        await kv.set('shared-name', 'mine');
        assert.equal(await neighbour.get('shared-name'), null);
        const heard: string[] = [];
        await neighbour.subscribe('chan', (message) => heard.push(message));
        assert.equal(await kv.publish('chan', 'not for you'), 0);
        assert.deepEqual(heard, []);
      } finally {
        await neighbour.close();
      }
    });

    it('refuses invalid keys and use after close', async () => {
      await rejectsWithCode(kv.get(''), 'STORE_INVALID_ARGUMENT');
      await rejectsWithCode(kv.set('k', 'v', { ttlMs: 0 }), 'STORE_INVALID_ARGUMENT');
      const other = await target.create('closing');
      await other.close();
      await rejectsWithCode(other.get('k'), 'STORE_CLOSED');
    });
  });
}
