import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { deploymentPaths, initDeployment } from '../../server/materials/materials.js';
import { issueGatewayCertificate } from '../../server/materials/gateway-materials.js';
import { systemClock, systemRandom } from '../../runtime/system.js';
import { deleteKeysWithPrefix, testKeyPrefix } from '../../server/stores/redis-test-keys.js';
import type { CliIo } from '../command.js';
import { main } from '../main.js';

const redisUrl = process.env['REDIS_URL'];

interface Running {
  readonly out: string[];
  readonly err: string[];
  readonly exit: Promise<number>;
  stop(): void;
}

/** `sdc <argv>` in this process; a long-running command stops when `stop()` is called. */
function sdc(argv: string[], stdin = ''): Running {
  const out: string[] = [];
  const err: string[] = [];
  let stop: (reason: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => { stop = resolve; });
  const io: CliIo = {
    stdout: (t) => out.push(t), stderr: (t) => err.push(t), readStdin: async () => stdin,
    env: { SDC_LOG_LEVEL: 'silent' }, untilStopped: () => stopped,
  };
  return { out, err, exit: main(argv, io), stop: () => stop('test') };
}

async function untilPrinted(run: Running, pattern: RegExp, timeoutMs = 120_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = run.out.join('');
    if (pattern.test(text)) return text;
    const exited = await Promise.race([run.exit.then((code) => code), delay(50).then(() => undefined)]);
    if (exited !== undefined) throw new Error(`exited ${exited} before printing ${pattern}: ${text} ${run.err.join('')}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}: ${text}`);
  }
}

function getStatus(url: string, caPem: string): Promise<number> {
  return new Promise((resolve, reject) => {
    httpsGet(url, { ca: caPem, agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    }).on('error', reject);
  });
}

async function withDataDir(run: (dir: string) => Promise<void>): Promise<void> {
  const parent = await mkdtemp(join(tmpdir(), 'sdc-serve-cli-'));
  try {
    const dir = join(parent, 'data');
    await initDeployment({ dataDir: dir, clock: systemClock, random: systemRandom });
    await run(dir);
  } finally {
    await rm(parent, { recursive: true, force: true });
  }
}

async function occupiedPort(): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('sdc serve and sdc gateway', () => {
  it('serve on embedded stores: prints the API first, then gateway, stores and ready; /healthz and /readyz answer', async () => {
    await withDataDir(async (dir) => {
      const run = sdc(['serve', '--dir', dir, '--api-port', '0', '--gateway-port', '0']);
      const text = await untilPrinted(run, /^ready$/m);
      const apiUrl = /^control plane {2}(https:\/\/\S+) \(GET \/healthz, \/readyz\)$/m.exec(text)?.[1];
      assert.ok(apiUrl, text);
      assert.match(text, /^stores {9}SQL sql\.js \(embedded\), bus and key\/value embedded$/m);
      const caPem = (await initDeployment({ dataDir: dir, clock: systemClock, random: systemRandom })).rootCaPem;
      assert.equal(await getStatus(`${apiUrl}/healthz`, caPem), 200);
      assert.equal(await getStatus(`${apiUrl}/readyz`, caPem), 200);
      run.stop();
      assert.equal(await run.exit, 0, run.err.join(''));
    });
  });

  it('a port in use is one line with the code, the address and the option to change', async () => {
    await withDataDir(async (dir) => {
      const busy = await occupiedPort();
      try {
        for (const [flag, code, service] of [['--api-port', 'API_PORT_UNAVAILABLE', 'control plane API'], ['--gateway-port', 'GATEWAY_PORT_UNAVAILABLE', 'gateway']] as const) {
          const argv = ['serve', '--dir', dir, '--api-port', '0', '--gateway-port', '0', flag, String(busy.port)];
          const run = sdc(argv);
          assert.equal(await run.exit, 1, argv.join(' '));
          assert.equal(run.err.join(''), `sdc: ${code}: 127.0.0.1:${busy.port} (the ${service}) is already in use by another process; choose another with ${flag}\n`);
        }
      } finally {
        await busy.close();
      }
    });
  });

  it('a malformed --mysql or --redis is one line naming the value without its password, for every command that takes one', async () => {
    await withDataDir(async (dir) => {
      const cases: Array<[string[], RegExp]> = [
        [['serve', '--dir', dir, '--mysql', 'mysql://root:s3cret@db.example:99999/sdc'], /^sdc: STORE_URL_INVALID: --mysql 'mysql:\/\/root:\*\*\*@db\.example:99999\/sdc' is not a URL/],
        [['serve', '--dir', dir, '--mysql', 'mysql://root:s3cret@db.example:3306'], /^sdc: STORE_URL_INVALID: --mysql 'mysql:\/\/root:\*\*\*@db\.example:3306' names no database/],
        [['serve', '--dir', dir, '--redis', 'localhost:6379'], /^sdc: STORE_URL_INVALID: --redis 'localhost:6379' has the scheme localhost; expected redis or rediss\n$/],
        [['gateway', '--dir', dir, '--gateway-id', 'gw-2', '--redis', 'redis//:s3cret@cache'], /^sdc: STORE_URL_INVALID: --redis 'redis\/\/:\*\*\*@cache' is not a URL/],
        [['demo', '--redis', 'redis://:s3cret@'], /^sdc: STORE_URL_INVALID: --redis 'redis:\/\/:\*\*\*@' (is not a URL|names no host)/],
        [['user', 'add', '--dir', dir, '--name', 'boss', '--role', 'admin', '--password-stdin', '--mysql', 'mysql:/root:s3cret@db/sdc'], /^sdc: STORE_URL_INVALID: --mysql 'mysql:\*\*\*@db\/sdc' names no host\n$/],
        [['audit', 'verify', '--dir', dir, '--mysql', 'postgres://root:s3cret@db/sdc'], /^sdc: STORE_URL_INVALID: --mysql 'postgres:\/\/root:\*\*\*@db\/sdc' has the scheme postgres; expected mysql\n$/],
      ];
      for (const [argv, expected] of cases) {
        const run = sdc(argv, 'a long enough password\n');
        assert.equal(await run.exit, 1, argv.join(' '));
        const stderr = run.err.join('');
        assert.match(stderr, expected, argv.join(' '));
        assert.equal(stderr.split('\n').length, 2, stderr);
        assert.doesNotMatch(stderr, /s3cret/);
      }
    });
  });

  it('a corrupt file in the data directory is named in the one-line refusal', async () => {
    await withDataDir(async (dir) => {
      const keyPath = deploymentPaths(dir).commandKeyPath;
      await writeFile(keyPath, '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n', { mode: 0o600 });
      const run = sdc(['serve', '--dir', dir, '--api-port', '0', '--gateway-port', '0']);
      assert.equal(await run.exit, 1);
      assert.equal(run.err.join(''), `sdc: TRUST_KEY_FILE_INVALID: ${keyPath} is not an Ed25519 private key (PKCS#8 PEM); restore it from a backup\n`);
    });
    await withDataDir(async (dir) => {
      // The JWT key ring's refusal carries the path in its details only; the CLI adds it.
      const ringPath = deploymentPaths(dir).jwtKeysPath;
      await mkdir(join(dir, 'jwt'), { mode: 0o700, recursive: true });
      await writeFile(ringPath, '{ not json', { mode: 0o600 });
      const run = sdc(['serve', '--dir', dir, '--api-port', '0', '--gateway-port', '0']);
      assert.equal(await run.exit, 1);
      const stderr = run.err.join('');
      assert.match(stderr, /^sdc: JWT_KEY_STORE_INVALID: /);
      assert.ok(stderr.includes(ringPath), stderr);
    });
  });

  it('gateway on Redis names its stores without SQL', { skip: redisUrl ? false : 'needs REDIS_URL: a separate gateway process runs only on a shared Redis' }, async () => {
    await withDataDir(async (dir) => {
      const keyPrefix = testKeyPrefix('gateway-cli');
      try {
        // The gateway issues nothing: its certificate comes from sdc pki gateway-cert (decision 0018).
        await issueGatewayCertificate({ dataDir: dir, clock: systemClock, random: systemRandom });
        const run = sdc(['gateway', '--dir', dir, '--redis', redisUrl!, '--key-prefix', keyPrefix, '--gateway-id', 'gw-cli', '--gateway-port', '0']);
        const text = await untilPrinted(run, /^ready$/m);
        assert.match(text, /^stores {9}bus and key\/value Redis \(a gateway-only process has no SQL\)$/m);
        assert.doesNotMatch(text, /MySQL/);
        assert.doesNotMatch(text, /^control plane/m);
        run.stop();
        assert.equal(await run.exit, 0, run.err.join(''));
      } finally {
        await deleteKeysWithPrefix(redisUrl!, keyPrefix);
      }
    });
  });
});
