// Started by scripts/run-tests.mjs (with the TypeScript loader, scripts/test-ts-register.mjs, and the CPU probe, which node passes on to
// each test file's process): runs the test files with node:test's run() in the order given.
// `node --test FILES` sorts its files by path whatever order they come in (node 20), so the
// longest files, most of them under test/, started last and the run ended on a tail of them.
// Otherwise the same as `node --test`: the concurrency, the per-file timeout, node's TAP or spec
// reporter on stdout, the second reporter to a file, exit code 1 when a test failed.
//
// Usage: node --import <a TypeScript loader: tsx or scripts/test-ts-register.mjs> run-test-files.mjs --concurrency N --timeout-ms MS --reporter tap|spec --report FILE FILE...
//
// npm test gives it the test files' compiled JavaScript in the mirror of scripts/test-ts-cache.mjs
// instead, and no loader. SDC_TEST_JS_MIRROR and SDC_TEST_JS_SOURCES then name the mirror and the
// repository: the events name each file by its source (core/x.test.ts, not the mirror's
// core/x.test.js), so the reporters, the failure list and the slowest files read as before.
import { createWriteStream } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { Transform } from 'node:stream';
import { run } from 'node:test';
import { spec, tap } from 'node:test/reporters';
import { parseArgs } from 'node:util';
import runReporter from './run-reporter.mjs';

const { values, positionals: files } = parseArgs({
  allowPositionals: true,
  options: {
    concurrency: { type: 'string' },
    'timeout-ms': { type: 'string' },
    reporter: { type: 'string', default: 'tap' },
    report: { type: 'string' },
  },
});
const concurrency = Number(values.concurrency);
const timeoutMs = Number(values['timeout-ms']);
if (!Number.isInteger(concurrency) || concurrency < 1 || !Number.isFinite(timeoutMs) || values.report === undefined || files.length === 0) {
  console.error('usage: run-test-files.mjs --concurrency N --timeout-ms MS --reporter tap|spec --report FILE FILE...');
  process.exit(2);
}

/** The source of a test file in the mirror (a path under SDC_TEST_JS_MIRROR), or the path unchanged. */
function sourceOfMirrored(path, mirror = process.env.SDC_TEST_JS_MIRROR, sources = process.env.SDC_TEST_JS_SOURCES) {
  if (typeof path !== 'string' || !mirror || !sources) return path;
  for (const folder of mirror.split('\n')) {
    const inMirror = relative(folder, path);
    if (!inMirror.startsWith('..') && !isAbsolute(inMirror) && inMirror.endsWith('.test.js')) return join(sources, `${inMirror.slice(0, -'.js'.length)}.ts`);
  }
  return path;
}

/** An event with its file (and a file's own name, which is its path) named by the source. */
function sourceNamed(event) {
  const data = event.data;
  if (data === null || typeof data !== 'object' || typeof data.file !== 'string') return event;
  const file = sourceOfMirrored(data.file);
  if (file === data.file) return event;
  return { ...event, data: { ...data, file, ...(data.name === data.file ? { name: file } : {}) } };
}

const stream = run({ files, concurrency, timeout: timeoutMs });
stream.on('test:fail', (data) => {
  if (data.todo === undefined || data.todo === false) process.exitCode = 1;
});
const events = stream.pipe(new Transform({ objectMode: true, transform(event, _encoding, done) { done(null, sourceNamed(event)); } }));
events.compose(values.reporter === 'spec' ? spec() : tap).pipe(process.stdout);
events.compose(runReporter).pipe(createWriteStream(values.report));
