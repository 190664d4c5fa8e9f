// The order in which scripts/run-tests.mjs hands test files to node.
import { sep } from 'node:path';

/**
 * The files that took longest in the clean-clone runs of 3 December (npm test, 3 files at once,
 * REDIS_URL and MYSQL_URL set; the second on a machine at load 20-30, so the order is rough),
 * longest first, as paths with '/'. Several are not under test/ (the report, sim and bench CLIs,
 * the sanitizer build); with the unit files they started late and the run ended on them.
 */
export const longestFiles = Object.freeze([
  'test/e2e/viewer-browser.test.ts',
  'cli/commands/report-run.test.ts',
  'cli/commands/report.test.ts',
  'kernel/native/sanitize.test.ts',
  'test/e2e/viewer-tls.test.ts',
  'test/e2e/chaos-stores.test.ts',
  'test/e2e/chaos-process.test.ts',
  // 4 December: 35 s and 23 s of CPU since its --repeat runs (each repeat a deployment of its own).
  'cli/bench-suite.test.ts',
  // 4 December, afternoon: new; 25 s of CPU (a deployment, four enrolments, a k6 stand-in per VU)
  // and about 9 s, measured only at load 16, so placed by CPU, not by an idle run.
  'bench/k6/ci-target.test.ts',
  'cli/commands/bench-agents.test.ts',
  'sim/run.test.ts',
  'cli/commands/sim.test.ts',
  'cli/demo/demo-root-key.test.ts',
  'cli/commands/serve.test.ts',
  'cli/commands/bench-connections.test.ts',
  'cli/commands/sim-tier.test.ts',
]);

/**
 * The measured long files first, in their list's order; then the end-to-end files (under test/,
 * up to a minute each), then the rest, each group by path, so a run's order is the same on every
 * machine. Node starts files in the order given: the longest starting first leaves short ones to
 * fill the slots at the end.
 */
export function longFilesFirst(a, b) {
  const rank = (file) => {
    const listed = longestFiles.indexOf(file.split(sep).join('/'));
    if (listed >= 0) return listed;
    return longestFiles.length + (file.startsWith(`test${sep}`) ? 0 : 1);
  };
  return rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
}
