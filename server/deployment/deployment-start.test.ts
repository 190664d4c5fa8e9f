import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { createConnection as connectTcp, createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createConnection as connectMysql } from 'mysql2/promise';
import pino from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { deleteKeysWithPrefix, testKeyPrefix } from '../stores/redis-test-keys.js';
import { testStoreTag } from '../stores/test-store-namespace.js';
import { startDeployment, type Deployment, type StartDeploymentOptions } from './deployment.js';
import { initDeployment, type DeploymentMaterials } from '../materials/materials.js';
import type { ReadinessReport } from './readiness.js';
import type { StoreRetryLimits } from './store-connect.js';

const mysqlUrl = process.env['MYSQL_URL'];
const redisUrl = process.env['REDIS_URL'];

/** Waits in a test are short: the tests check what is retried and logged, not how long. */
const fastRetry: StoreRetryLimits = { attemptsMax: 400, backoffMsInitial: 20, backoffMsMax: 100 };

class Lines {
  readonly lines: Array<Record<string, unknown>> = [];
  readonly text: string[] = [];
  stream(): Writable {
    return new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        for (const line of chunk.toString('utf8').split('\n').filter((l) => l.length > 0)) {
          this.text.push(line);
          this.lines.push(JSON.parse(line) as Record<string, unknown>);
        }
        done();
      },
    });
  }
}

function getJson<T>(url: string, caPem: string): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    // A connection per request: a kept-alive one can be closed by the server just as it is reused.
    const request = httpsGet(url, { ca: caPem, timeout: 10_000, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        try {
          resolve({ status: response.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as T });
        } catch (error) {
          reject(error);
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from ${url}`)));
    request.on('error', reject);
  });
}

async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await delay(50);
  }
}

/** A TCP proxy in front of a store that can refuse every connection (the store "down") or forward them. */
class SwitchableProxy {
  #mode: 'refuse' | 'forward' = 'refuse';
  readonly #sockets = new Set<Socket>();
  readonly #server: Server;
  port = 0;

  constructor(private readonly upstream: { host: string; port: number }) {
    this.#server = createTcpServer((client) => {
      if (this.#mode === 'refuse') {
        client.destroy();
        return;
      }
      const server = connectTcp(this.upstream);
      for (const socket of [client, server]) {
        this.#sockets.add(socket);
        socket.on('close', () => this.#sockets.delete(socket));
        socket.on('error', () => { client.destroy(); server.destroy(); });
      }
      client.pipe(server).pipe(client);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as AddressInfo).port;
    return this.port;
  }

  forward(): void {
    this.#mode = 'forward';
  }

  /** The store goes away: open connections are cut, new ones refused. */
  refuse(): void {
    this.#mode = 'refuse';
    for (const socket of this.#sockets) socket.destroy();
  }

  async close(): Promise<void> {
    this.refuse();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

async function withMaterials(run: (materials: DeploymentMaterials) => Promise<void>): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-deploy-start-'));
  try {
    await run(await initDeployment({ dataDir, clock: systemClock, random: systemRandom }));
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

function baseOptions(materials: DeploymentMaterials, logs: Lines): StartDeploymentOptions {
  return {
    materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler,
    logger: pino({ level: 'info' }, logs.stream()), apiPort: 0, gatewayPort: 0, scryptParams: { N: 1024, r: 8, p: 1 },
  };
}

/** A port something else listens on. */
async function occupiedPort(): Promise<{ port: number; close(): Promise<void> }> {
  const server = createTcpServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('startDeployment: ports, readiness and stores that are not up yet (embedded stores)', () => {
  it('answers /healthz and /readyz once running, naming each store up', async () => {
    await withMaterials(async (materials) => {
      const deployment = await startDeployment(baseOptions(materials, new Lines()));
      try {
        const healthz = await getJson<{ status: string }>(`${deployment.apiUrl}/healthz`, materials.rootCaPem);
        assert.deepEqual(healthz, { status: 200, body: { status: 'alive' } });
        const readyz = await getJson<ReadinessReport>(`${deployment.apiUrl}/readyz`, materials.rootCaPem);
        assert.equal(readyz.status, 200);
        assert.deepEqual(readyz.body, {
          ready: true, status: 'ready', down: [],
          dependencies: [{ name: 'sql.js', role: 'sql', state: 'up' }, { name: 'embedded', role: 'bus and key/value', state: 'up' }],
        });
      } finally {
        await deployment.stop();
      }
    });
  });

  it('a port in use is one typed refusal naming the address, for the API and for the gateway', async () => {
    await withMaterials(async (materials) => {
      const busy = await occupiedPort();
      try {
        for (const [service, code, options] of [
          ['control plane API', 'API_PORT_UNAVAILABLE', { apiPort: busy.port }],
          ['gateway', 'GATEWAY_PORT_UNAVAILABLE', { gatewayPort: busy.port }],
        ] as const) {
          await assert.rejects(startDeployment({ ...baseOptions(materials, new Lines()), ...options }), (error) => {
            assert.ok(SdcError.is(error, code), String(error));
            assert.equal(error.message, `127.0.0.1:${busy.port} (the ${service}) is already in use by another process`);
            return true;
          });
        }
        // Nothing was left listening: the API port that was taken before the failure is free again.
        const again = await startDeployment(baseOptions(materials, new Lines()));
        await again.stop();
      } finally {
        await busy.close();
      }
    });
  });

  it('a store that never answers: attempts logged naming the store and address, never the password, then STORE_UNAVAILABLE', async () => {
    await withMaterials(async (materials) => {
      const proxy = new SwitchableProxy({ host: '127.0.0.1', port: 9 });
      await proxy.listen();
      try {
        for (const [store, urls] of [
          ['mysql', { mysqlUrl: `mysql://root:s3cret-pw@127.0.0.1:${proxy.port}/sdc` }],
          ['redis', { redisUrl: `redis://:s3cret-pw@127.0.0.1:${proxy.port}/0` }],
        ] as const) {
          const logs = new Lines();
          const target = store === 'mysql' ? `root@127.0.0.1:${proxy.port}/sdc` : `127.0.0.1:${proxy.port}/0`;
          await assert.rejects(startDeployment({ ...baseOptions(materials, logs), ...urls, storeRetry: { attemptsMax: 3, backoffMsInitial: 10, backoffMsMax: 20 } }), (error) => {
            assert.ok(SdcError.is(error, 'STORE_UNAVAILABLE'), String(error));
            assert.match(error.message, new RegExp(`^${store} at ${target.replace(/[./]/g, '\\$&')} not reachable after 3 attempts: `));
            assert.doesNotMatch(error.message, /s3cret/);
            return true;
          });
          const attempts = logs.lines.filter((l) => l.store === store);
          assert.deepEqual(attempts.map((l) => [l.msg, l.attempt, l.target]), [
            [`${store} not reachable; retrying`, 1, target], [`${store} not reachable; retrying`, 2, target], [`${store} not reachable; giving up`, 3, target],
          ]);
          for (const line of logs.text) assert.doesNotMatch(line, /s3cret/);
        }
      } finally {
        await proxy.close();
      }
    });
  });

  it('a malformed store URL is refused before anything listens, without its password', async () => {
    await withMaterials(async (materials) => {
      const busy = await occupiedPort();
      try {
        // The API port is taken: a refusal of the URL shows that the URL was checked first.
        for (const urls of [{ mysqlUrl: 'mysql://root:s3cret@db.example:99999/sdc' }, { redisUrl: 'redis//:s3cret@cache' }]) {
          await assert.rejects(startDeployment({ ...baseOptions(materials, new Lines()), apiPort: busy.port, ...urls }), (error) => {
            assert.ok(SdcError.is(error, 'STORE_URL_INVALID'), String(error));
            assert.doesNotMatch(error.message, /s3cret/);
            assert.match(error.message, /\*\*\*/);
            return true;
          });
        }
      } finally {
        await busy.close();
      }
    });
  });
});

describe('startDeployment against MySQL and Redis that come up late and go away', { skip: mysqlUrl && redisUrl ? false : 'needs MYSQL_URL and REDIS_URL; the embedded suite above covers ports, readiness and the give-up path' }, () => {
  const databaseName = `sdc_start_${process.pid}_${testStoreTag()}`;
  const keyPrefix = testKeyPrefix('deploy-start');
  before(async () => {
    const admin = await connectMysql({ uri: mysqlUrl! });
    await admin.query(`CREATE DATABASE \`${databaseName}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    await admin.end();
  });
  after(async () => {
    const admin = await connectMysql({ uri: mysqlUrl! });
    await admin.query(`DROP DATABASE IF EXISTS \`${databaseName}\``);
    await admin.end();
    await deleteKeysWithPrefix(redisUrl!, keyPrefix);
  });

  it('waits for both stores with /readyz naming them, starts when they answer, and reports one that goes away', async () => {
    await withMaterials(async (materials) => {
      const mysqlTarget = new URL(mysqlUrl!);
      const redisTarget = new URL(redisUrl!);
      const mysqlProxy = new SwitchableProxy({ host: mysqlTarget.hostname, port: Number(mysqlTarget.port || 3306) });
      const redisProxy = new SwitchableProxy({ host: redisTarget.hostname, port: Number(redisTarget.port || 6379) });
      await mysqlProxy.listen();
      await redisProxy.listen();
      const viaMysqlProxy = new URL(mysqlUrl!);
      viaMysqlProxy.host = `127.0.0.1:${mysqlProxy.port}`;
      viaMysqlProxy.pathname = `/${databaseName}`;
      const viaRedisProxy = new URL(redisUrl!);
      viaRedisProxy.host = `127.0.0.1:${redisProxy.port}`;
      const logs = new Lines();
      let apiUrl: string | undefined;
      let deployment: Deployment | undefined;
      const starting = startDeployment({
        ...baseOptions(materials, logs), mysqlUrl: viaMysqlProxy.toString(), redisUrl: viaRedisProxy.toString(), keyPrefix, storeRetry: fastRetry,
        onApiListening: (url) => { apiUrl = url; },
      });
      try {
        const waiting = await eventually('a 503 /readyz naming both stores', async () => {
          if (apiUrl === undefined) return undefined;
          const answer = await getJson<ReadinessReport>(`${apiUrl}/readyz`, materials.rootCaPem);
          return answer.body.down.length === 2 ? answer : undefined;
        });
        assert.equal(waiting.status, 503);
        assert.deepEqual(waiting.body.down, ['mysql', 'redis']);
        assert.equal(waiting.body.status, 'starting');
        const healthz = await getJson<{ status: string }>(`${apiUrl}/healthz`, materials.rootCaPem);
        assert.equal(healthz.status, 200, 'alive while waiting');
        const api = await getJson<{ error: { code: string; message: string } }>(`${apiUrl}/v1/devices`, materials.rootCaPem);
        assert.equal(api.status, 503);
        assert.equal(api.body.error.code, 'API_NOT_READY');
        assert.match(api.body.error.message, /mysql \(down\)/);

        // MySQL comes up first: readiness names only Redis.
        mysqlProxy.forward();
        const redisOnly = await eventually('/readyz naming redis alone', async () => {
          const answer = await getJson<ReadinessReport>(`${apiUrl}/readyz`, materials.rootCaPem);
          return answer.body.down.length === 1 ? answer : undefined;
        });
        assert.deepEqual(redisOnly.body.down, ['redis']);
        redisProxy.forward();
        deployment = await starting;
        assert.equal(deployment.apiUrl, apiUrl, 'the API took over the port the startup server held');
        const ready = await getJson<ReadinessReport>(`${apiUrl}/readyz`, materials.rootCaPem);
        assert.equal(ready.status, 200);
        assert.equal(ready.body.ready, true);

        const retried = logs.lines.filter((l) => l.msg === 'mysql not reachable; retrying');
        assert.ok(retried.length >= 1);
        assert.equal(retried[0]!.target, `${viaMysqlProxy.username}@127.0.0.1:${mysqlProxy.port}/${databaseName}`);
        assert.ok(logs.lines.some((l) => l.msg === 'redis not reachable; retrying' && l.target === `127.0.0.1:${redisProxy.port}${viaRedisProxy.pathname === '/' ? '' : viaRedisProxy.pathname}`));
        assert.ok(logs.lines.some((l) => l.msg === 'mysql reachable') && logs.lines.some((l) => l.msg === 'redis reachable'));

        // MySQL goes away while running: /readyz says so by name, and recovers with it.
        mysqlProxy.refuse();
        const lost = await eventually('/readyz naming mysql after it went away', async () => {
          const answer = await getJson<ReadinessReport>(`${apiUrl}/readyz`, materials.rootCaPem);
          return answer.status === 503 ? answer : undefined;
        });
        assert.deepEqual(lost.body.down, ['mysql']);
        assert.equal(lost.body.status, 'not_ready');
        mysqlProxy.forward();
        await eventually('/readyz ready again', async () => {
          const answer = await getJson<ReadinessReport>(`${apiUrl}/readyz`, materials.rootCaPem);
          return answer.status === 200 ? answer : undefined;
        });
      } finally {
        mysqlProxy.forward();
        redisProxy.forward();
        deployment ??= await starting.catch(() => undefined);
        await deployment?.stop();
        await mysqlProxy.close();
        await redisProxy.close();
      }
    });
  });
});
