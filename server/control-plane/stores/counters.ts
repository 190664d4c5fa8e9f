import type { SqlDialect, SqlExecutor } from '../../stores/sql/sql-port.js';
import { SdcError } from '../../../core/errors/index.js';

/**
 * One atomic statement that creates a counter at 1 or adds 1. Not an UPDATE and then, when it
 * matched nothing, an INSERT: on MySQL the UPDATE of a missing row takes a gap lock, two first
 * uses in the same gap (two new devices) each hold one, and each INSERT then waits for the other's
 * gap: a deadlock in about half of such pairs (`sdc demo --mysql` failed one run in three).
 * The upsert locks only the row it creates or updates.
 */
const incrementSql: Readonly<Record<SqlDialect, string>> = {
  mysql: 'INSERT INTO counters (name, value) VALUES (?, 1) ON DUPLICATE KEY UPDATE value = value + 1',
  sqlite: 'INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1',
};

/**
 * Next value of a named counter (first value 1), inside the caller's transaction. The upsert holds
 * the row lock until the transaction ends, so concurrent transactions serialise on the row and
 * the read that follows sees this transaction's own increment.
 */
export async function nextCounterValue(tx: SqlExecutor, name: string): Promise<number> {
  await tx.execute(incrementSql[tx.dialect], [name]);
  const [row] = await tx.query<{ value: number }>('SELECT value FROM counters WHERE name = ?', [name]);
  if (row === undefined) throw new SdcError('STORE_CONFLICT', `counter ${name} vanished inside a transaction`);
  return Number(row.value);
}
