// The store client libraries, loaded when a store of theirs is opened rather than when a module
// naming them is imported. Every process that imports the control plane, the gateway or the
// deployment reached ioredis and mysql2 (and ioredis-mock) at import time, whichever stores it then
// opened: about 0.1 s of CPU per process for the two real-store clients alone, paid by every test
// file and child process that runs on embedded stores (docs/deployment.md, 2026-12-06). All three
// are CommonJS, so `require` loads them synchronously where a constructor needs one, and skips
// the ES module loader's export scan of them too.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** ioredis, for a Redis URL. */
export function ioredisLibrary(): typeof import('ioredis') {
  return require('ioredis') as typeof import('ioredis');
}

/** ioredis-mock, the embedded key/value store's engine. */
export function ioredisMockLibrary(): typeof import('ioredis-mock').default {
  // CommonJS `module.exports = RedisMock`: require answers the class, which an import names `default`.
  return require('ioredis-mock') as typeof import('ioredis-mock').default;
}

/** mysql2's callback API, for a MySQL URL. */
export function mysql2Library(): typeof import('mysql2') {
  return require('mysql2') as typeof import('mysql2');
}

/** mysql2's promise API (the test harnesses' database set-up and `sdc chaos run`'s clean-up). */
export function mysql2PromiseLibrary(): typeof import('mysql2/promise') {
  return require('mysql2/promise') as typeof import('mysql2/promise');
}
