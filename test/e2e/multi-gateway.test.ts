// Two gateway PROCESSES (`sdc gateway`) against one Redis, with the control plane in this process
// on the same Redis and key prefix. Agents are spread over both; one gateway is killed with
// SIGKILL while commands flow. Its agents fail over to the other gateway, its pending work is
// claimed, and every command accepted before and after the kill reaches a terminal state,
// none executed twice.
//
// Needs REDIS_URL (and MYSQL_URL for the SQL side, else sql.js): embedded stores live inside one
// process, so separate gateway processes cannot share them. Without REDIS_URL the suite is
// skipped; the multi-gateway hand-back logic is then still covered in-process by
// server/gateway/gateway-peers.test.ts, and the restart path by test/e2e/gateway-restart.test.ts.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runAgent, type RunningAgent } from '../../agent/agent-runtime.js';
import { ensureEnrolled } from '../../agent/enrollment.js';
import { agentPaths } from '../../agent/state/agent-state.js';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { issueGatewayCertificate } from '../../server/materials/gateway-materials.js';
import {
  agentDir, checkExactlyOnce, countProcessListCalls, createCommand, e2eWaitMsMin, eventually, startE2e, waitOnline, waitTerminal, type CommandRecord, type E2eSystem,
} from './support/e2e-harness.js';

const repoRoot = join(fileURLToPath(import.meta.url), '..', '..', '..');
const redisUrl = process.env.REDIS_URL;
const mysqlUrl = process.env.MYSQL_URL;
const heartbeatIntervalMs = 1_000;

interface GatewayProcess {
  readonly id: string;
  readonly child: ChildProcess;
  readonly url: string;
  readonly stderr: string[];
}

/** `sdc gateway` as a child process; resolves with the WSS URL it prints. */
async function startGatewayProcess(system: E2eSystem, id: string): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [
    join(repoRoot, 'bin', 'sdc.js'), 'gateway', '--dir', system.dataDir, '--redis', redisUrl!, '--key-prefix', system.keyPrefix,
    '--gateway-id', id, '--gateway-port', '0', '--heartbeat-interval-ms', String(heartbeatIntervalMs),
  ], { cwd: repoRoot, env: { ...process.env, SDC_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => { if (stderr.length < 1000) stderr.push(chunk.toString('utf8')); });
  let stdout = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway ${id} did not start within ${e2eWaitMsMin} ms: ${stdout} ${stderr.join('')}`)), e2eWaitMsMin);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const match = /gateway\s+(wss:\/\/\S+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway ${id} exited with ${code}: ${stderr.join('')}`));
    });
  });
  return { id, child, url, stderr };
}

describe('two gateway processes on one Redis, one killed', { skip: redisUrl === undefined ? 'needs REDIS_URL: separate gateway processes share only a real Redis' : false }, () => {
  let system: E2eSystem;
  const gateways: GatewayProcess[] = [];

  before(async () => {
    system = await startE2e({ target: { name: 'redis+mysql', redisUrl: redisUrl!, ...(mysqlUrl ? { mysqlUrl } : {}) }, gateway: { heartbeatIntervalMs } });
    // The gateways' certificate is issued ahead of time, where the CA key is (decision 0018).
    await issueGatewayCertificate({ dataDir: system.dataDir, clock: systemClock, random: systemRandom });
    gateways.push(...await Promise.all(['gw-a', 'gw-b'].map((id) => startGatewayProcess(system, `${id}-${system.tag}`))));
  });
  after(async () => {
    for (const gateway of gateways) if (gateway.child.exitCode === null && gateway.child.signalCode === null) gateway.child.kill('SIGTERM');
    await Promise.all(gateways.map((g) => new Promise((resolve) => (g.child.exitCode !== null || g.child.signalCode !== null ? resolve(undefined) : g.child.once('exit', resolve)))));
    await system?.stop();
  });

  it('fails agents over to the surviving gateway; every command terminal, none executed twice', async () => {
    const [gwA, gwB] = gateways as [GatewayProcess, GatewayProcess];
    const deviceIds = [1, 2, 3, 4].map((i) => `e2e-mgw-${system.tag}-${i}`);
    const agents: RunningAgent[] = [];
    for (const [index, deviceId] of deviceIds.entries()) {
      const { token } = await system.api<{ token: string }>('POST', `/v1/devices/${deviceId}/pairing-tokens`, {});
      const dir = agentDir(system, deviceId);
      await ensureEnrolled({ dir, serverUrl: system.apiUrl, deviceId, pairingToken: token, caPem: system.materials.rootCaPem, random: systemRandom, clock: systemClock });
      // Enrollment hands out the control plane's own gateway. These agents are pointed at the two
      // gateway processes instead, half preferring each; the driver tries the URLs in turn, so the
      // second one is where an agent fails over to.
      const trustPath = agentPaths(dir).trust;
      const trust = JSON.parse(await readFile(trustPath, 'utf8')) as { gateway_urls: string[] };
      trust.gateway_urls = index % 2 === 0 ? [gwA.url, gwB.url] : [gwB.url, gwA.url];
      await writeFile(trustPath, JSON.stringify(trust, null, 2));
      const agent = await runAgent({ dir, kernel: 'mock', telemetryIntervalMs: 300, clock: systemClock, random: systemRandom, scheduler: systemScheduler });
      system.agents.set(deviceId, agent);
      agents.push(agent);
    }
    const calls = agents.map((agent) => countProcessListCalls(agent, { callDelayMs: 100 }));
    await waitOnline(system, deviceIds);
    // The presence records say which gateway holds each device: both hold some.
    const holders = async () => Promise.all(deviceIds.map(async (id) => {
      const device = await system.api<{ gateway_id?: string | null }>('GET', `/v1/devices/${id}`);
      return device.gateway_id ?? undefined;
    }));
    const initial = await holders();
    assert.ok(initial.includes(gwA.id) && initial.includes(gwB.id), `devices on ${JSON.stringify(initial)}`);

    const accepted: Array<{ command: CommandRecord; agentIndex: number; limit: number }> = [];
    const send = async (agentIndex: number, limit: number) => {
      accepted.push({ command: await createCommand(system, deviceIds[agentIndex]!, 'EXEC_GET_PROCESS_LIST', { limit }), agentIndex, limit });
    };
    await Promise.all(deviceIds.map(async (_, i) => { for (let limit = 1; limit <= 4; limit++) await send(i, limit); }));
    gwA.child.kill('SIGKILL');
    await Promise.all(deviceIds.map(async (_, i) => { for (let limit = 5; limit <= 8; limit++) await send(i, limit); }));

    // Every agent ends up on the survivor.
    await eventually('every device on the surviving gateway', async () => {
      const now = await holders();
      return now.every((g) => g === gwB.id) ? true : undefined;
    }, 20_000, 200);

    const finals = await Promise.all(accepted.map(async (a) => ({ ...a, record: await waitTerminal(system, a.command.id, 40_000) })));
    const byState = checkExactlyOnce(finals.map(({ record, agentIndex, limit }) => ({ record, executions: calls[agentIndex]!.get(limit) ?? 0 })));
    assert.equal(byState.succeeded, accepted.length, JSON.stringify(byState));
    assert.equal(gwB.child.exitCode, null, `the survivor is still running: ${gwB.stderr.join('')}`);
  });
});
