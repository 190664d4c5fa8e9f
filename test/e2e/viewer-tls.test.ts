// What a browser makes of our TLS chains (docs/decisions/0006-browser-serving-chain.md), in Debian's
// Chromium with the CA installed the way Linux browsers trust one: in the profile's NSS database
// (certutil), and with certificate errors NOT ignored. An all-Ed25519 certificate fails the TLS
// handshake itself; an ECDSA P-256 leaf under an ECDSA P-256 serving CA loads the page, and so does
// a real `sdc serve` (after `sdc pki init`) once D/pki/serving-ca.pem is installed.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { systemRandom } from '../../runtime/system.js';
import { issueServerCertificate, issueServingCa } from '../../trust/server-certificate.js';
import { dayMs, makeTestPki } from '../../trust/test-fixtures.js';

const chromiumPath = '/usr/bin/chromium';
const certutilPath = '/usr/bin/certutil';
const skip = !existsSync(chromiumPath) ? `${chromiumPath} is absent: apt-get install chromium`
  : !existsSync(certutilPath) ? `${certutilPath} is absent: apt-get install libnss3-tools (it installs a CA into the browser profile)` : false;

async function serve(certPem: string, keyPem: string): Promise<{ url: string; server: Server }> {
  const server = createServer({ cert: certPem, key: keyPem }, (_request, response) => response.end('console'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/**
 * A load that should succeed: generous, as the e2e waits (e2eWaitMsMin), since a timeout's message
 * would be read as the page's outcome; a refused chain answers at once (net::ERR_...) whatever this is.
 */
const loadWaitMs = 120_000;

/**
 * Loads the URL in a fresh context of the running browser, with certificate errors counted; the
 * page's text, or Chromium's net:: error. One browser for the file (each launch cost about 3 s of
 * CPU, and there were five): Chromium reads the profile's NSS database at each verification, so a
 * CA installed with certutil while it runs is trusted at the next load, as the loads before and
 * after each install below show.
 */
async function load(browser: Browser, url: string, waitFor?: string): Promise<string> {
  const context = await browser.newContext({ ignoreHTTPSErrors: false });
  try {
    const page = await context.newPage();
    try {
      await page.goto(url, { timeout: loadWaitMs });
      if (waitFor !== undefined) await page.getByRole('button', { name: waitFor }).waitFor({ timeout: loadWaitMs });
      return await page.textContent('body') ?? '';
    } catch (error) {
      return /net::[A-Z_]+/.exec((error as Error).message)?.[0] ?? (error as Error).message;
    }
  } finally {
    await context.close();
  }
}

describe('browsers and our TLS chains', { skip }, () => {
  let home: string;
  let browser: Browser;
  const servers: Server[] = [];

  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'sdc-tls-browser-'));
    await mkdir(join(home, '.pki', 'nssdb'), { recursive: true });
    execFileSync(certutilPath, ['-N', '-d', `sql:${join(home, '.pki', 'nssdb')}`, '--empty-password']);
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'], env: { ...process.env, HOME: home } });
  });

  after(async () => {
    await browser?.close();
    for (const server of servers) server.close();
    await rm(home, { recursive: true, force: true });
  });

  const install = async (name: string, caPem: string) => {
    const file = join(home, `${name}.pem`);
    await writeFile(file, caPem);
    execFileSync(certutilPath, ['-A', '-d', `sql:${join(home, '.pki', 'nssdb')}`, '-n', name, '-t', 'C,,', '-i', file], { stdio: 'pipe' });
  };

  it('loads the page over an ECDSA P-256 leaf from the serving CA once that CA is installed, and not before', async () => {
    const now = new Date();
    const ca = await issueServingCa({ commonName: 'SDC serving CA (test)', now, validityMs: 30 * dayMs, random: systemRandom });
    const leaf = await issueServerCertificate({
      intermediateCertPem: ca.certPem, intermediateKey: ca.privateKey, hostnames: ['localhost'], ipAddresses: ['127.0.0.1'],
      now, validityMs: 10 * dayMs, random: systemRandom, keyAlgorithm: 'ECDSA-P256',
    });
    const { url, server } = await serve(leaf.certPem, leaf.keyPem);
    servers.push(server);
    assert.equal(await load(browser, url), 'net::ERR_CERT_AUTHORITY_INVALID', 'the handshake works; only the issuer is unknown');
    await install('sdc-serving-ca', ca.certPem);
    assert.equal(await load(browser, url), 'console');
  });

  it('fails the handshake itself over today\'s Ed25519 API certificate, and NSS cannot even install our Ed25519 root', async () => {
    const now = new Date();
    const pki = await makeTestPki(now);
    const leaf = await issueServerCertificate({
      intermediateCertPem: pki.intermediate.certificate.toString('pem'), intermediateKey: pki.intermediate.privateKey,
      hostnames: ['localhost'], ipAddresses: ['127.0.0.1'], now, validityMs: 10 * dayMs, random: systemRandom,
    });
    const { url, server } = await serve(`${leaf.certPem}\n${pki.intermediate.certificate.toString('pem')}\n`, leaf.keyPem);
    servers.push(server);
    await assert.rejects(install('sdc-root', pki.root.certificate.toString('pem')), /SEC_ERROR_ADDING_CERT/);
    assert.equal(await load(browser, url), 'net::ERR_SSL_VERSION_OR_CIPHER_MISMATCH');
  });

  it('loads the console from a real `sdc serve` directly, once the serving CA that `sdc pki init` made is installed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdc-tls-serve-'));
    const run = (args: string[]) => spawnSync(process.execPath, [join(repoRoot, 'bin/sdc.js'), ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000, env: { ...process.env, SDC_FROM_SOURCE: '1' } });
    const built = spawnSync(process.execPath, [join(repoRoot, 'scripts/build-viewer.mjs'), '--out-dir', join(dir, 'viewer')], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(built.status, 0, built.stderr);
    const init = run(['pki', 'init', '--dir', join(dir, 'data'), '--insecure-plain-root-key', '--json']);
    assert.equal(init.status, 0, init.stderr);
    const servingCaPath = (JSON.parse(init.stdout) as { serving_ca_cert: string }).serving_ca_cert;
    const child = spawn(process.execPath, [join(repoRoot, 'bin/sdc.js'), 'serve', '--dir', join(dir, 'data'), '--api-port', '0', '--gateway-port', '0'], {
      cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SDC_FROM_SOURCE: '1', SDC_VIEWER_DIR: join(dir, 'viewer'), SDC_LOG_LEVEL: 'warn' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const check = () => {
          const found = /^console\s+(https:\/\/\S+\/) \(browsers: trust (\S+) once/m.exec(stdout);
          if (found && /^ready$/m.test(stdout)) {
            assert.equal(found[2], servingCaPath, 'sdc serve names the serving CA that sdc pki init made');
            resolve(found[1]!);
          } else if (child.exitCode !== null) reject(new Error(`sdc serve exited ${child.exitCode}: ${stdout}${stderr}`));
          else setTimeout(check, 100);
        };
        check();
      });
      const consoleUrl = url.replace('://localhost:', '://127.0.0.1:');
      assert.equal(await load(browser, consoleUrl), 'net::ERR_CERT_AUTHORITY_INVALID', 'not trusted before the serving CA is installed');
      await install('sdc-serve-serving-ca', await (await import('node:fs/promises')).readFile(servingCaPath, 'utf8'));
      assert.match(await load(browser, consoleUrl, 'Log in'), /Log in/, 'the console page from sdc serve, its script run, straight from the API port');
    } finally {
      child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    }
  });
});
