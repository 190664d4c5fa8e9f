import { runKvContract } from './kv-contract.js';
import { createEmbeddedKeyValueStore } from './redis-key-value-store.js';

// ioredis-mock instances share one keyspace per process, so each test gets its own prefix.
let run = 0;
runKvContract('ioredis-mock (embedded)', {
  create: async (namespace = 'main') => createEmbeddedKeyValueStore({ keyPrefix: `kv-test:${run}:${namespace}:` }),
  reset: async () => { run++; },
});
