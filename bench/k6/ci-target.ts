/**
 * CI's k6 step (.ci/run, only where a `k6` binary is on the PATH): one in-process deployment
 * (embedded stores) and both k6 scripts against it, one after the other:
 *
 * 1. `k6 run bench/k6/api.js` on `api-smoke`: an operator account made for k6 creates commands for
 *    two agents that run in a child process (enrolled over HTTPS, as `sdc bench api` runs them).
 * 2. `k6 run bench/k6/agent.js` on `agent-smoke`: k6 is the devices. Two more devices are enrolled
 *    (their directories hold device.key, device.pem and chain.pem, as `sdc agent --dir D` leaves
 *    them) but never connected here, since a device has one session at a time, and listed in
 *    agents.json. One EXEC_PING_KERNEL command per device is queued before k6 starts; the gateway
 *    delivers it when the device authenticates, so the COMMAND_DELIVERY path runs under k6 too.
 *
 * Exits with the first non-zero k6 status (a crossed threshold is 99 and fails CI as it would
 * under k6 anywhere); when both exited 0, exits 1 unless every queued command ended `succeeded`
 * (the agent scenario's own thresholds do not see commands: it also runs where nobody sends any).
 *
 *   node --import tsx bench/k6/ci-target.ts [k6 args for both runs...]
 *
 * SDC_K6_BIN names the k6 executable (default `k6` from the PATH): ci-target.test.ts points it at
 * a stand-in that runs the scripts in Node (node-check/fake-k6.mjs). k6 itself cannot be
 * installed on the development machines (bench/k6/README.md).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { systemClock, systemRandom } from '../../runtime/system.js';
import { startEnrolledDeployment } from '../harness/in-process.js';
import type { BenchDeployment, CommandRecord } from '../roundtrip-deployment.js';
import { sleep } from '../wall-time.js';

const setupTimeoutMs = 300_000;
/** Agents in a child process, the devices api.js sends commands to. */
const apiAgents = 2;
/** Devices k6 plays in agent.js: agent-smoke's VUs (a VU beyond the devices stays idle). */
const k6Agents = 2;
/**
 * After k6 ends, a result it sent may still be on its way to the control plane: this long at most
 * (SDC_K6_COMMAND_SETTLE_MS overrides it; the test of a failing run shortens the wait).
 */
const commandSettleMsDefault = 30_000;
/** A value that is not a number of milliseconds (0 up to the default) would poll forever or never: the default then. */
function commandSettleMs(): number {
  const asked = Number(process.env.SDC_K6_COMMAND_SETTLE_MS);
  return process.env.SDC_K6_COMMAND_SETTLE_MS && Number.isFinite(asked) && asked >= 0 && asked <= commandSettleMsDefault ? asked : commandSettleMsDefault;
}
const commandPollMs = 250;
const unfinishedStates: ReadonlySet<string> = new Set(['queued', 'sent', 'ack_received', 'executing']);
/** Exit status when k6 could not be started at all (as a shell says for a missing command). */
const notStartedStatus = 127;

function say(line: string): void {
  process.stderr.write(`ci-target: ${line}\n`);
}

/** One `k6 run`; resolves with its exit status. */
function runK6(args: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const bin = process.env.SDC_K6_BIN || 'k6';
  const child = spawn(bin, args, { stdio: 'inherit', env });
  return new Promise<number>((resolve) => {
    child.on('error', (error) => { say(`${bin}: ${error.message}`); resolve(notStartedStatus); });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** Polls each command until none is unfinished or `settleMs` is over; the last states read. */
async function settledStates(bench: BenchDeployment, commandIds: readonly string[], settleMs: number): Promise<Map<string, string>> {
  const deadlineMs = systemClock.nowMs() + settleMs;
  for (;;) {
    const states = new Map<string, string>();
    for (const id of commandIds) states.set(id, (await bench.api<CommandRecord>('GET', `/v1/commands/${id}`)).state);
    if (![...states.values()].some((s) => unfinishedStates.has(s)) || systemClock.nowMs() >= deadlineMs) return states;
    await sleep(commandPollMs);
  }
}

async function main(k6Args: readonly string[]): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-k6-'));
  const stops: Array<() => Promise<void>> = [() => rm(dir, { recursive: true, force: true })];
  try {
    const { bench, running, unconnected, stop } = await startEnrolledDeployment({
      running: apiAgents, unconnected: k6Agents, runningPrefix: 'api', unconnectedPrefix: 'k6', dirPrefix: 'sdc-k6-deployment-',
      logger: pino({ level: 'silent' }), setupTimeoutMs, progress: say,
    });
    stops.unshift(stop);
    const apiDevices = running.map((identity) => identity.deviceId);
    const k6Devices = unconnected.map((identity) => identity.deviceId);

    const user = `k6-${bench.runTag}`;
    const password = Buffer.from(systemRandom.bytes(24)).toString('base64url');
    await bench.api('POST', '/v1/users', { name: user, role: 'operator', password });
    const caFile = join(dir, 'ca.pem');
    await writeFile(caFile, bench.caPem);
    const agentsFile = join(dir, 'agents.json');
    await writeFile(agentsFile, `${JSON.stringify({ agents: unconnected.map((i) => ({ device_id: i.deviceId, dir: i.paths.dir })) }, null, 2)}\n`);

    say('k6 run api.js (api-smoke)');
    const apiStatus = await runK6(
      ['run', '-e', `SDC_API_URL=${bench.apiUrl}`, '-e', `SDC_USER=${user}`, '-e', `SDC_DEVICES=${apiDevices.join(',')}`, '-e', `SDC_RUN_TAG=${bench.runTag}`,
        '-e', 'SDC_SCENARIO=api-smoke', ...k6Args, fileURLToPath(new URL('./api.js', import.meta.url))],
      // The password goes through the environment, not the argument list (visible in ps).
      { ...process.env, SSL_CERT_FILE: caFile, SDC_PASSWORD: password });
    say(`api.js: k6 exited ${apiStatus}`);

    // Queued while the devices are offline; delivered at AUTH (the control plane redelivers on presence).
    const commandIds: string[] = [];
    for (const deviceId of k6Devices) {
      const created = await bench.api<{ id: string }>('POST', '/v1/commands', { device_id: deviceId, opcode: 'EXEC_PING_KERNEL', args: {} }, { 'idempotency-key': `ci-k6-${deviceId}` });
      commandIds.push(created.id);
    }
    say(`k6 run agent.js (agent-smoke, ${k6Devices.length} devices, ${commandIds.length} commands queued for them)`);
    const agentStatus = await runK6(
      ['run', '-e', `SDC_GATEWAY_ADDR=${new URL(bench.deployment.gatewayUrl).host}`, '-e', `SDC_AGENTS=${agentsFile}`, '-e', 'SDC_SCENARIO=agent-smoke',
        ...k6Args, fileURLToPath(new URL('./agent.js', import.meta.url))],
      process.env);
    say(`agent.js: k6 exited ${agentStatus}`);

    // A failed k6 run fails the step anyway: its commands' states are read once, for the log.
    const settleMs = apiStatus !== 0 || agentStatus !== 0 ? 0 : commandSettleMs();
    const states = await settledStates(bench, commandIds, settleMs);
    const succeeded = [...states.values()].filter((s) => s === 'succeeded').length;
    say(`commands sent to the k6 devices: ${succeeded} of ${commandIds.length} succeeded (${[...states.values()].join(', ')})`);
    if (apiStatus !== 0) return apiStatus;
    if (agentStatus !== 0) return agentStatus;
    return succeeded === commandIds.length ? 0 : 1;
  } finally {
    for (const step of stops) await step().catch((error: unknown) => say(`clean-up: ${String(error)}`));
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code), (error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
