/**
 * CI's k6 step (.ci/run, only where a `k6` binary is on the PATH): starts the same in-process
 * deployment `sdc bench api` uses (embedded stores, agents enrolled over HTTPS in a child
 * process), adds an operator account for k6 to log in with, and runs
 * `k6 run bench/k6/api.js` against it with the short `api-smoke` scenario. Exits with k6's
 * status, so a crossed threshold (99) fails CI as it would under k6 anywhere.
 *
 *   node --import tsx bench/k6/ci-target.ts [k6 args...]
 *
 * Not run on the development machines: k6 cannot be installed there (bench/k6/README.md).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { httpsJson } from '../../runtime/https-json.js';
import { systemRandom } from '../../runtime/system.js';
import { startInProcessTarget } from '../harness/in-process.js';

const setupTimeoutMs = 300_000;
const agentsForK6 = 2;

async function main(k6Args: readonly string[]): Promise<number> {
  const { target, stop } = await startInProcessTarget({ agents: agentsForK6, setupTimeoutMs, logger: pino({ level: 'silent' }), progress: (line) => process.stderr.write(`${line}\n`) });
  const dir = await mkdtemp(join(tmpdir(), 'sdc-k6-'));
  try {
    const user = `k6-${target.runTag}`;
    const password = Buffer.from(systemRandom.bytes(24)).toString('base64url');
    await httpsJson({ method: 'POST', url: new URL('/v1/users', target.apiUrl), caPem: target.caPem, token: target.token, body: { name: user, role: 'operator', password } });
    const caFile = join(dir, 'ca.pem');
    await writeFile(caFile, target.caPem);
    const script = fileURLToPath(new URL('./api.js', import.meta.url));
    const args = ['run', '-e', `SDC_API_URL=${target.apiUrl}`, '-e', `SDC_USER=${user}`, '-e', `SDC_DEVICES=${target.deviceIds.join(',')}`, '-e', `SDC_RUN_TAG=${target.runTag}`, '-e', 'SDC_SCENARIO=api-smoke', ...k6Args, script];
    // The password goes through the environment, not the argument list (visible in ps).
    const child = spawn('k6', args, { stdio: 'inherit', env: { ...process.env, SSL_CERT_FILE: caFile, SDC_PASSWORD: password } });
    return await new Promise<number>((resolve) => {
      child.on('error', (error) => { process.stderr.write(`k6: ${error.message}\n`); resolve(127); });
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
  } finally {
    await stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code), (error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
