import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../main.js';
import type { CliIo } from '../command.js';

/**
 * `sdc ota init` writes six offline keys that exist in no other copy. Review h2, finding 1: a
 * second run wrote six new keys over them and only then refused because the repository existed,
 * so the keys root version 1 names were gone. Every refusal now comes before any key is written,
 * and each key file is created exclusively.
 */

const passphrase = 'offline key passphrase 1';
const keyNames = ['root-1.pem', 'root-2.pem', 'root-3.pem', 'targets-1.pem', 'targets-2.pem', 'targets-3.pem'];

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { stdout: (t) => out.push(t), stderr: (t) => err.push(t), readStdin: async () => '', env: { SDC_LOG_LEVEL: 'silent', SDC_TUF_KEY_PASSPHRASE: passphrase } };
  const code = await main(argv, io);
  return { code, out: out.join(''), err: err.join('') };
}

async function snapshot(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const name of (await readdir(dir)).sort()) files.set(name, await readFile(join(dir, name), 'utf8'));
  return files;
}

test('a second sdc ota init into the same data directory is refused and leaves every offline key as it was', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'sdc-ota-init-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const data = join(work, 'data');
  const keys = join(work, 'keys');
  const first = await run('ota', 'init', '--dir', data, '--keys-out', keys);
  assert.equal(first.code, 0, first.err);
  const before = await snapshot(keys);
  assert.deepEqual([...before.keys()], keyNames);
  const root = await readFile(join(data, 'tuf', 'metadata', '1.root.json'), 'utf8');

  const again = await run('ota', 'init', '--dir', data, '--keys-out', keys);
  assert.notEqual(again.code, 0);
  assert.match(again.err, /CLI_USAGE/);
  assert.match(again.err, /initialised already/);
  assert.deepEqual(await snapshot(keys), before, 'the offline keys root version 1 names are untouched');
  assert.equal(await readFile(join(data, 'tuf', 'metadata', '1.root.json'), 'utf8'), root);

  // Into a new data directory but the same --keys-out: the old keys are refused, not replaced.
  const other = await run('ota', 'init', '--dir', join(work, 'data2'), '--keys-out', keys);
  assert.notEqual(other.code, 0);
  assert.match(other.err, /TRUST_KEY_FILE_EXISTS/);
  assert.deepEqual(await snapshot(keys), before);
  assert.deepEqual(await readdir(work).then((names) => names.sort()), ['data', 'keys'], 'no repository was written for data2');
});

test('sdc ota init refuses a --keys-out holding any one of the six key names and writes nothing', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'sdc-ota-init-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const keys = join(work, 'keys');
  await mkdir(keys, { mode: 0o700 });
  await writeFile(join(keys, 'targets-3.pem'), 'somebody\'s key\n', { mode: 0o600 });
  const result = await run('ota', 'init', '--dir', join(work, 'data'), '--keys-out', keys);
  assert.notEqual(result.code, 0);
  assert.match(result.err, /TRUST_KEY_FILE_EXISTS/);
  assert.match(result.err, /targets-3\.pem/);
  assert.deepEqual(await readdir(keys), ['targets-3.pem'], 'no other key was written first');
  assert.equal(await readFile(join(keys, 'targets-3.pem'), 'utf8'), 'somebody\'s key\n');
  assert.deepEqual(await readdir(work).then((names) => names.sort()), ['keys']);
});
