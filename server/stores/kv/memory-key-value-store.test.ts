import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../../../runtime/system.js';
import { VirtualTime } from '../../../core/time/virtual-time.js';
import { runKvContract } from './kv-contract.js';
import { MemoryKeyValueSpace, MemoryKeyValueStore } from './memory-key-value-store.js';

// The contract sleeps on real time, so here the store runs on the system clock; each test gets a
// fresh space, and namespaces are key prefixes within it (as on one Redis server).
let space = new MemoryKeyValueSpace({ clock: systemClock });
runKvContract('memory (clock port)', {
  create: async (namespace = 'main') => new MemoryKeyValueStore({ space, keyPrefix: `${namespace}:` }),
  reset: async () => { space = new MemoryKeyValueSpace({ clock: systemClock }); },
});

describe('MemoryKeyValueStore on virtual time', () => {
  it('expires keys when the virtual clock passes their TTL, not before', async () => {
    const time = new VirtualTime(1_000_000);
    const kv = new MemoryKeyValueStore({ clock: time, keyPrefix: 'p:' });
    await kv.set('presence', 'gw-1', { ttlMs: 30_000 });
    await kv.set('counter', '5', { ttlMs: 10_000 });
    assert.equal(await kv.incr('counter'), 6);
    time.advance(9_999);
    assert.equal(await kv.ttlMs('presence'), 20_001);
    assert.equal(await kv.get('counter'), '6', 'incr keeps the TTL, which has not run out yet');
    time.advance(1);
    assert.equal(await kv.get('counter'), null);
    assert.equal(await kv.expire('presence', 5_000), true);
    time.advance(4_999);
    assert.equal(await kv.get('presence'), 'gw-1');
    time.advance(1);
    assert.equal(await kv.get('presence'), null);
    assert.equal(await kv.set('presence', 'gw-2', { onlyIfAbsent: true }), true);
  });

  it('sweeps expired keys before refusing a write to a full space', async () => {
    const time = new VirtualTime(0);
    const small = new MemoryKeyValueSpace({ clock: time, keysMax: 2 });
    const kv = new MemoryKeyValueStore({ space: small });
    await kv.set('a', '1', { ttlMs: 10 });
    await kv.set('b', '1');
    await assert.rejects(kv.set('c', '1'), (error: Error & { code?: string }) => error.code === 'STORE_LIMIT');
    time.advance(10);
    assert.equal(await kv.set('c', '1'), true);
    assert.equal(small.size, 2);
  });

  it('stores sharing a space see each other through the same prefix, and close drops subscriptions', async () => {
    const time = new VirtualTime(0);
    const shared = new MemoryKeyValueSpace({ clock: time });
    const a = new MemoryKeyValueStore({ space: shared, keyPrefix: 'sdc:' });
    const b = new MemoryKeyValueStore({ space: shared, keyPrefix: 'sdc:' });
    await a.set('k', 'v');
    assert.equal(await b.get('k'), 'v');
    const heard: string[] = [];
    await b.subscribe('c', (message) => heard.push(message));
    assert.equal(await a.publish('c', 'one'), 1);
    await Promise.resolve();
    assert.deepEqual(heard, ['one']);
    await b.close();
    assert.equal(await a.publish('c', 'two'), 0);
  });
});
