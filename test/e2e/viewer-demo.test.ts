// `sdc demo --viewer`: after the summary, the deployment keeps running and the console answers at
// the printed URL, on the API's own port, to a client that speaks only what browsers speak (no
// Ed25519) and trusts only the printed serving CA; the printed login works, and Ctrl-C (SIGINT)
// stops it all with the demo's exit status.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { e2eWaitMsMin, eventually } from './support/e2e-harness.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** A browser's signature algorithms: no Ed25519, so the API port must present its ECDSA chain. */
const browserSigalgs = 'ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384:rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pkcs1_sha256';

/** One HTTPS call as a browser makes it, trusting only the printed serving CA (verified, not skipped). */
function call(url: URL, servingCaPem: string, options: { method?: string; body?: string; token?: string } = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string; keyType: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...(options.body ? { 'content-type': 'application/json' } : {}), ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) };
    const req = request(url, { method: options.method ?? 'GET', ca: servingCaPem, sigalgs: browserSigalgs, headers }, (res) => {
      const keyType = (res.socket as import('node:tls').TLSSocket).getPeerX509Certificate()?.publicKey.asymmetricKeyType ?? 'none';
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, keyType }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

describe('sdc demo --viewer', () => {
  it('keeps the demo running after the summary, prints the console URL and a login that works, and stops on SIGINT', async () => {
    // From the sources (as an edited checkout runs), so the test runs the code under test, not a stale dist/.
    const child = spawn(process.execPath, [join(repoRoot, 'bin/sdc.js'), 'demo', '--agents', '2', '--viewer', '--telemetry-interval-ms', '500'], {
      cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SDC_FROM_SOURCE: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    const exited = once(child, 'exit');
    try {
      const printed = await eventually('the console lines', () => {
        if (child.exitCode !== null) throw new Error(`sdc demo exited with ${child.exitCode} before printing the console: ${stdout}${stderr}`);
        const url = /^console\s+(https:\/\/\S+)$/m.exec(stdout)?.[1];
        const login = /^login\s+(\S+) \/ (\S+)$/m.exec(stdout);
        const servingCaPath = /^serving CA\s+(\S+\.pem)$/m.exec(stdout)?.[1];
        const fingerprint = /^serving CA sha256\s+([0-9A-F:]{95})$/m.exec(stdout)?.[1];
        return url && login && servingCaPath && fingerprint ? { url: new URL(url), name: login[1]!, password: login[2]!, servingCaPath, fingerprint } : undefined;
      }, e2eWaitMsMin * 2);
      assert.match(stdout, /result\s+ok/, stdout);
      assert.equal(child.exitCode, null, 'still running after the summary');

      const servingCaPem = readFileSync(printed.servingCaPath, 'utf8');
      assert.equal(new X509Certificate(servingCaPem).fingerprint256, printed.fingerprint);
      assert.match(stdout, /certutil -d sql:\$HOME\/\.pki\/nssdb -A -t C,, -n sdc-serving-ca -i /);
      const page = await call(printed.url, servingCaPem);
      assert.equal(page.status, 200, `${page.body}\n${stdout}`);
      assert.equal(page.keyType, 'ec', 'the console\'s ECDSA chain, straight from the API port');
      assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
      assert.match(page.body, /<sdc-app>/);
      const login = await call(new URL('/v1/auth/login', printed.url), servingCaPem, { method: 'POST', body: JSON.stringify({ name: printed.name, password: printed.password }) });
      assert.equal(login.status, 200, `${login.body}\n${stdout}`);
      const token = (JSON.parse(login.body) as { token: string }).token;
      const listDevices = async () => JSON.parse((await call(new URL('/v1/devices', printed.url), servingCaPem, { token })).body) as { items: Array<{ online: boolean }> };
      // The agents are still connected after the summary (waited for: a heartbeat may be late on a loaded machine).
      await eventually('both agents online after the summary', async () => ((await listDevices()).items.filter((d) => d.online).length === 2 ? true : undefined));
    } finally {
      if (child.exitCode === null) child.kill('SIGINT');
    }
    const [code] = await exited;
    assert.equal(code, 0, `exit ${code}\n${stdout}\n${stderr.slice(-4000)}`);
  });
});
