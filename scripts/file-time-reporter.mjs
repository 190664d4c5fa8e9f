// A third reporter for scripts/run-tests.mjs: adds up, per test file, the durations of its
// top-level tests and suites, and writes one JSON object { file: seconds } at the end, so the
// runner can print where the run's time went (the slowest files first). Node 20's own reporters
// name suites, not files, and a suite's name rarely says which file holds it.
export default async function* fileTimeReporter(source) {
  const secondsByFile = new Map();
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const data = event.data ?? {};
    if (data.nesting !== 0 || typeof data.file !== 'string') continue;
    const seconds = (data.details?.duration_ms ?? 0) / 1000;
    secondsByFile.set(data.file, (secondsByFile.get(data.file) ?? 0) + seconds);
  }
  yield JSON.stringify(Object.fromEntries(secondsByFile));
}
