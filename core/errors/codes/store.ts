import { defineErrors } from '../error-spec.js';

/** Storage ports and their adapters (server/stores): SQL, stream bus, key/value. */
export const storeErrors = defineErrors({
  STORE_LOCKED: { fault: 'local', status: 503, summary: 'The embedded database file is held by another running process' },
  STORE_UNAVAILABLE: { fault: 'local', status: 503, summary: 'Store cannot be reached or refused the connection' },
  STORE_COMMIT_UNKNOWN: { fault: 'local', status: 503, summary: 'The connection was lost while a COMMIT was in flight: the transaction may or may not have committed' },
  STORE_UNIQUE_VIOLATION: { fault: 'remote', status: 409, summary: 'Write would duplicate a unique key' },
  STORE_CONFLICT: { fault: 'local', status: 409, summary: 'Operation conflicts with the stored state (deadlock, lock timeout, wrong value type)' },
  STORE_CORRUPT: { fault: 'local', status: 500, summary: 'Stored data is not readable (damaged database file or malformed reply)' },
  STORE_LIMIT: { fault: 'local', status: 503, summary: 'A store limit was reached (streams, groups, consumers, waiters, entry or value size)' },
  STORE_SAVE_FAILED: { fault: 'local', status: 503, summary: 'Writing the database file failed; recent commits are in memory but not durable' },
  STORE_CLOSED: { fault: 'local', status: 503, summary: 'Store was used after close' },
  STORE_NO_GROUP: { fault: 'local', status: 500, summary: 'Consumer group does not exist on the stream (call ensureGroup first)' },
  STORE_QUERY_FAILED: { fault: 'local', status: 500, summary: 'Store rejected a statement (syntax, missing table, constraint other than unique)' },
  STORE_REDIS_VERSION_UNSUPPORTED: { fault: 'local', status: 500, summary: 'The Redis server is older than the bus needs (Redis 7.0 or later)' },
  STORE_MIGRATION_FAILED: { fault: 'local', status: 500, summary: 'A schema migration failed or the migration list is inconsistent' },
  STORE_INVALID_ARGUMENT: { fault: 'local', status: 500, summary: 'A store function was called with an invalid argument (a bug in the caller)' },
  STORE_ENTRIES_TRIMMED_UNREAD: { fault: 'local', status: 500, summary: 'A stream trimmed (maxLen) entries its consumer group had not read: they are lost; logged, counted (sdc_bus_entries_trimmed_unread_total), audited and shown by /readyz, never thrown' },
  STORE_FILE_CREATE_LOCKED: { fault: 'local', status: 503, summary: 'Creating a key or ring file on a file system without hard links waited too long for another process\'s lock directory (<file>.create-lock); remove it if no process is starting' },
  STORE_DIRECTORY_PERMISSIONS: { fault: 'local', status: 500, summary: 'A directory named for private files (keys, state, --keys-out) exists and group or others may write to it (a shared directory such as /tmp); refused, its mode is left as it was' },
  STORE_URL_INVALID: { fault: 'remote', status: 400, summary: 'A store URL (--mysql, --redis) is malformed, has the wrong scheme or lacks a host or database; the message shows it without its password' },
});
