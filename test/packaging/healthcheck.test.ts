// deploy/healthcheck.mjs, the containers' probe (Dockerfile HEALTHCHECK, compose.yaml): run as the
// container runs it, against an HTTPS server with a certificate from our CA and a plain TCP port.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { systemClock, systemRandom } from '../../runtime/system.js';
import { initDeployment } from '../../server/materials/materials.js';

const script = fileURLToPath(new URL('../../deploy/healthcheck.mjs', import.meta.url));
/** The probe gives up after 4 s itself; this only bounds a hung child on a very busy machine. */
const childTimeoutMs = 60_000;

function probe(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [script, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: childTimeoutMs }, (error, stdout) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout });
    });
  });
}

describe('deploy/healthcheck.mjs', () => {
  let dir: string;
  let caPath: string;
  let otherCaPath: string;
  let httpsPort: number;
  let tcpPort: number;
  let closedPort: number;
  const servers: Array<{ close(): unknown }> = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sdc-healthcheck-'));
    const materials = await initDeployment({ dataDir: join(dir, 'data'), clock: systemClock, random: systemRandom });
    await initDeployment({ dataDir: join(dir, 'other'), clock: systemClock, random: systemRandom });
    caPath = join(dir, 'data', 'pki', 'root-ca.pem');
    otherCaPath = join(dir, 'other', 'pki', 'root-ca.pem');
    const https = createHttpsServer({ cert: `${materials.serverTls.certPem.trim()}\n${materials.intermediateCaPem.trim()}\n`, key: materials.serverTls.keyPem }, (request, response) => {
      response.writeHead(request.url === '/healthz' ? 200 : 503, { 'content-type': 'application/json' }).end('{}');
    });
    https.listen(0, '127.0.0.1');
    await once(https, 'listening');
    httpsPort = (https.address() as AddressInfo).port;
    const tcp = createTcpServer((socket) => socket.destroy());
    tcp.listen(0, '127.0.0.1');
    await once(tcp, 'listening');
    tcpPort = (tcp.address() as AddressInfo).port;
    const closed = createTcpServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    closedPort = (closed.address() as AddressInfo).port;
    closed.close();
    servers.push(https, tcp);
  });
  after(async () => {
    for (const server of servers) server.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('https: 200 is healthy, anything else is not, naming the answer', async () => {
    const env = { SDC_HEALTHCHECK_CA: caPath };
    assert.deepEqual(await probe([`https://localhost:${httpsPort}/healthz`], env), { code: 0, stdout: '/healthz answered 200\n' });
    assert.deepEqual(await probe([`https://localhost:${httpsPort}/readyz`], env), { code: 1, stdout: '/readyz answered 503\n' });
  });

  test('the target may come from SDC_HEALTHCHECK_URL (compose.yaml sets it per service)', async () => {
    const result = await probe([], { SDC_HEALTHCHECK_CA: caPath, SDC_HEALTHCHECK_URL: `https://localhost:${httpsPort}/healthz` });
    assert.equal(result.code, 0, result.stdout);
  });

  test('https trusts only the given CA: another CA, or no CA file, is unhealthy', async () => {
    const other = await probe([`https://localhost:${httpsPort}/healthz`], { SDC_HEALTHCHECK_CA: otherCaPath });
    assert.equal(other.code, 1);
    assert.match(other.stdout, /certificate/i);
    const missing = await probe([`https://localhost:${httpsPort}/healthz`], { SDC_HEALTHCHECK_CA: join(dir, 'nope.pem') });
    assert.deepEqual(missing, { code: 1, stdout: `cannot read the CA ${join(dir, 'nope.pem')}: ENOENT\n` });
  });

  test('tcp: a listening port is healthy, a closed one is not; none is always healthy; a bad target is not', async () => {
    assert.equal((await probe([`tcp://127.0.0.1:${tcpPort}`], {})).code, 0);
    assert.equal((await probe([`tcp://127.0.0.1:${closedPort}`], {})).code, 1);
    assert.equal((await probe(['none'], {})).code, 0);
    for (const bad of ['http://localhost:8080/healthz', 'tcp://localhost', 'not a url']) {
      const result = await probe([bad], {});
      assert.equal(result.code, 1, bad);
      assert.match(result.stdout, /not a probe target/);
    }
  });
});
