import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { sourceModuleFork } from '../../runtime/fork-module.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { IoctlCode } from '../generated/contract.js';
import { buildNativeLibrary, nativeArtifacts } from './build.js';

// Runs the whole contract suite (fast-check fuzzing included) in a child node whose process has
// libasan and libubsan preloaded, against the library built with -fsanitize=address,undefined.
// Any out-of-bounds access or undefined behaviour aborts the child and fails this test.
function runtimeLibrary(name: string): string | undefined {
  const result = spawnSync('gcc', [`-print-file-name=${name}`], { encoding: 'utf8' });
  const path = result.stdout?.trim();
  return result.status === 0 && path && path.startsWith('/') ? path : undefined;
}

let skip: string | undefined;
let libraryPath = '';
const asan = runtimeLibrary('libasan.so');
const ubsan = runtimeLibrary('libubsan.so');
try {
  if (!asan || !ubsan) throw new Error('gcc cannot locate libasan.so / libubsan.so');
  libraryPath = buildNativeLibrary({ variant: 'sanitize' }).libraryPath;
} catch (error) {
  skip = `sanitizer build unavailable: ${(error as Error).message}`;
  if (process.env.CI) throw error;
}

/** The parent's environment minus node:test's marker, which would make the child skip its tests. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

test('contract suite passes against the ASan+UBSan build of the native library', { skip }, () => {
  const suite = sourceModuleFork(fileURLToPath(new URL('./sanitized-suite.ts', import.meta.url)));
  const result = spawnSync(process.execPath, [...suite.execArgv, '--test', '--test-reporter=spec', suite.modulePath], {
    encoding: 'utf8',
    timeout: 240_000,
    env: {
      ...childEnv(),
      SDC_KERNEL_LIBRARY: libraryPath,
      LD_PRELOAD: `${asan}:${ubsan}`,
      // Node itself keeps allocations alive at exit, so leak checking would only report node.
      ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1',
      UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
    },
  });
  const output = `${result.stdout}\n${result.stderr}`;
  assert.doesNotMatch(output, /AddressSanitizer|runtime error:/, output.slice(-4000));
  assert.equal(result.status, 0, output.slice(-4000));
  assert.match(output, /ℹ fail 0/, 'child reported failures');
});

test('the C harness replays a random corpus through the sanitized library without a violation', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sdc-harness-'));
  try {
    const ed25519 = createNodeEd25519Provider();
    writeFileSync(join(dir, 'agent.pub'), ed25519.publicKeyFromSeed(new Uint8Array(32).fill(1)));
    writeFileSync(join(dir, 'service.seed'), new Uint8Array(32).fill(2));
    mkdirSync(join(dir, 'sandbox'));
    const codes = [...Object.values(IoctlCode), 0x222000];
    const records = fc.sample(fc.tuple(fc.constantFrom(...codes), fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 600 })), { numRuns: 500, seed: 42 });
    const parts = records.map(([code, input, outLen]) => {
      const head = Buffer.alloc(12);
      head.writeUInt32LE(code, 0);
      head.writeUInt32LE(input.length, 4);
      head.writeUInt32LE(outLen, 8);
      return Buffer.concat([head, input]);
    });
    writeFileSync(join(dir, 'corpus.bin'), Buffer.concat(parts));
    const { harnessPath } = nativeArtifacts('sanitize');
    const result = spawnSync(harnessPath, [join(dir, 'sandbox'), join(dir, 'agent.pub'), join(dir, 'service.seed'), join(dir, 'corpus.bin')], {
      encoding: 'utf8', timeout: 60_000, env: { ...childEnv(), ASAN_OPTIONS: 'abort_on_error=1', UBSAN_OPTIONS: 'halt_on_error=1' },
    });
    assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /^calls=500 /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
