// Loaded into each test file's process by scripts/run-tests.mjs (node passes its `--import` on to
// the files' processes). When the file's process exits, appends one JSON line to
// SDC_TEST_CPU_FILE: the file and its CPU seconds, user + system, its own and those of the child
// processes it waited for (agents, workers, CLIs it spawned). The runner adds them up, because
// with 2 cores the suite's wall time cannot drop below its CPU time over 2, whatever the order.
import { appendFileSync, readFileSync } from 'node:fs';

const destination = process.env.SDC_TEST_CPU_FILE;
/**
 * The test file this process runs: its source, also when npm test runs its compiled JavaScript
 * from the mirror (SDC_TEST_JS_MIRROR, one folder a line; scripts/test-ts-cache.mjs).
 */
const file = sourceOf(process.argv[1]);

function sourceOf(path) {
  const mirror = process.env.SDC_TEST_JS_MIRROR;
  const sources = process.env.SDC_TEST_JS_SOURCES;
  if (typeof path !== 'string' || !mirror || !sources || !path.endsWith('.test.js')) return path;
  for (const folder of mirror.split('\n')) {
    if (path.startsWith(`${folder}/`)) return `${sources}/${path.slice(folder.length + 1, -'.js'.length)}.ts`;
  }
  return path;
}
/** /proc reports times in USER_HZ, which Linux fixes at 100 for user space. */
const procTicksPerSecond = 100;

/** utime, stime, cutime, cstime of /proc/self/stat; null off Linux. */
function procSelfTimes() {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime field 14.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields.slice(11, 15).map((ticks) => Number(ticks) / procTicksPerSecond);
  } catch {
    return null;
  }
}

function cpuSeconds() {
  const times = procSelfTimes();
  if (times !== null && times.every(Number.isFinite)) {
    const [user, system, childrenUser, childrenSystem] = times;
    return { own: user + system, children: childrenUser + childrenSystem };
  }
  // Elsewhere the children's share is not known: the file's own time only.
  const usage = process.resourceUsage();
  return { own: (usage.userCPUTime + usage.systemCPUTime) / 1e6, children: 0 };
}

if (destination !== undefined && destination !== '' && typeof file === 'string' && file.endsWith('.test.ts')) {
  process.on('exit', () => {
    try {
      appendFileSync(destination, `${JSON.stringify({ kind: 'fileCpu', file, ...cpuSeconds() })}\n`);
    } catch {
      // The summary then lacks this file; the run's outcome is node's, not this probe's.
    }
  });
}
