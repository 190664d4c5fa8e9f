// `sdc demo --viewer`: after the summary, the deployment keeps running and the console answers at
// the printed URL (through the ECDSA front browsers need), the printed login works, and Ctrl-C
// (SIGINT) stops it all with the demo's exit status.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:https';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { e2eWaitMsMin, eventually } from './support/e2e-harness.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** One HTTPS call to the front; its certificate is checked against the fingerprint the demo printed, not skipped. */
function call(url: URL, fingerprint: string, options: { method?: string; body?: string } = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: options.method ?? 'GET', rejectUnauthorized: false, headers: options.body ? { 'content-type': 'application/json' } : {},
    }, (res) => {
      const socket = res.socket as import('node:tls').TLSSocket;
      const seen = socket.getPeerCertificate().fingerprint256;
      if (seen !== fingerprint) reject(new Error(`certificate ${seen} is not the printed ${fingerprint}`));
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
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
        const fingerprint = /^certificate sha256\s+([0-9A-F:]{95})/m.exec(stdout)?.[1];
        return url && login && fingerprint ? { url: new URL(url), name: login[1]!, password: login[2]!, fingerprint } : undefined;
      }, e2eWaitMsMin * 2);
      assert.match(stdout, /result\s+ok/, stdout);
      assert.equal(child.exitCode, null, 'still running after the summary');

      const page = await call(printed.url, printed.fingerprint);
      assert.equal(page.status, 200, `${page.body}\n${stdout}`);
      assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
      assert.match(page.body, /<sdc-app>/);
      const login = await call(new URL('/v1/auth/login', printed.url), printed.fingerprint, { method: 'POST', body: JSON.stringify({ name: printed.name, password: printed.password }) });
      assert.equal(login.status, 200, `${login.body}\n${stdout}`);
      const token = (JSON.parse(login.body) as { token: string }).token;
      const listDevices = () => new Promise<{ items: Array<{ online: boolean }> }>((resolve, reject) => {
        request(new URL('/v1/devices', printed.url), { rejectUnauthorized: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
          let body = '';
          res.on('data', (chunk) => { body += chunk; });
          res.on('end', () => resolve(JSON.parse(body)));
        }).on('error', reject).end();
      });
      // The agents are still connected after the summary (waited for: a heartbeat may be late on a loaded machine).
      await eventually('both agents online after the summary', async () => ((await listDevices()).items.filter((d) => d.online).length === 2 ? true : undefined));
    } finally {
      if (child.exitCode === null) child.kill('SIGINT');
    }
    const [code] = await exited;
    assert.equal(code, 0, `exit ${code}\n${stdout}\n${stderr.slice(-4000)}`);
  });
});
