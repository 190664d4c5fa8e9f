import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseStrideTables, testFilesNamed } from './report-stride.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));

// Issue 14: "the STRIDE table with, for each threat, the test that covers it". A row counted as
// covered must name a test file; a row naming only code (a function) was counted as covered.
test('a threat is covered only when its test column names a test file and is not marked untested or a gap', () => {
  const threats = parseStrideTables([
    '## Gateway',
    '| STRIDE | Threat | Mitigation | Test |',
    '| --- | --- | --- | --- |',
    '| S | a | m | `server/gateway/auth.test.ts` (and `test/e2e/sessions.ts`) |',
    '| T | b | m | **untested** (operator procedure) |',
    '| I | c | m | `server/control-plane/devices.ts` verifyDeviceFrame |',
    '| D | d | m | `verify-device-certificate.test.ts`; **gap**: depth |',
  ].join('\n'));
  assert.deepEqual(threats.map((t) => [t.threat, t.covered, t.markedUntested, t.testFiles]), [
    ['a', true, false, ['server/gateway/auth.test.ts', 'test/e2e/sessions.ts']],
    ['b', false, true, []],
    ['c', false, false, []],
    ['d', false, true, ['verify-device-certificate.test.ts']],
  ]);
  assert.deepEqual(testFilesNamed('`a.test.mjs`, b.ts, `x/y.test.js`'), ['a.test.mjs', 'x/y.test.js']);
});

test('every test file the threat model names exists in the repository (the report prints them as the covering tests)', async () => {
  const threats = parseStrideTables(await readFile(new URL('../docs/security/threat-model.md', import.meta.url), 'utf8'));
  assert.ok(threats.length > 50, `${threats.length} threats read`);
  const { execFileSync } = await import('node:child_process');
  const files = execFileSync('git', ['ls-files'], { cwd: repoRoot, encoding: 'utf8' }).split('\n').filter((f) => f !== '');
  const missing = [...new Set(threats.flatMap((t) => t.testFiles))].filter((name) => !files.some((f) => f === name || f.endsWith(`/${name}`)));
  assert.deepEqual(missing, []);
});
