// A gateway fetching its CRL from the control plane (`sdc gateway --crl-url`, decision 0021,
// 2026-12-06) over real HTTPS: the control plane of the test harness serves GET /v1/crl, and a
// revocation there reaches the gateway's CRL road at its next reload (the gateway's key/value store
// here holds no revoked keys, as after a wipe). A stand-in server on the deployment's TLS
// certificate answers what a wrong or hostile control plane could: another CA's CRL, an older CRL
// of ours, too many bytes, no answer, an error status. Each is refused with its code, counted, and
// the CRL held is kept. With the file as well, the higher-numbered of the two is taken. The watch is reloaded by the test (its scheduler never runs).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { chmod, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { createCrl, readVerifiedCrl } from '../../trust/crl.js';
import { makeTestPki } from '../../trust/test-fixtures.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import { createEmbeddedKeyValueStore } from '../stores/kv/redis-key-value-store.js';
import { createRevocationCheck } from '../gateway/revocation-check.js';
import { ServiceMetrics } from '../observability/metrics.js';
import { makeDeviceKey, makeHarness, sqlJsTarget, type Harness } from '../control-plane/test-support.js';
import { CrlFileWatch, crlMetricsCollector } from './crl-file-watch.js';

type StandInAnswer = { status: number; body: string } | 'silent';

describe('a gateway fetching its CRL from the control plane (--crl-url)', () => {
  let h: Harness;
  let crlUrl: URL;
  /** What the stand-in server answers next: a status and a body, or nothing at all. */
  let standIn: StandInAnswer = { status: 200, body: '' };
  let standInServer: Server;
  let standInUrl: URL;

  before(async () => {
    h = await makeHarness(sqlJsTarget);
    crlUrl = new URL('/v1/crl', (await h.cp.listen({ host: '127.0.0.1', port: 0, tls: true })).url);
    const { certPem, keyPem } = h.materials.serverTls;
    standInServer = createServer({ cert: `${certPem.trim()}\n${h.materials.intermediateCaPem.trim()}\n`, key: keyPem, minVersion: 'TLSv1.3' }, (_req, res) => {
      if (standIn === 'silent') return; // holds the request open: the fetch's deadline ends it
      res.writeHead(standIn.status, { 'content-type': 'application/x-pem-file' }).end(standIn.body);
    });
    await new Promise<void>((resolve) => standInServer.listen(0, '127.0.0.1', resolve));
    standInUrl = new URL(`https://127.0.0.1:${(standInServer.address() as AddressInfo).port}/v1/crl`);
  });
  after(async () => {
    standInServer.closeAllConnections();
    await new Promise((resolve) => standInServer.close(resolve));
    await h.close();
  });

  let gateways = 0;
  /** A watch on `url` (a CRL file of its own, none at first), its log lines and its metrics. */
  function gateway(url: URL, fetch: { caPem?: string; timeoutMs?: number; bytesMax?: number } = {}) {
    gateways += 1;
    const lines: Array<{ code?: string; msg: string }> = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => { lines.push(JSON.parse(line) as { code?: string; msg: string }); } });
    const watch = new CrlFileWatch({
      path: join(h.dir, `no-crl-file-here-${gateways}.pem`), intermediateCaPem: h.materials.intermediateCaPem, scheduler: new VirtualTime(), clock: h.clock, logger,
      fetch: { url, caPem: fetch.caPem ?? h.materials.rootCaPem, ...(fetch.timeoutMs === undefined ? {} : { timeoutMs: fetch.timeoutMs }), ...(fetch.bytesMax === undefined ? {} : { bytesMax: fetch.bytesMax }) },
    });
    const metrics = new ServiceMetrics();
    metrics.addCollector(crlMetricsCollector(watch, metrics));
    return { watch, lines, metrics };
  }

  async function enrolledSerial(deviceId: string): Promise<string> {
    const key = await makeDeviceKey(deviceId);
    const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId });
    const { certificate_pem: pem } = await h.cp.devices.enroll({ deviceId, token, csrPem: key.csrPem });
    const { X509Certificate } = await import('node:crypto');
    return new X509Certificate(pem).serialNumber;
  }

  it('GET /v1/crl is public PEM that caches must revalidate', async () => {
    const answer = await fetchRaw(crlUrl, h.materials.rootCaPem);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-type'], 'application/x-pem-file');
    assert.equal(answer.headers['cache-control'], 'public, no-cache');
    assert.match(answer.body, /^-----BEGIN X509 CRL-----/);
  });

  it('takes the control plane\'s CRL, and a revocation made there refuses the device at the gateway\'s next reload', async () => {
    const serial = await enrolledSerial('crl-fetch-dev-1');
    const { watch, metrics } = gateway(crlUrl);
    // A gateway whose key/value store lost the revoked keys: the CRL is the only road here.
    const kv = createEmbeddedKeyValueStore({ keyPrefix: 'h8-crl-fetch:' });
    const isRevoked = createRevocationCheck({ kv, crlSerials: () => watch.serials() });
    try {
      await watch.reload();
      const first = watch.freshness();
      assert.equal(first.state, 'fresh');
      assert.equal(await isRevoked(serial), false);
      const revoked = await h.cp.devices.revoke({ actor: 'root', deviceId: 'crl-fetch-dev-1', reason: 'keyCompromise' });
      assert.equal(await isRevoked(serial), false, 'not before the gateway reloads');
      await watch.reload();
      assert.equal(watch.freshness().crlNumber, BigInt(revoked.crl_number));
      assert.ok(watch.freshness().crlNumber! > first.crlNumber!);
      assert.equal(await isRevoked(serial), true, 'the fetched CRL lists the revoked certificate');
      assert.deepEqual([...watch.fetchFailures()], []);
      assert.match(await metrics.registry.metrics(), new RegExp(`sdc_gateway_crl_number ${revoked.crl_number}\\b`));
    } finally {
      await kv.close();
    }
  });

  it('refuses what a wrong or hostile server answers, each with its code and counted, and keeps the CRL held', async () => {
    const { watch, lines, metrics } = gateway(standInUrl, { timeoutMs: 2_000, bytesMax: 64 * 1024 });
    const ours = await h.cp.devices.crlPem();
    standIn = { status: 200, body: ours };
    await watch.reload();
    const held = watch.freshness();
    assert.equal(held.state, 'fresh');
    const heldSerials = watch.serials();
    const otherCa = await makeTestPki(new Date(h.clock.nowMs() - 60_000));
    const attempts: Array<[string, StandInAnswer, string]> = [
      ['another CA\'s CRL', { status: 200, body: (await createCrl({ issuer: otherCa.intermediate, entries: [], crlNumber: held.crlNumber! + 100n, now: new Date(h.clock.nowMs()) })).pem }, 'TRUST_CRL_INVALID'],
      ['not a CRL', { status: 200, body: 'hello' }, 'TRUST_CRL_INVALID'],
      ['an error status', { status: 503, body: '{}' }, 'TRUST_CRL_FETCH_REFUSED'],
      ['a redirect', { status: 302, body: '' }, 'TRUST_CRL_FETCH_REFUSED'],
      ['more than the size limit', { status: 200, body: `${ours}\n${'x'.repeat(64 * 1024)}` }, 'TRUST_CRL_FETCH_TOO_LARGE'],
      ['no answer', 'silent', 'TRUST_CRL_FETCH_TIMEOUT'],
    ];
    for (const [what, answer, code] of attempts) {
      standIn = answer;
      lines.length = 0;
      await watch.reload();
      assert.equal(watch.fetchFailures().get(code as never) !== undefined, true, `${what}: counted as ${code}`);
      assert.ok(lines.some((line) => line.code === code), `${what}: logged with ${code}`);
      assert.deepEqual(watch.freshness(), held, `${what}: the CRL held is kept`);
      assert.equal(watch.serials(), heldSerials, `${what}: its revocations are kept`);
    }
    assert.deepEqual(Object.fromEntries(watch.fetchFailures()), {
      TRUST_CRL_INVALID: 2, TRUST_CRL_FETCH_REFUSED: 2, TRUST_CRL_FETCH_TOO_LARGE: 1, TRUST_CRL_FETCH_TIMEOUT: 1,
    });
    assert.match(await metrics.registry.metrics(), /sdc_gateway_crl_fetch_failures_total\{code="TRUST_CRL_FETCH_REFUSED"\} 2/);
  });

  it('with the file too, takes the higher-numbered; an older answer (another API replica) or older copy is not taken, and no rollback alarm', async () => {
    const path = join(h.dir, 'crl-copy.pem');
    const lines: Array<{ code?: string; level: number; msg: string }> = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as { code?: string; level: number; msg: string }); } });
    const watch = new CrlFileWatch({ path, intermediateCaPem: h.materials.intermediateCaPem, scheduler: new VirtualTime(), clock: h.clock, logger, fetch: { url: standInUrl, caPem: h.materials.rootCaPem } });
    const sign = async (crlNumber: bigint) => (await createCrl({ issuer: h.materials.pki.intermediate, entries: [], crlNumber, now: new Date(h.clock.nowMs()) })).pem;
    const base = 1_000_000n;
    await writeFile(path, await sign(base + 1n)); // the copy gateway-files made
    standIn = { status: 200, body: await sign(base + 2n) };
    await watch.reload();
    assert.equal(watch.freshness().crlNumber, base + 2n, 'the fetched CRL, newer than the copy');
    await writeFile(path, await sign(base + 5n));
    await watch.reload();
    assert.equal(watch.freshness().crlNumber, base + 5n, 'a newer file wins over the fetched CRL');
    await writeFile(path, await sign(base + 1n));
    standIn = { status: 200, body: await sign(base + 3n) }; // a replica that has not re-signed since
    await watch.reload();
    standIn = { status: 503, body: '{}' }; // the control plane down: only the older copy is read
    await watch.reload();
    assert.equal(watch.freshness().crlNumber, base + 5n, 'neither older CRL is taken');
    assert.equal(watch.refusals().get('TRUST_CRL_ROLLED_BACK'), undefined, 'an older CRL is expected with --crl-url: not a rollback alarm');
    assert.deepEqual(lines.filter((line) => line.level >= 50).map((line) => line.code), [], 'no error line');
    assert.equal(lines.filter((line) => /older than the highest/.test(line.msg)).length, 2, 'each logged at info');
  });

  it('writes a fetched CRL newer than its file to the file (atomically, the file\'s mode kept, else 0644), so a restart with the control plane down starts from it; a file it cannot write is logged once', async () => {
    const dir = await mkdtemp(join(h.dir, 'crl-keep-'));
    const path = join(dir, 'crl.pem');
    const lines: Array<{ msg: string; level: number }> = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => { lines.push(JSON.parse(line) as { msg: string; level: number }); } });
    const watchOn = (file: string, url: URL) => new CrlFileWatch({ path: file, intermediateCaPem: h.materials.intermediateCaPem, scheduler: new VirtualTime(), clock: h.clock, logger, fetch: { url, caPem: h.materials.rootCaPem, timeoutMs: 2_000 } });
    const serial = await enrolledSerial('crl-fetch-keep-1');
    await h.cp.devices.revoke({ actor: 'root', deviceId: 'crl-fetch-keep-1', reason: 'keyCompromise' });
    const running = watchOn(path, crlUrl);
    await running.reload();
    const fetched = await h.cp.devices.crlPem();
    assert.equal(await readFile(path, 'utf8'), fetched, 'the fetched CRL is on disk');
    assert.equal((await stat(path)).mode & 0o777, 0o644);
    assert.deepEqual((await readdir(dir)).sort(), ['crl.pem'], 'no temporary file left beside it');

    // Restarted while the control plane is down: the file alone carries the revocation.
    standIn = { status: 503, body: '{}' };
    const restarted = watchOn(path, standInUrl);
    await restarted.reload();
    assert.equal(restarted.freshness().state, 'fresh');
    assert.equal(restarted.freshness().crlNumber, running.freshness().crlNumber);
    assert.equal(restarted.serials().has(normalizeSerialHex(serial)), true, 'the revoked serial is held from the file');

    // An existing file's mode is kept.
    await chmod(path, 0o640);
    await h.cp.devices.revoke({ actor: 'root', deviceId: (await enrolledSerial('crl-fetch-keep-2'), 'crl-fetch-keep-2'), reason: 'keyCompromise' });
    await running.reload();
    assert.equal(await readFile(path, 'utf8'), await h.cp.devices.crlPem());
    assert.equal((await stat(path)).mode & 0o777, 0o640);
    assert.equal(lines.filter((line) => /cannot be written/.test(line.msg)).length, 0, 'a writable file: nothing to report');

    // A path it cannot write (its directory is a file): logged once, the fetched CRL still taken.
    await writeFile(join(dir, 'a-file'), '');
    const unwritable = watchOn(join(dir, 'a-file', 'crl.pem'), crlUrl);
    for (let reload = 0; reload < 2; reload += 1) {
      await h.cp.devices.revoke({ actor: 'root', deviceId: (await enrolledSerial(`crl-fetch-keep-ro-${reload}`), `crl-fetch-keep-ro-${reload}`), reason: 'keyCompromise' });
      await unwritable.reload();
      assert.equal(unwritable.freshness().crlNumber, BigInt((await readVerifiedCrl({ pem: await h.cp.devices.crlPem(), issuer: h.materials.pki.intermediate.certificate })).crlNumber));
    }
    assert.deepEqual(lines.map((line) => line.msg).filter((msg) => /cannot be written/.test(msg)).length, 1, 'logged once');
  });

  it('refuses a server whose certificate is not under the root CA it was given (TRUST_CRL_FETCH_FAILED)', async () => {
    const otherCa = await makeTestPki(new Date(h.clock.nowMs() - 60_000));
    const { watch } = gateway(crlUrl, { caPem: otherCa.root.certificate.toString('pem') });
    await watch.reload();
    assert.equal(watch.fetchFailures().get('TRUST_CRL_FETCH_FAILED'), 1);
    assert.equal(watch.freshness().state, 'none');
  });
});

async function fetchRaw(url: URL, caPem: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    request(url, { ca: caPem, minVersion: 'TLSv1.3' }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => { body += chunk.toString('utf8'); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('error', reject).end();
  });
}
