// The order in which scripts/run-tests.mjs hands test files to node.
import { sep } from 'node:path';

/**
 * The end-to-end files (under test/) take up to a minute each, the unit files a second or two.
 * Node starts files in the order given, so sorted by path the long ones came last and the run
 * ended on a tail of one or two of them while the other slots sat idle: they start first, and
 * within each group the order is by path, so a run's order is the same on every machine.
 */
export function longFilesFirst(a, b) {
  const rank = (file) => (file.startsWith(`test${sep}`) ? 0 : 1);
  return rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
}
