import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { SdcError } from '../../../core/errors/index.js';
import { deleteKeysWithPrefix, testKeyPrefix } from '../redis-test-keys.js';
import { runBusContract } from './bus-contract.js';
import { RedisStreamBus } from './redis-stream-bus.js';

const redisUrl = process.env['REDIS_URL'];

if (redisUrl === undefined || redisUrl === '') {
  // No server configured (REDIS_URL unset, e.g. redis://127.0.0.1:6379/0). The same contract runs
  // against the in-memory adapter in memory-stream-bus.test.ts, so the port is still covered.
  describe('StreamBus contract: Redis Streams', { skip: 'REDIS_URL is not set; memory-stream-bus.test.ts runs the contract in memory' }, () => {});
} else {
  const basePrefix = testKeyPrefix('bus');
  let resets = 0;
  let prefix = basePrefix;
  after(() => deleteKeysWithPrefix(redisUrl, basePrefix));

  runBusContract('Redis Streams (ioredis)', {
    create: async () => new RedisStreamBus({ url: redisUrl, keyPrefix: prefix }),
    // A fresh prefix per test: nothing to delete now, everything under basePrefix goes at the end.
    reset: async () => { prefix = `${basePrefix}${resets++}:`; },
    // Idle times are measured by the Redis server, so real time has to pass.
    advance: (ms) => sleep(ms),
    // Every key of this test's bus, so FLUSHALL's effect without touching the shared server's other keys.
    wipe: () => deleteKeysWithPrefix(redisUrl, prefix),
  });

  describe('Redis Streams: appendBatch', () => {
    const prefix = `${basePrefix}batch:`;
    /** The commands the bus's client sends (ioredis sendCommand, pipelined or not). */
    const countingCommands = (bus: RedisStreamBus): string[] => {
      const client = (bus as unknown as { client: Redis }).client;
      const sent: string[] = [];
      const send = client.sendCommand.bind(client);
      client.sendCommand = ((command: { name: string }, ...rest: unknown[]) => {
        sent.push(command.name);
        return (send as (...args: unknown[]) => unknown)(command, ...rest);
      }) as Redis['sendCommand'];
      return sent;
    };

    it('sends a batch of 100 entries as one command, not one XADD each, and stores them in order with their fields', async () => {
      const bus = new RedisStreamBus({ url: redisUrl, keyPrefix: prefix });
      try {
        await bus.length('one'); // connected: commands queued before the connection is up are sent again when it is
        const sent = countingCommands(bus);
        const entries = Array.from({ length: 100 }, (_, i) => ({ kind: 'telemetry', data: `{"n":${i}}`, frame: `f${i}`.repeat(i % 7) || 'x' }));
        const ids = await bus.appendBatch('one', entries, { maxLen: 1_000 });
        assert.deepEqual(sent.map((name) => name.toUpperCase()), ['EVALSHA']);
        assert.equal(ids.length, 100);
        const stored = await bus.range('one', { count: 200 });
        assert.deepEqual(stored.map((e) => e.id), ids);
        assert.deepEqual(stored.map((e) => e.fields), entries);
      } finally {
        await bus.close();
      }
    });

    it('keeps the order of a batch longer than one script call, and runs after Redis lost its scripts', async () => {
      const admin = new Redis(redisUrl);
      const bus = new RedisStreamBus({ url: redisUrl, keyPrefix: prefix });
      try {
        // What a restart without persistence does to the script cache: EVALSHA answers NOSCRIPT, the bus sends the text.
        await admin.script('FLUSH');
        const entries = Array.from({ length: 300 }, (_, i) => ({ n: String(i) }));
        const ids = await bus.appendBatch('long', entries, { maxLen: 250 });
        assert.equal(ids.length, 300);
        const idParts = ids.map((id) => id.split('-').map(Number) as [number, number]);
        assert.ok(idParts.every(([ms, seq], i) => i === 0 || ms > idParts[i - 1]![0] || (ms === idParts[i - 1]![0] && seq > idParts[i - 1]![1])), 'ids in increasing order');
        const stored = await bus.range('long', { count: 1_000 });
        assert.ok(stored.length >= 250, 'MAXLEN ~ keeps at least maxLen');
        assert.deepEqual(stored.map((e) => e.fields.n), entries.slice(300 - stored.length).map((e) => e.n));
      } finally {
        await bus.close();
        admin.disconnect();
      }
    });

    it('a batch to a key of another type is refused STORE_CONFLICT, as the pipeline was', async () => {
      const admin = new Redis(redisUrl);
      const bus = new RedisStreamBus({ url: redisUrl, keyPrefix: prefix });
      try {
        await admin.set(`${prefix}not-a-stream`, 'x');
        await assert.rejects(bus.appendBatch('not-a-stream', [{ n: '1' }, { n: '2' }]), (error) => SdcError.is(error, 'STORE_CONFLICT'));
      } finally {
        await bus.close();
        admin.disconnect();
      }
    });
  });
}
