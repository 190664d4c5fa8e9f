import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileExclusive, ensurePrivateDirectory, writeFileAtomic } from './atomic-file.js';
import { SdcError } from '../core/errors/index.js';

function scratch(t: { after: (fn: () => void) => void }): string {
  const directory = mkdtempSync(join(tmpdir(), 'sdc-atomic-file-'));
  t.after(() => rmSync(directory, { recursive: true, force: true }));
  return directory;
}

/** A file system without hard links, as FAT or some SMB mounts answer link(2). */
const noHardLinks = async (): Promise<void> => {
  throw Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' });
};

for (const [label, linkFile] of [['hard links', undefined], ['no hard links', noHardLinks]] as const) {
  test(`createFileExclusive (${label}): of eight racing creators exactly one wins, and every one reads the winner's bytes`, async (t) => {
    const directory = scratch(t);
    const path = join(directory, 'key.pem');
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) =>
      createFileExclusive(path, `content ${i}\n`, { mode: 0o600, linkFile })));
    assert.equal(results.filter(Boolean).length, 1);
    const winner = results.indexOf(true);
    assert.equal(readFileSync(path, 'utf8'), `content ${winner}\n`);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    // No temp files and no lock directory left behind.
    assert.deepEqual(readdirSync(directory), ['key.pem']);
  });

  test(`createFileExclusive (${label}): an existing file is never replaced`, async (t) => {
    const directory = scratch(t);
    const path = join(directory, 'ring.json');
    await writeFileAtomic(path, 'first\n', { mode: 0o600 });
    assert.equal(await createFileExclusive(path, 'second\n', { mode: 0o600, linkFile }), false);
    assert.equal(readFileSync(path, 'utf8'), 'first\n');
    assert.deepEqual(readdirSync(directory), ['ring.json']);
  });
}

test('createFileExclusive without hard links: a lock held by a live creator makes a waiter give up with STORE_FILE_CREATE_LOCKED, and nothing is written', async (t) => {
  const directory = scratch(t);
  const path = join(directory, 'key.pem');
  mkdirSync(`${path}.create-lock`); // fresh: another process is creating the file right now
  await assert.rejects(createFileExclusive(path, 'mine\n', { mode: 0o600, linkFile: noHardLinks, lockWaitMs: 50 }),
    (error) => error instanceof SdcError && error.code === 'STORE_FILE_CREATE_LOCKED');
  assert.deepEqual(readdirSync(directory).sort(), ['key.pem.create-lock']);
});

test('createFileExclusive without hard links: a lock left by a creator that died is cleared once this waiter has seen it unchanged for lockStaleAfterMs, and the file created', async (t) => {
  const directory = scratch(t);
  const path = join(directory, 'key.pem');
  mkdirSync(`${path}.create-lock`); // nobody will remove it
  assert.equal(await createFileExclusive(path, 'mine\n', { mode: 0o600, linkFile: noHardLinks, lockStaleAfterMs: 40, lockWaitMs: 600_000 }), true);
  assert.equal(readFileSync(path, 'utf8'), 'mine\n');
  assert.deepEqual(readdirSync(directory), ['key.pem']);
});

test('createFileExclusive without hard links: a lock whose time stamp looks old (a file server with its clock behind) is not taken for stale on its time stamp', async (t) => {
  const directory = scratch(t);
  const path = join(directory, 'key.pem');
  const lock = `${path}.create-lock`;
  mkdirSync(lock);
  const hourAgo = new Date(Date.now() - 3_600_000);
  utimesSync(lock, hourAgo, hourAgo);
  // The waiter gives up before it has watched the lock for lockStaleAfterMs: a live holder's lock stays.
  await assert.rejects(createFileExclusive(path, 'mine\n', { mode: 0o600, linkFile: noHardLinks, lockWaitMs: 50, lockStaleAfterMs: 600_000 }),
    (error) => error instanceof SdcError && error.code === 'STORE_FILE_CREATE_LOCKED');
  assert.deepEqual(readdirSync(directory), ['key.pem.create-lock']);
});

test('createFileExclusive: a link failure other than "no hard links" is thrown, not taken for either answer', async (t) => {
  const directory = scratch(t);
  const path = join(directory, 'key.pem');
  const diskFull = async (): Promise<void> => {
    throw Object.assign(new Error('ENOSPC: no space left on device, link'), { code: 'ENOSPC' });
  };
  await assert.rejects(createFileExclusive(path, 'mine\n', { mode: 0o600, linkFile: diskFull }), /ENOSPC/);
  assert.deepEqual(readdirSync(directory), []);
});

// Review h2, finding 3: it chmodded any existing directory to 0700; `--keys-out /tmp` as root took /tmp's sticky bit.
test('ensurePrivateDirectory: a new directory (and its parents) is 0700; an existing one keeps its mode, and a shared-writable one is refused', async (t) => {
  const directory = scratch(t);
  const created = join(directory, 'a', 'b');
  await ensurePrivateDirectory(created);
  assert.equal(statSync(created).mode & 0o7777, 0o700);
  assert.equal(statSync(join(directory, 'a')).mode & 0o077, 0);

  const readable = join(directory, 'readable');
  mkdirSync(readable);
  chmodSync(readable, 0o755);
  await ensurePrivateDirectory(readable);
  assert.equal(statSync(readable).mode & 0o7777, 0o755, 'an existing directory is used as it is');

  for (const mode of [0o1777, 0o777, 0o775, 0o757]) {
    const shared = join(directory, `shared-${mode.toString(8)}`);
    mkdirSync(shared);
    chmodSync(shared, mode);
    await assert.rejects(ensurePrivateDirectory(shared), (error) => SdcError.is(error, 'STORE_DIRECTORY_PERMISSIONS') && error.details.path === shared);
    assert.equal(statSync(shared).mode & 0o7777, mode, 'refused, never changed');
  }
});
