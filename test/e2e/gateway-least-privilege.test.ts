// A gateway process (`sdc gateway`) started from a folder holding ONLY a gateway's files (decision
// 0018): the CA certificates, its TLS certificate and key issued ahead of time by
// `sdc pki gateway-cert`, the gateway signing key and the command key's public half. No root,
// intermediate or serving CA key, no JWT key ring, no command-signing private key, no artifact
// key: it still admits an enrolled agent, delivers a command the control plane signed, and
// forwards the result.
//
// Needs REDIS_URL (a gateway-only process shares only a real Redis); skipped without it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runAgent } from '../../agent/agent-runtime.js';
import { ensureEnrolled } from '../../agent/enrollment.js';
import { agentPaths } from '../../agent/state/agent-state.js';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { gatewayMaterialsPaths, issueGatewayCertificate } from '../../server/materials/gateway-materials.js';
import {
  agentDir, checkExactlyOnce, countProcessListCalls, createCommand, e2eWaitMsMin, startE2e, waitOnline, waitTerminal, type E2eSystem,
} from './support/e2e-harness.js';

const repoRoot = join(fileURLToPath(import.meta.url), '..', '..', '..');
const redisUrl = process.env.REDIS_URL;
const mysqlUrl = process.env.MYSQL_URL;

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name))).sort();
}

describe('a gateway from a folder without the deployment\'s secrets', { skip: redisUrl === undefined ? 'needs REDIS_URL: a gateway-only process shares only a real Redis' : false }, () => {
  let system: E2eSystem;
  let child: ChildProcess | undefined;
  const stderr: string[] = [];

  before(async () => {
    system = await startE2e({ target: { name: 'redis+mysql', redisUrl: redisUrl!, ...(mysqlUrl ? { mysqlUrl } : {}) }, gateway: { heartbeatIntervalMs: 1_000 } });
  });
  after(async () => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child!.once('exit', resolve));
    }
    await system?.stop();
  });

  it('admits an agent and delivers a signed command, holding no CA, JWT, command or artifact private key', async () => {
    await issueGatewayCertificate({ dataDir: system.dataDir, clock: systemClock, random: systemRandom });
    // Inside the e2e folder (removed with it); the gateway reads only its own --dir.
    const gatewayDir = join(system.dataDir, 'gateway-only');
    const paths = gatewayMaterialsPaths(system.dataDir);
    for (const source of [paths.rootCertPath, paths.intermediateCertPath, paths.gatewayKeyPath, paths.commandPublicKeyPath, paths.sharedCertPath, paths.sharedKeyPath]) {
      const target = join(gatewayDir, relative(system.dataDir, source));
      await mkdir(dirname(target), { recursive: true, mode: 0o700 });
      await copyFile(source, target);
    }
    // The folder holds exactly these six files: nothing else to read.
    assert.deepEqual(await listFiles(gatewayDir), ['keys/command-signing.pub', 'keys/gateway-signing.key', 'pki/intermediate-ca.pem', 'pki/root-ca.pem', 'tls/gateway.key', 'tls/gateway.pem']);
    const gatewayId = `gw-lp-${system.tag}`;
    child = spawn(process.execPath, [
      join(repoRoot, 'bin', 'sdc.js'), 'gateway', '--dir', gatewayDir, '--redis', redisUrl!, '--key-prefix', system.keyPrefix,
      '--gateway-id', gatewayId, '--gateway-port', '0', '--heartbeat-interval-ms', '1000',
    ], { cwd: repoRoot, env: { ...process.env, SDC_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stderr!.on('data', (chunk: Buffer) => { if (stderr.length < 1000) stderr.push(chunk.toString('utf8')); });
    let stdout = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gateway did not start within ${e2eWaitMsMin} ms: ${stdout} ${stderr.join('')}`)), e2eWaitMsMin);
      child!.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk.toString('utf8');
        const match = /gateway\s+(wss:\/\/\S+)/.exec(stdout);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
      child!.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`gateway exited with ${code}: ${stderr.join('')}`));
      });
    });

    const deviceId = `e2e-lp-${system.tag}`;
    const { token } = await system.api<{ token: string }>('POST', `/v1/devices/${deviceId}/pairing-tokens`, {});
    const dir = agentDir(system, deviceId);
    await ensureEnrolled({ dir, serverUrl: system.apiUrl, deviceId, pairingToken: token, caPem: system.materials.rootCaPem, random: systemRandom, clock: systemClock });
    // Pointed at the gateway-only process alone.
    const trustPath = agentPaths(dir).trust;
    const trust = JSON.parse(await readFile(trustPath, 'utf8')) as { gateway_urls: string[] };
    trust.gateway_urls = [url];
    await writeFile(trustPath, JSON.stringify(trust, null, 2));
    const agent = await runAgent({ dir, kernel: 'mock', telemetryIntervalMs: 300, clock: systemClock, random: systemRandom, scheduler: systemScheduler });
    system.agents.set(deviceId, agent);
    const calls = countProcessListCalls(agent, { callDelayMs: 0 });
    await waitOnline(system, [deviceId]);
    const device = await system.api<{ gateway_id?: string | null }>('GET', `/v1/devices/${deviceId}`);
    assert.equal(device.gateway_id, gatewayId);
    const command = await createCommand(system, deviceId, 'EXEC_GET_PROCESS_LIST', { limit: 3 });
    const record = await waitTerminal(system, command.id, 40_000);
    const byState = checkExactlyOnce([{ record, executions: calls.get(3) ?? 0 }]);
    assert.equal(byState.succeeded, 1, JSON.stringify(byState));
    assert.equal(child.exitCode, null, `the gateway is still running: ${stderr.join('')}`);
  });
});
