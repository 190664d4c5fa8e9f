// Review h11, finding 8: the bus needs Redis 7.0 (XGROUP CREATE ... ENTRIESREAD, XINFO's
// entries-added / entries-read). Redis 6.x answered the control plane's first ensureGroup with its
// bare "ERR syntax error"; now the bus asks INFO server and fails STORE_REDIS_VERSION_UNSUPPORTED
// naming the requirement. No server needed: the client's replies are faked.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { SdcError } from '../../../core/errors/index.js';
import { RedisStreamBus, redisVersionOf, requireRedisVersion } from './redis-stream-bus.js';

const info = (version: string) => `# Server\r\nredis_version:${version}\r\nredis_git_sha1:00000000\r\nredis_mode:standalone\r\n`;

/** A bus whose client answers EVALSHA with `scriptError` and INFO with `infoText`; it never reaches a server. */
function fakeBus(scriptError: string, infoText: string): { bus: RedisStreamBus; calls: string[] } {
  const bus = new RedisStreamBus({ url: 'redis://127.0.0.1:1', keyPrefix: 'h14:' });
  const client = (bus as unknown as { client: Redis }).client;
  client.disconnect();
  const calls: string[] = [];
  (client as unknown as { call: (name: string, ...args: unknown[]) => Promise<unknown> }).call = async (name: string) => {
    calls.push(name);
    if (name === 'EVALSHA') throw new Error(scriptError);
    if (name === 'INFO') return infoText;
    throw new Error(`unexpected ${name}`);
  };
  return { bus, calls };
}

describe('Redis version requirement (7.0)', () => {
  it('reads redis_version from INFO server', () => {
    assert.equal(redisVersionOf(info('6.2.14')), '6.2.14');
    assert.equal(redisVersionOf(info('7.2.4')), '7.2.4');
    assert.equal(redisVersionOf('# Server\r\nredis_mode:standalone\r\n'), undefined);
  });

  it('refuses 6.x with a typed error naming the requirement; accepts 7.0 and later, and an answer without a version', () => {
    assert.throws(() => requireRedisVersion(info('6.2.14')), (error: unknown) => SdcError.is(error, 'STORE_REDIS_VERSION_UNSUPPORTED')
      && error.message === 'Redis 7.0 or later is required (found 6.2.14)');
    for (const version of ['7.0.0', '7.2.4', '8.0.1']) requireRedisVersion(info(version));
    requireRedisVersion('no version here');
  });

  it('ensureGroup on Redis 6.2 fails STORE_REDIS_VERSION_UNSUPPORTED, not the bare syntax error', async () => {
    const { bus, calls } = fakeBus('ERR syntax error', info('6.2.14'));
    await assert.rejects(bus.ensureGroup('telemetry', 'cp', '0'), (error: unknown) => SdcError.is(error, 'STORE_REDIS_VERSION_UNSUPPORTED')
      && /Redis 7\.0 or later is required \(found 6\.2\.14\)/.test(error.message));
    assert.deepEqual(calls, ['EVALSHA', 'INFO']);
  });

  it('on Redis 7 the same error stands as it was, and other errors do not ask the version', async () => {
    const seven = fakeBus('ERR syntax error', info('7.2.4'));
    await assert.rejects(seven.bus.ensureGroup('telemetry', 'cp', '0'), (error: unknown) => SdcError.is(error, 'STORE_QUERY_FAILED') && /syntax error/.test(error.message));
    const other = fakeBus('WRONGTYPE Operation against a key holding the wrong kind of value', info('6.2.14'));
    await assert.rejects(other.bus.ensureGroup('telemetry', 'cp', '0'), (error: unknown) => SdcError.is(error, 'STORE_CONFLICT'));
    assert.deepEqual(other.calls, ['EVALSHA']);
  });
});
