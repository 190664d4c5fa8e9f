import { SdcError } from '../core/errors/index.js';
import type { StreamBus } from '../server/stores/bus/bus-port.js';
import type { ExecuteResult, SqlDatabase, SqlTransaction, SqlValue } from '../server/stores/sql/sql-port.js';

/**
 * Store wrappers for outage faults: while `down()` is true every call fails with
 * STORE_UNAVAILABLE, as a lost Redis or MySQL connection does; otherwise calls pass through.
 * close() always passes through, so the run can shut down mid-outage.
 */
const unavailable = (what: string) => new SdcError('STORE_UNAVAILABLE', `${what} is unavailable (simulated outage)`);

export function faultySql(inner: SqlDatabase, down: () => boolean): SqlDatabase {
  const guard = () => { if (down()) throw unavailable('SQL'); };
  return {
    dialect: inner.dialect,
    async query<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T[]> { guard(); return inner.query<T>(sql, params); },
    async execute(sql: string, params?: readonly SqlValue[]): Promise<ExecuteResult> { guard(); return inner.execute(sql, params); },
    async transaction<T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T> { guard(); return inner.transaction(fn); },
    close: () => inner.close(),
  };
}

export function faultyBus(inner: StreamBus, down: () => boolean): StreamBus {
  const guard = () => { if (down()) throw unavailable('the stream bus'); };
  return {
    async append(stream, fields, opts) { guard(); return inner.append(stream, fields, opts); },
    async appendBatch(stream, entries, opts) { guard(); return inner.appendBatch(stream, entries, opts); },
    async ensureGroup(stream, group, startId) { guard(); return inner.ensureGroup(stream, group, startId); },
    async readGroup(stream, group, consumer, opts) { guard(); return inner.readGroup(stream, group, consumer, opts); },
    async ack(stream, group, ids) { guard(); return inner.ack(stream, group, ids); },
    async pending(stream, group, opts) { guard(); return inner.pending(stream, group, opts); },
    async claim(stream, group, consumer, opts) { guard(); return inner.claim(stream, group, consumer, opts); },
    async deadLetter(stream, group, id, reason) { guard(); return inner.deadLetter(stream, group, id, reason); },
    deadMaxLen: inner.deadMaxLen,
    async length(stream) { guard(); return inner.length(stream); },
    async range(stream, opts) { guard(); return inner.range(stream, opts); },
    async remove(stream, ids) { guard(); return inner.remove(stream, ids); },
    async trimmedUnread(stream, group) { guard(); return inner.trimmedUnread(stream, group); },
    close: () => inner.close(),
  };
}
