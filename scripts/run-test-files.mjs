// Started by scripts/run-tests.mjs (with the TypeScript loader, scripts/test-ts-register.mjs, and the CPU probe, which node passes on to
// each test file's process): runs the test files with node:test's run() in the order given.
// `node --test FILES` sorts its files by path whatever order they come in (node 20), so the
// longest files, most of them under test/, started last and the run ended on a tail of them.
// Otherwise the same as `node --test`: the concurrency, the per-file timeout, node's TAP or spec
// reporter on stdout, the second reporter to a file, exit code 1 when a test failed.
//
// Usage: node --import <a TypeScript loader: tsx or scripts/test-ts-register.mjs> run-test-files.mjs --concurrency N --timeout-ms MS --reporter tap|spec --report FILE FILE...
import { createWriteStream } from 'node:fs';
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

const stream = run({ files, concurrency, timeout: timeoutMs });
stream.on('test:fail', (data) => {
  if (data.todo === undefined || data.todo === false) process.exitCode = 1;
});
stream.compose(values.reporter === 'spec' ? spec() : tap).pipe(process.stdout);
stream.compose(runReporter).pipe(createWriteStream(values.report));
