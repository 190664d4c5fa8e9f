// The second reporter of scripts/run-tests.mjs (node's TAP or spec reporter is the first). It
// writes JSON lines to its destination file, for the runner to print after node's output ends:
// - one `{ kind: 'failure', file, name, message }` per failed test, so a run thousands of lines
//   long ends with what failed. A suite or file that failed only because a test inside it failed
//   is left out: the test is listed, and listing each enclosing level again would bury it;
// - one `{ kind: 'fileTimes', secondsByFile }` at the end: per test file, the summed durations of
//   its top-level tests and suites (node 20's reporters name suites, not files), so the runner can
//   say where the run's time went.
// One reporter for both: node adds listeners per reporter, and a third one passed its limit of 10
// (a MaxListenersExceededWarning on every run).

/** Nesting levels kept per file, to name a failure with its enclosing suites. */
const nestingMax = 32;

export default async function* runReporter(source) {
  const open = new Map(); // file -> names of the suites/tests started at each nesting level
  const secondsByFile = new Map();
  for await (const event of source) {
    const data = event.data ?? {};
    if (event.type === 'test:start' && data.nesting < nestingMax) {
      const path = open.get(data.file) ?? [];
      path.length = data.nesting;
      path.push(data.name);
      open.set(data.file, path);
    }
    if ((event.type === 'test:pass' || event.type === 'test:fail') && data.nesting === 0 && typeof data.file === 'string') {
      secondsByFile.set(data.file, (secondsByFile.get(data.file) ?? 0) + (data.details?.duration_ms ?? 0) / 1000);
    }
    if (event.type !== 'test:fail') continue;
    const error = data.details?.error;
    if (error?.failureType === 'subtestsFailed') continue;
    const path = (open.get(data.file) ?? []).slice(0, data.nesting);
    const cause = error?.cause ?? error;
    const message = String(cause?.message ?? cause ?? 'failed').split('\n')[0];
    yield `${JSON.stringify({ kind: 'failure', file: data.file ?? null, name: [...path, data.name].join(' > '), message })}\n`;
  }
  yield `${JSON.stringify({ kind: 'fileTimes', secondsByFile: Object.fromEntries(secondsByFile) })}\n`;
}
