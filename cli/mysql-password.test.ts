import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import type { CliIo, ParsedCommandArgs } from './command.js';
import { mysqlPasswordEnv, mysqlPasswordFileEnv, mysqlUrlOption } from './mysql-password.js';
import { main } from './main.js';

function args(values: Record<string, string>): ParsedCommandArgs {
  return { values, positionals: [] } as unknown as ParsedCommandArgs;
}

function io(env: Record<string, string> = {}): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => { out.push(t); }, stderr: (t) => { err.push(t); }, readStdin: async () => '', env };
}

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-mysql-password-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('the password file goes into the URL, encoded; the newline after it is not part of it', async (t) => {
  const file = join(await tempDir(t), 'db_password');
  await writeFile(file, 'p@ss:w/rd %1\n', { mode: 0o600 });
  const url = await mysqlUrlOption(args({ mysql: 'mysql://sdc@db:3306/sdc', 'mysql-password-file': file }), io());
  assert.ok(url !== undefined);
  const parsed = new URL(url);
  assert.equal(decodeURIComponent(parsed.password), 'p@ss:w/rd %1');
  assert.equal(parsed.username, 'sdc');
  assert.equal(parsed.host, 'db:3306');
  assert.equal(parsed.pathname, '/sdc');
});

test('$SDC_MYSQL_PASSWORD_FILE names the file when the option does not; the option wins over it', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'from-env'), 'env-secret');
  await writeFile(join(dir, 'from-flag'), 'flag-secret');
  const fromEnv = await mysqlUrlOption(args({ mysql: 'mysql://sdc@db/sdc' }), io({ [mysqlPasswordFileEnv]: join(dir, 'from-env') }));
  assert.equal(new URL(fromEnv!).password, 'env-secret');
  const fromFlag = await mysqlUrlOption(args({ mysql: 'mysql://sdc@db/sdc', 'mysql-password-file': join(dir, 'from-flag') }), io({ [mysqlPasswordFileEnv]: join(dir, 'from-env') }));
  assert.equal(new URL(fromFlag!).password, 'flag-secret');
});

test('without --mysql, or without a file, the URL is left as given', async () => {
  assert.equal(await mysqlUrlOption(args({}), io({ [mysqlPasswordFileEnv]: '/nonexistent' })), undefined);
  assert.equal(await mysqlUrlOption(args({ mysql: 'mysql://root@127.0.0.1:3306/test' }), io()), 'mysql://root@127.0.0.1:3306/test');
});

test('refusals: a missing, empty, multi-line or huge file (CLI_INPUT naming it), a URL with a password as well (CLI_USAGE)', async (t) => {
  const dir = await tempDir(t);
  const cases: Array<[string, string | undefined]> = [['missing', undefined], ['empty', ''], ['only-newline', '\n'], ['two-lines', 'a\nb\n'], ['huge', 'x'.repeat(5000)]];
  for (const [name, content] of cases) {
    const file = join(dir, name);
    if (content !== undefined) await writeFile(file, content);
    await assert.rejects(mysqlUrlOption(args({ mysql: 'mysql://sdc@db/sdc', 'mysql-password-file': file }), io()), (e) => {
      assert.ok(SdcError.is(e, 'CLI_INPUT'), `${name}: ${String(e)}`);
      assert.ok(e.message.includes(file), e.message);
      return true;
    });
  }
  await writeFile(join(dir, 'ok'), 'secret');
  await assert.rejects(mysqlUrlOption(args({ mysql: 'mysql://sdc:inline@db/sdc', 'mysql-password-file': join(dir, 'ok') }), io()), (e) => SdcError.is(e, 'CLI_USAGE'));
});

test('sdc serve: a missing password file is one line naming it, before anything starts', async (t) => {
  const dir = await tempDir(t);
  const missing = join(dir, 'no-such-secret');
  const cli = io({ [mysqlPasswordFileEnv]: missing });
  const code = await main(['serve', '--dir', dir, '--mysql', 'mysql://sdc@127.0.0.1:1/sdc'], cli);
  assert.equal(code, 1);
  assert.equal(cli.err.join(''), `sdc: CLI_INPUT: cannot read the MySQL password file ${missing}: ENOENT\n`);
  assert.deepEqual(cli.out, []);
});

// A real MariaDB checks that the password from the file is the one the server receives. Skipped
// without MYSQL_URL (as the other real-store tests); the unit tests above cover the URL it builds.
test('sdc audit verify with --mysql-password-file logs in to MySQL as a user that has a password', { skip: process.env.MYSQL_URL === undefined ? 'MYSQL_URL not set' : false }, async (t) => {
  const { createConnection } = await import('mysql2/promise');
  const admin = await createConnection(process.env.MYSQL_URL!);
  const suffix = `${process.pid}`;
  const database = `sdc_pwfile_${suffix}`;
  const user = `sdc_pwfile_${suffix}`;
  const password = 'pw with spaces, @ and : signs';
  await admin.query(`CREATE DATABASE IF NOT EXISTS \`${database}\``);
  await admin.query(`CREATE USER IF NOT EXISTS '${user}'@'%' IDENTIFIED BY ?`, [password]);
  await admin.query(`GRANT ALL ON \`${database}\`.* TO '${user}'@'%'`);
  t.after(async () => {
    await admin.query(`DROP USER IF EXISTS '${user}'@'%'`);
    await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await admin.end();
  });
  const host = new URL(process.env.MYSQL_URL!).host;
  const dir = await tempDir(t);
  await writeFile(join(dir, 'db_password'), `${password}\n`, { mode: 0o600 });
  const url = `mysql://${user}@${host}/${database}`;
  const good = io();
  assert.equal(await main(['audit', 'verify', '--mysql', url, '--mysql-password-file', join(dir, 'db_password'), '--json'], good), 0, good.err.join(''));
  assert.equal(JSON.parse(good.out.join('')).ok, true);
  // Without the file the same user is refused: the password did come from the file.
  const bad = io();
  assert.notEqual(await main(['audit', 'verify', '--mysql', url, '--json'], bad), 0);
});

test('SDC_MYSQL_PASSWORD holds the password itself, after the --mysql-password-file flag and before SDC_MYSQL_PASSWORD_FILE', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'flag'), 'flag-secret');
  await writeFile(join(dir, 'env-file'), 'env-file-secret');
  const env = { [mysqlPasswordEnv]: 'env secret', [mysqlPasswordFileEnv]: join(dir, 'env-file') };
  assert.equal(decodeURIComponent(new URL((await mysqlUrlOption(args({ mysql: 'mysql://sdc@db/sdc' }), io(env)))!).password), 'env secret');
  assert.equal(new URL((await mysqlUrlOption(args({ mysql: 'mysql://sdc@db/sdc', 'mysql-password-file': join(dir, 'flag') }), io(env)))!).password, 'flag-secret');
  await assert.rejects(mysqlUrlOption(args({ mysql: 'mysql://sdc:inline@db/sdc' }), io({ [mysqlPasswordEnv]: 'x' })), (e) => SdcError.is(e, 'CLI_USAGE'));
});
