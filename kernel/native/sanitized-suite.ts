// The contract suite against the -fsanitize=address,undefined build. Not a *.test.ts file: it only
// makes sense in the child process sanitize.test.ts starts with libasan/libubsan preloaded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runKernelContractSuite } from '../kernel-contract-suite.js';
import { createNativeTarget } from './native-target.js';

const libraryPath = process.env.SDC_KERNEL_LIBRARY ?? '';
const agentSeed = new Uint8Array(32).fill(1);
const serviceSeed = new Uint8Array(32).fill(2);

test('the sanitizer runtime is loaded in this process', () => {
  assert.match(readFileSync('/proc/self/maps', 'utf8'), /libasan\.so/, 'libasan is not mapped: the run would prove nothing');
});

runKernelContractSuite('native under ASan+UBSan', async () => createNativeTarget({ libraryPath, agentSeed, serviceSeed }));
