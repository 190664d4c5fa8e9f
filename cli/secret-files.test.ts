import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SdcError } from '../core/errors/index.js';
import { loadLogin, removeLogin, saveLogin } from './credentials.js';
import { loadOrCreateSigningKey, signingKeyPath } from './commands/approvals.js';

/**
 * The CLI's secrets (the login token, an approver's Ed25519 seed) are written through a temp file
 * with a random name created exclusively: a symlink planted at the old guessable name
 * (`<path>.<pid>.tmp`) is never followed, its target stays untouched, and the file is 0600.
 */
async function withPlantedLink(name: string, write: (env: Record<string, string>, path: string) => Promise<string>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-secret-'));
  try {
    const env = { SDC_CREDENTIALS: join(dir, 'cfg', 'credentials.json') };
    const target = join(dir, 'victim.txt');
    await writeFile(target, 'untouched\n');
    await mkdir(join(dir, 'cfg'), { recursive: true });
    const path = name === 'credentials' ? env.SDC_CREDENTIALS : signingKeyPath(env, 'ann');
    await symlink(target, `${path}.${process.pid}.tmp`);
    const written = await write(env, path);
    assert.equal(written, path);
    assert.equal(await readFile(target, 'utf8'), 'untouched\n', 'the planted target is not written');
    assert.ok((await lstat(path)).isFile(), 'a regular file, not a link');
    if (process.platform !== 'win32') assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual((await readdir(join(dir, 'cfg'))).filter((file) => file.endsWith('.tmp') && !file.includes(String(process.pid))), [], 'no temp file left');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('sdc login: the token is saved 0600 without following a symlink planted at <path>.<pid>.tmp', async () => {
  await withPlantedLink('credentials', async (env) => saveLogin(env, {
    server: 'https://cp.example:8443', ca_pem: 'PEM', name: 'ann', role: 'admin', token: 'secret-token', expires_at_ms: 1,
  }));
});

test('an approver\'s signing key is saved 0600 without following a symlink planted at <path>.<pid>.tmp', async () => {
  await withPlantedLink('key', async (env) => {
    const created = await loadOrCreateSigningKey(env, 'ann');
    assert.equal(created.created, true);
    return created.path;
  });
});

// Review h2, finding 7: both files were used whatever their mode, and credentials.json was read whole before its size check.
test('an approver\'s signing key file that group or others may read is refused (TRUST_KEY_FILE_PERMISSIONS), never replaced; an oversized one is not read', { skip: process.platform === 'win32' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-secret-'));
  try {
    const env = { SDC_CREDENTIALS: join(dir, 'cfg', 'credentials.json') };
    const created = await loadOrCreateSigningKey(env, 'ann');
    const before = await readFile(created.path, 'utf8');
    await chmod(created.path, 0o640);
    await assert.rejects(loadOrCreateSigningKey(env, 'ann'), (e) => SdcError.is(e, 'TRUST_KEY_FILE_PERMISSIONS') && e.details.path === created.path);
    assert.equal(await readFile(created.path, 'utf8'), before, 'left as it was');
    await chmod(created.path, 0o600);
    assert.deepEqual((await loadOrCreateSigningKey(env, 'ann')).seed, created.seed);
    // 3 GiB (sparse): refused by its size, before any read.
    await truncate(created.path, 3 * 2 ** 30);
    await assert.rejects(loadOrCreateSigningKey(env, 'ann'), (e) => SdcError.is(e, 'CLI_INPUT') && /is not readable/.test(e.message) && e.details.errno === undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the stored login: a credentials.json group or others may read is refused (CLI_SECRET_FILE_PERMISSIONS); an oversized one is not read; logout removes either', { skip: process.platform === 'win32' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-secret-'));
  try {
    const env = { SDC_CREDENTIALS: join(dir, 'cfg', 'credentials.json') };
    const login = { server: 'https://cp.example:8443', ca_pem: 'PEM', name: 'ann', role: 'admin', token: 'secret-token', expires_at_ms: 10 };
    const path = await saveLogin(env, login);
    assert.deepEqual(await loadLogin(env, 1), login);
    await chmod(path, 0o644);
    await assert.rejects(loadLogin(env, 1), (e) => SdcError.is(e, 'CLI_SECRET_FILE_PERMISSIONS') && e.details.path === path);
    assert.equal(await removeLogin(env), true);
    await saveLogin(env, login);
    await truncate(path, 3 * 2 ** 30);
    await assert.rejects(loadLogin(env, 1), (e) => SdcError.is(e, 'CLI_INPUT') && /stored login is not readable/.test(e.message));
    assert.equal(await removeLogin(env), true);
    await assert.rejects(loadLogin(env, 1), (e) => SdcError.is(e, 'CLI_INPUT') && /not logged in/.test(e.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
