import type { SqlExecutor } from '../../stores/sql/sql-port.js';
import { SdcError } from '../../errors/index.js';

/**
 * Next value of a named counter (first value 1), inside the caller's transaction. The UPDATE
 * takes the row lock on MySQL, so concurrent transactions serialise on it; a first use races only
 * on the INSERT, which the primary key settles (the loser's transaction fails and is retried).
 */
export async function nextCounterValue(tx: SqlExecutor, name: string): Promise<number> {
  const updated = await tx.execute('UPDATE counters SET value = value + 1 WHERE name = ?', [name]);
  if (updated.changes === 0) {
    await tx.execute('INSERT INTO counters (name, value) VALUES (?, 1)', [name]);
    return 1;
  }
  const [row] = await tx.query<{ value: number }>('SELECT value FROM counters WHERE name = ?', [name]);
  if (row === undefined) throw new SdcError('STORE_CONFLICT', `counter ${name} vanished inside a transaction`);
  return Number(row.value);
}
