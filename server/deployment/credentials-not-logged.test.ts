// Hardening 10.4 (issue 12): Redis and MySQL credentials are never logged. A deployment starts on
// a real MariaDB user and a real Redis ACL user, both with a password in the URL, does ordinary
// work (probes, logins good and bad, a refused request, a store briefly refusing a command), and
// every line it wrote (its logger at trace level, and anything on stdout, stderr or the console)
// is searched for the password, raw and percent-encoded. Needs MYSQL_URL and REDIS_URL.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get as httpsGet, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { createConnection as connectMysql } from 'mysql2/promise';
import pino from 'pino';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { initDeployment } from '../materials/materials.js';
import { issueGatewayCertificate } from '../materials/gateway-materials.js';
import { deleteKeysWithPrefix } from '../stores/redis-test-keys.js';
import { startDeployment } from './deployment.js';

const mysqlUrl = process.env['MYSQL_URL'];
const redisUrl = process.env['REDIS_URL'];
const skip = mysqlUrl === undefined || mysqlUrl === '' || redisUrl === undefined || redisUrl === ''
  ? 'MYSQL_URL or REDIS_URL is not set: this test needs a real MariaDB and Redis to create users with passwords on'
  : false;

/** Every text written to stdout, stderr and the console while `run` runs, besides what it returns. */
async function capturingProcessOutput<T>(run: () => Promise<T>): Promise<{ value: T; text: string[] }> {
  const text: string[] = [];
  const streams = [process.stdout, process.stderr] as const;
  const writes = streams.map((stream) => stream.write.bind(stream));
  const consoleMethods = ['log', 'info', 'warn', 'error', 'debug'] as const;
  const consoles = consoleMethods.map((name) => console[name]);
  streams.forEach((stream, i) => {
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      text.push(String(chunk));
      return (writes[i] as (...args: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof stream.write;
  });
  consoleMethods.forEach((name) => { console[name] = (...args: unknown[]) => { text.push(args.map(String).join(' ')); }; });
  try {
    return { value: await run(), text };
  } finally {
    streams.forEach((stream, i) => { stream.write = writes[i] as typeof stream.write; });
    consoleMethods.forEach((name, i) => { console[name] = consoles[i]!; });
  }
}

function request(method: 'GET' | 'POST', url: string, caPem: string, body?: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const send = method === 'GET' ? httpsGet : httpsRequest;
    const req = send(url, { method, ca: caPem, agent: false, timeout: 30_000, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url}`)));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Probes are answered from a result at most a second old: asks until the status is `status` (generous real-time limit). */
async function untilStatus(url: string, caPem: string, status: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const got = await request('GET', url, caPem);
    if (got === status) return;
    if (Date.now() > deadline) assert.fail(`${url} answered ${got}, not ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const sdcBin = fileURLToPath(new URL('../../bin/sdc.js', import.meta.url));

/** A real `sdc` process with its stdout and stderr collected (pino writes to fd 2 directly, past process.stderr). */
function spawnSdc(argv: string[], env: Record<string, string>): { child: ChildProcess; output: () => string } {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('SDC_')));
  const child = spawn(process.execPath, [sdcBin, ...argv], { env: { ...inherited, ...env, SDC_LOG_LEVEL: 'trace' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: string[] = [];
  child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => chunks.push(chunk.toString('utf8')));
  return { child, output: () => chunks.join('') };
}

/** Until the process's output matches, or it exits (generous real-time limit: tsx may compile the sources first). */
async function untilOutput(run: ReturnType<typeof spawnSdc>, pattern: RegExp): Promise<RegExpExecArray> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const match = pattern.exec(run.output());
    if (match) return match;
    if (run.child.exitCode !== null || Date.now() > deadline) assert.fail(`no ${pattern} (exit ${run.child.exitCode}):\n${run.output().slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function stopped(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

describe('store credentials are never logged (real MariaDB and Redis users with passwords)', { skip }, () => {
  it('a deployment started with passwords in both URLs writes neither password anywhere', async () => {
    const suffix = randomBytes(4).toString('hex');
    // Characters that URL-encoding changes, so both spellings are searched for.
    const password = `s3cret-${randomBytes(6).toString('hex')}@/:`;
    const encoded = encodeURIComponent(password);
    const user = `sdc_logs_${suffix}`;
    const database = `sdc_logs_${suffix}`;
    const admin = await connectMysql({ uri: mysqlUrl! });
    const redisAdmin = new Redis(redisUrl!);
    const dataDir = await mkdtemp(join(tmpdir(), 'sdc-credentials-'));
    const keyPrefix = `sdc-credentials-${suffix}:`;
    const lines: string[] = [];
    try {
      await admin.query(`CREATE DATABASE \`${database}\``);
      await admin.query(`CREATE USER '${user}'@'%' IDENTIFIED BY ?`, [password]);
      await admin.query(`GRANT ALL ON \`${database}\`.* TO '${user}'@'%'`);
      await redisAdmin.call('ACL', 'SETUSER', user, 'on', `>${password}`, `~${keyPrefix}*`, `&${keyPrefix}*`, '+@all');
      const mysqlTarget = new URL(mysqlUrl!);
      const redisTarget = new URL(redisUrl!);
      const withMysql = `mysql://${user}:${encoded}@${mysqlTarget.host}/${database}`;
      const withRedis = `redis://${user}:${encoded}@${redisTarget.host}/0`;
      const materials = await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
      const logger = pino({ level: 'trace' }, new Writable({ write: (chunk: Buffer, _encoding, done) => { lines.push(chunk.toString('utf8')); done(); } }));
      const { text } = await capturingProcessOutput(async () => {
        const deployment = await startDeployment({
          materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger, mysqlUrl: withMysql, redisUrl: withRedis, keyPrefix,
          apiPort: 0, gatewayPort: 0, scryptParams: { N: 1024, r: 8, p: 1 },
        });
        try {
          const api = deployment.apiUrl!;
          assert.equal(await request('GET', `${api}/readyz`, materials.rootCaPem), 200);
          await deployment.controlPlane!.auth.users.add({ name: 'root', role: 'admin', password: 'correct horse battery staple', nowMs: Date.now() });
          assert.equal(await request('POST', `${api}/v1/auth/login`, materials.rootCaPem, { name: 'root', password: 'correct horse battery staple' }), 200);
          assert.equal(await request('POST', `${api}/v1/auth/login`, materials.rootCaPem, { name: 'root', password: 'wrong horse battery staple' }), 401);
          assert.equal(await request('GET', `${api}/v1/devices`, materials.rootCaPem), 401);
          // A store that refuses a command for a moment: the driver's error is logged by whoever catches it.
          await redisAdmin.call('ACL', 'SETUSER', user, '-@all');
          await untilStatus(`${api}/readyz`, materials.rootCaPem, 503);
          await redisAdmin.call('ACL', 'SETUSER', user, '+@all');
          await untilStatus(`${api}/readyz`, materials.rootCaPem, 200);
        } finally {
          await deployment.stop();
        }
      });
      const all = [...lines, ...text];
      assert.ok(lines.length > 5, `the deployment's logger wrote ${lines.length} lines`);
      assert.ok(lines.some((l) => l.includes('enrolled devices')), 'the capture holds the start-up lines');
      for (const line of all) {
        assert.ok(!line.includes(password) && !line.includes(encoded), `a password in: ${line.slice(0, 400)}`);
      }
    } finally {
      await redisAdmin.call('ACL', 'DELUSER', user).catch(() => undefined);
      await deleteKeysWithPrefix(redisUrl!, keyPrefix).catch(() => undefined);
      await redisAdmin.quit();
      await admin.query(`DROP USER IF EXISTS '${user}'@'%'`).catch(() => undefined);
      await admin.query(`DROP DATABASE IF EXISTS \`${database}\``).catch(() => undefined);
      await admin.end();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
  it('sdc serve with both passwords from files (ready, a refused store, ready again), then a gateway with a wrong Redis password file (refused in one line): no password in anything either writes', async () => {
    const suffix = randomBytes(4).toString('hex');
    const password = `f1le-${randomBytes(6).toString('hex')}@/:`;
    const wrongPassword = `wr0ng-${randomBytes(6).toString('hex')}`;
    const user = `sdc_files_${suffix}`;
    const database = `sdc_files_${suffix}`;
    const keyPrefix = `sdc-credentials-files-${suffix}:`;
    const admin = await connectMysql({ uri: mysqlUrl! });
    const redisAdmin = new Redis(redisUrl!);
    const dir = await mkdtemp(join(tmpdir(), 'sdc-credentials-files-'));
    const dataDir = join(dir, 'data');
    const runs: Array<ReturnType<typeof spawnSdc>> = [];
    try {
      await admin.query(`CREATE DATABASE \`${database}\``);
      await admin.query(`CREATE USER '${user}'@'%' IDENTIFIED BY ?`, [password]);
      await admin.query(`GRANT ALL ON \`${database}\`.* TO '${user}'@'%'`);
      await redisAdmin.call('ACL', 'SETUSER', user, 'on', `>${password}`, `~${keyPrefix}*`, `&${keyPrefix}*`, '+@all');
      for (const [name, text] of [['db_password', password], ['redis_password', password], ['wrong_redis_password', wrongPassword]] as const) {
        await writeFile(join(dir, name), `${text}\n`, { mode: 0o600 });
      }
      const materials = await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
      // No password in either URL: both come from the files named in the environment, as in compose.yaml.
      const redisNoPassword = `redis://${user}@${new URL(redisUrl!).host}/0`;
      const serve = spawnSdc(
        ['serve', '--dir', dataDir, '--api-port', '0', '--gateway-port', '0', '--key-prefix', keyPrefix, '--redis', redisNoPassword, '--mysql', `mysql://${user}@${new URL(mysqlUrl!).host}/${database}`],
        { SDC_MYSQL_PASSWORD_FILE: join(dir, 'db_password'), SDC_REDIS_PASSWORD_FILE: join(dir, 'redis_password') },
      );
      runs.push(serve);
      const api = (await untilOutput(serve, /control plane {2}(https:\/\/\S+) /))[1]!;
      await untilOutput(serve, /^ready$/m);
      // Ready means both stores answered with the passwords from the files.
      await untilStatus(`${api}/readyz`, materials.rootCaPem, 200);
      assert.equal(await request('POST', `${api}/v1/auth/login`, materials.rootCaPem, { name: 'nobody', password: 'wrong horse battery staple' }), 401);
      await redisAdmin.call('ACL', 'SETUSER', user, '-@all');
      await untilStatus(`${api}/readyz`, materials.rootCaPem, 503);
      await redisAdmin.call('ACL', 'SETUSER', user, '+@all');
      await untilStatus(`${api}/readyz`, materials.rootCaPem, 200);
      // A gateway whose password file holds the wrong password: Redis refuses it, and the gateway
      // stops with one line saying so (a refused password does not get better by retrying).
      await issueGatewayCertificate({ dataDir, clock: systemClock, random: systemRandom }); // a gateway issues nothing (decision 0018)
      const gateway = spawnSdc(['gateway', '--dir', dataDir, '--gateway-id', 'gw-9', '--gateway-port', '0', '--key-prefix', keyPrefix, '--redis', redisNoPassword], { SDC_REDIS_PASSWORD_FILE: join(dir, 'wrong_redis_password') });
      runs.push(gateway);
      const [exitCode] = (await once(gateway.child, 'exit')) as [number | null];
      assert.equal(exitCode, 1, gateway.output());
      assert.match(gateway.output(), /^sdc: STORE_QUERY_FAILED: WRONGPASS invalid username-password pair/m);
      const output = runs.map((r) => r.output()).join('\n');
      for (const secret of [password, encodeURIComponent(password), wrongPassword]) {
        for (const line of output.split('\n')) assert.ok(!line.includes(secret), `a password in: ${line.slice(0, 400)}`);
      }
    } finally {
      for (const run of runs) await stopped(run.child);
      await redisAdmin.call('ACL', 'DELUSER', user).catch(() => undefined);
      await deleteKeysWithPrefix(redisUrl!, keyPrefix).catch(() => undefined);
      await redisAdmin.quit();
      await admin.query(`DROP USER IF EXISTS '${user}'@'%'`).catch(() => undefined);
      await admin.query(`DROP DATABASE IF EXISTS \`${database}\``).catch(() => undefined);
      await admin.end();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
