// A second reporter for scripts/run-tests.mjs: writes one JSON line per failed test to its
// destination file, so the runner can list the failures after node's own output ends.
// A suite or file that failed only because a test inside it failed is left out: the test is
// listed, and listing each enclosing level again would bury it.

/** Nesting levels kept per file, to name a failure with its enclosing suites. */
const nestingMax = 32;

export default async function* failureReporter(source) {
  const open = new Map(); // file -> names of the suites/tests started at each nesting level
  for await (const event of source) {
    const data = event.data ?? {};
    if (event.type === 'test:start' && data.nesting < nestingMax) {
      const path = open.get(data.file) ?? [];
      path.length = data.nesting;
      path.push(data.name);
      open.set(data.file, path);
    }
    if (event.type !== 'test:fail') continue;
    const error = data.details?.error;
    if (error?.failureType === 'subtestsFailed') continue;
    const path = (open.get(data.file) ?? []).slice(0, data.nesting);
    const cause = error?.cause ?? error;
    const message = String(cause?.message ?? cause ?? 'failed').split('\n')[0];
    yield `${JSON.stringify({ file: data.file ?? null, name: [...path, data.name].join(' > '), message })}\n`;
  }
}
