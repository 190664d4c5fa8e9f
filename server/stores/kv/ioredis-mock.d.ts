// ioredis-mock ships no types; it mirrors the ioredis client API, which is all the kv adapter uses.
declare module 'ioredis-mock' {
  import type { Redis, RedisOptions } from 'ioredis';
  const RedisMock: new (options?: RedisOptions) => Redis;
  export default RedisMock;
}
