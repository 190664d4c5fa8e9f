import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import type { CliIo, ParsedCommandArgs } from './command.js';
import { main } from './main.js';
import { redisPasswordEnv, redisPasswordFileEnv, redisUrlOption } from './redis-password.js';

function args(values: Record<string, string>): ParsedCommandArgs {
  return { values, positionals: [] } as unknown as ParsedCommandArgs;
}

function io(env: Record<string, string> = {}): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => { out.push(t); }, stderr: (t) => { err.push(t); }, readStdin: async () => '', env };
}

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-redis-password-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('the Redis password file goes into the URL, encoded, for an ACL user or the default user', async (t) => {
  const file = join(await tempDir(t), 'redis_password');
  await writeFile(file, 'p@ss:w/rd %1\n', { mode: 0o600 });
  const withUser = new URL((await redisUrlOption(args({ redis: 'redis://sdc@redis:6379/0', 'redis-password-file': file }), io()))!);
  assert.equal(decodeURIComponent(withUser.password), 'p@ss:w/rd %1');
  assert.equal(withUser.username, 'sdc');
  assert.equal(withUser.host, 'redis:6379');
  assert.equal(withUser.pathname, '/0');
  const defaultUser = new URL((await redisUrlOption(args({ redis: 'redis://redis:6379' }), io({ [redisPasswordFileEnv]: file })))!);
  assert.equal(defaultUser.username, '');
  assert.equal(decodeURIComponent(defaultUser.password), 'p@ss:w/rd %1');
});

test('the option wins over $SDC_REDIS_PASSWORD_FILE; without a file the URL (with its own password, if any) is left as given', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'from-env'), 'env-secret');
  await writeFile(join(dir, 'from-flag'), 'flag-secret');
  const both = await redisUrlOption(args({ redis: 'redis://h', 'redis-password-file': join(dir, 'from-flag') }), io({ [redisPasswordFileEnv]: join(dir, 'from-env') }));
  assert.equal(new URL(both!).password, 'flag-secret');
  assert.equal(await redisUrlOption(args({}), io({ [redisPasswordFileEnv]: join(dir, 'from-env') })), undefined);
  assert.equal(await redisUrlOption(args({ redis: 'redis://:inline@h:6379/0' }), io()), 'redis://:inline@h:6379/0');
});

test('refusals name the file, never the password: a missing or empty file (CLI_INPUT), a URL with a password as well (CLI_USAGE)', async (t) => {
  const dir = await tempDir(t);
  const missing = join(dir, 'missing');
  await assert.rejects(redisUrlOption(args({ redis: 'redis://h', 'redis-password-file': missing }), io()), (e) => SdcError.is(e, 'CLI_INPUT') && e.message === `cannot read the Redis password file ${missing}: ENOENT`);
  await writeFile(join(dir, 'empty'), '\n');
  await assert.rejects(redisUrlOption(args({ redis: 'redis://h', 'redis-password-file': join(dir, 'empty') }), io()), (e) => SdcError.is(e, 'CLI_INPUT'));
  await writeFile(join(dir, 'ok'), 'file-secret-value');
  await assert.rejects(redisUrlOption(args({ redis: 'redis://:url-secret-value@h', 'redis-password-file': join(dir, 'ok') }), io()), (e) => {
    assert.ok(SdcError.is(e, 'CLI_USAGE'));
    assert.doesNotMatch(e.message, /secret-value/);
    return true;
  });
});

test('sdc gateway: a missing Redis password file is one line naming it, before anything starts', async (t) => {
  const dir = await tempDir(t);
  const missing = join(dir, 'no-such-secret');
  const cli = io({ [redisPasswordFileEnv]: missing });
  const code = await main(['gateway', '--dir', dir, '--redis', 'redis://127.0.0.1:1/0', '--gateway-id', 'gw-2'], cli);
  assert.equal(code, 1);
  assert.equal(cli.err.join(''), `sdc: CLI_INPUT: cannot read the Redis password file ${missing}: ENOENT\n`);
  assert.deepEqual(cli.out, []);
});

test('SDC_REDIS_PASSWORD holds the password itself: after the --redis-password-file flag, before SDC_REDIS_PASSWORD_FILE; beside a URL password refused naming the variable only', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'flag'), 'flag-secret');
  await writeFile(join(dir, 'env-file'), 'env-file-secret');
  const env = { [redisPasswordEnv]: 'env secret/@:', [redisPasswordFileEnv]: join(dir, 'env-file') };
  assert.equal(decodeURIComponent(new URL((await redisUrlOption(args({ redis: 'redis://h/0' }), io(env)))!).password), 'env secret/@:');
  assert.equal(new URL((await redisUrlOption(args({ redis: 'redis://h/0', 'redis-password-file': join(dir, 'flag') }), io(env)))!).password, 'flag-secret');
  assert.equal(new URL((await redisUrlOption(args({ redis: 'redis://h/0' }), io({ [redisPasswordFileEnv]: join(dir, 'env-file') })))!).password, 'env-file-secret');
  await assert.rejects(redisUrlOption(args({ redis: 'redis://:url-secret-value@h' }), io({ [redisPasswordEnv]: 'env-secret-value' })), (e) => {
    assert.ok(SdcError.is(e, 'CLI_USAGE'));
    assert.equal(e.message, `--redis has a password and ${redisPasswordEnv} gives one too: use one of them`);
    return true;
  });
});
