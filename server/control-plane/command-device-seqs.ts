import { SdcError } from '../../core/errors/index.js';
import type { SqlDialect, SqlExecutor } from '../stores/sql/sql-port.js';

/**
 * Counters per upsert and per read (two placeholders each in the upsert). A group commit takes
 * at most transitionsPerGroupMax creates (64 by default); a larger group is split, in name order.
 */
const countersPerStatementMax = 64;

/**
 * The same counter rows as stores/counters.ts (`device_seq:<device id>`, first value 1), each
 * raised by the number of seqs asked of it. Its answer is read back by the SELECT below: on
 * MySQL, LAST_INSERT_ID(expr) hands back one value per statement, not one per row.
 */
function addSql(dialect: SqlDialect, rows: number): string {
  const values = Array.from({ length: rows }, () => '(?, ?)').join(', ');
  return dialect === 'mysql'
    ? `INSERT INTO counters (name, value) VALUES ${values} ON DUPLICATE KEY UPDATE value = value + VALUES(value)`
    : `INSERT INTO counters (name, value) VALUES ${values} ON CONFLICT (name) DO UPDATE SET value = value + excluded.value`;
}

/** The counter a device's command seqs come from (also taken one at a time by approvals, rollouts and lone creates). */
export const deviceSeqCounterName = (deviceId: string): string => `device_seq:${deviceId}`;
const counterName = deviceSeqCounterName;

/**
 * The next device_seq of each device asked, inside the caller's transaction, in two statements
 * per countersPerStatementMax devices instead of one upsert per create (issue 17: the group
 * commit of creates made one round trip per member for its seq, about one per command, the
 * largest single statement of a command's SQL). A device asked k times gets k consecutive seqs,
 * in the order asked. The upsert locks each row until the transaction ends, so the values read
 * after it are this transaction's own (no other writer can move them in between); rows are
 * locked in name order, so two groups naming the same devices cannot deadlock on each other.
 */
export async function takeDeviceSeqs(tx: SqlExecutor, deviceIds: readonly string[]): Promise<number[]> {
  const asked = new Map<string, number>();
  for (const deviceId of deviceIds) asked.set(counterName(deviceId), (asked.get(counterName(deviceId)) ?? 0) + 1);
  const names = [...asked.keys()].sort();
  const last = new Map<string, number>();
  for (let start = 0; start < names.length; start += countersPerStatementMax) {
    const chunk = names.slice(start, start + countersPerStatementMax);
    await tx.execute(addSql(tx.dialect, chunk.length), chunk.flatMap((name) => [name, asked.get(name)!]));
    const rows = await tx.query<{ name: string; value: number | string }>(
      `SELECT name, value FROM counters WHERE name IN (${chunk.map(() => '?').join(', ')})`, chunk);
    for (const row of rows) last.set(row.name, Number(row.value));
  }
  // Each device's seqs run from (its value now - times asked + 1) up to its value now, handed out in the order asked.
  const next = new Map<string, number>();
  for (const name of names) {
    const value = last.get(name);
    const count = asked.get(name)!;
    if (value === undefined) throw new SdcError('STORE_CONFLICT', `counter ${name} vanished inside a transaction`);
    if (!Number.isSafeInteger(value) || value < count) throw new SdcError('STORE_CORRUPT', `counter ${name} holds ${value} after adding ${count}`);
    next.set(name, value - count + 1);
  }
  return deviceIds.map((deviceId) => {
    const seq = next.get(counterName(deviceId))!;
    next.set(counterName(deviceId), seq + 1);
    return seq;
  });
}
