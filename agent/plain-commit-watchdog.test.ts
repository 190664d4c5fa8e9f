// A plain EXEC_COMMIT_UPDATE (an operator's command, outside a rollout) is on trial too
// (docs/kernel-contract.md, "Commit watchdog"): the agent commits with the command's signed window,
// or plainCommitWatchdogMsDefault when it names none, checks health and confirms. An unhealthy
// version stays unconfirmed, and the kernel rolls it back on its own clock when the window runs out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { signCommand } from '../core/protocol/signed-command.js';
import type { Opcode } from '../core/protocol/messages/opcodes.js';
import { createNodeEd25519Provider } from '../runtime/ed25519-node.js';
import { IoctlKernelBridge } from '../kernel/bridge/kernel-bridge.js';
import { MockIoctlDevice } from '../kernel/mock/mock-kernel.js';
import { executeOpcode, plainCommitWatchdogMsDefault, type OpcodeExecutorOptions } from './opcode-executor.js';

const provider = createNodeEd25519Provider();
const controlPlaneSeed = new Uint8Array(32).fill(5);
const deviceId = 'dev-plain-commit';
const artifact = new TextEncoder().encode('image 2.0.0');
const sha256 = createHash('sha256').update(artifact).digest('hex');

function world() {
  const agentSeed = new Uint8Array(32).fill(6);
  const serviceSeed = new Uint8Array(32).fill(7);
  let nowMs = 1_000;
  const device = new MockIoctlDevice({
    ed25519: provider, serviceSeed, agentPublicKey: provider.publicKeyFromSeed(agentSeed), clock: { nowMs: () => nowMs },
    commandKeys: { deviceId, keys: [provider.publicKeyFromSeed(controlPlaneSeed)] }, installedVersion: '1.0.0',
    artifacts: { read: (path) => (path === '/artifacts/2.0.0' ? artifact : undefined) },
  });
  const kernel = new IoctlKernelBridge({ device, ed25519: provider, agentSeed, servicePublicKey: provider.publicKeyFromSeed(serviceSeed), counterStart: 1n });
  let seq = 1;
  const command = (opcode: Opcode, args: Record<string, unknown>) => signCommand({
    command: { id: `c-${seq}`, device_id: deviceId, opcode, args, issued_at: 1, expires_at: 86_400_000, device_seq: seq++, issuer: 'test' },
    kid: 'cp-1', seed: controlPlaneSeed, provider,
  });
  const run = (opcode: Opcode, args: Record<string, unknown>, healthy = true) => {
    const options: OpcodeExecutorOptions = { kernel, artifactPath: (a) => `/artifacts/${a.version}`, processEntriesMax: 10, healthProbe: async () => healthy };
    return executeOpcode(command(opcode, args), options);
  };
  const stageAndCommit = async (commitArgs: Record<string, unknown>, healthy: boolean) => {
    await run('EXEC_STAGE_UPDATE', { version: '2.0.0', sha256, size_bytes: artifact.length });
    return run('EXEC_COMMIT_UPDATE', { version: '2.0.0', ...commitArgs }, healthy);
  };
  return { kernel, stageAndCommit, elapse: (ms: number) => { nowMs += ms; } };
}

test('a healthy plain commit is armed with the default window and confirmed at once', async () => {
  const w = world();
  const result = await w.stageAndCommit({}, true);
  assert.deepEqual(result, { current_version: '2.0.0', previous_version: '1.0.0', watchdog: 'confirmed' });
  w.elapse(plainCommitWatchdogMsDefault * 2);
  const status = await w.kernel.getStatus();
  assert.deepEqual([status.currentVersion, status.watchdogArmed, status.confirms, status.rollbacks], ['2.0.0', false, 1, 0]);
});

test('an unhealthy plain commit stays unconfirmed; the kernel rolls it back when the default window runs out, not before', async () => {
  const w = world();
  const result = await w.stageAndCommit({ sha256 }, false);
  assert.deepEqual(result, { current_version: '2.0.0', previous_version: '1.0.0', watchdog: 'armed', watchdog_ms: plainCommitWatchdogMsDefault });
  w.elapse(plainCommitWatchdogMsDefault - 1);
  assert.equal((await w.kernel.getStatus()).currentVersion, '2.0.0');
  w.elapse(1);
  const status = await w.kernel.getStatus();
  assert.deepEqual([status.currentVersion, status.watchdogArmed, status.watchdogRollbacks], ['1.0.0', false, 1]);
});

test('a plain commit that names a window gets exactly that window', async () => {
  const w = world();
  await w.stageAndCommit({ sha256, watchdog_ms: 2_000 }, false);
  assert.equal((await w.kernel.getStatus()).watchdogRemainingMs, 2_000n);
  w.elapse(2_000);
  assert.equal((await w.kernel.getStatus()).currentVersion, '1.0.0');
});
