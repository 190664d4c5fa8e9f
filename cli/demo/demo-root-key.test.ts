// `sdc demo` on a fresh data directory with no passphrase from anywhere (issue 12, secrets): it
// still runs to `ok`, and the root key it leaves is encrypted, with its generated passphrase in a
// 0600 file in the data directory beside D/pki (demo only), whose path the demo printed.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openssl } from '../../trust/test-fixtures.js';
import type { CliIo } from '../command.js';
import { main } from '../main.js';

test('sdc demo with no flags but a fleet size and --dir: result ok, root key encrypted with the printed demo-only passphrase file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-demo-root-key-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'data');
  let stdout = '';
  let stderr = '';
  // No SDC_ROOT_KEY_PASSPHRASE and no terminal: the demo must not need either.
  const io: CliIo = { stdout: (text) => { stdout += text; }, stderr: (text) => { stderr += text; }, readStdin: async () => '', env: {} };
  const code = await main(['demo', '--agents', '2', '--dir', dataDir, '--json'], io);
  assert.equal(code, 0, `${stdout}\n${stderr}`);
  assert.equal(JSON.parse(stdout).ok, true);
  const passphraseFile = join(dataDir, 'root-key-passphrase.generated');
  assert.ok(stderr.includes(`root key encrypted; demo-only passphrase in ${passphraseFile}`), stderr);
  assert.equal((await stat(passphraseFile)).mode & 0o777, 0o600);
  const rootKey = join(dataDir, 'pki', 'root-ca.key');
  assert.match(await readFile(rootKey, 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  assert.equal(openssl(['pkey', '-in', rootKey, '-passin', `file:${passphraseFile}`, '-noout']).status, 0);
  assert.notEqual(openssl(['pkey', '-in', rootKey, '-passin', 'pass:', '-noout']).status, 0);
});
