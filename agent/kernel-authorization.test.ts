// The agent's half of "commands signed end to end down to the kernel": enrollment provisions the
// pinned command keys into the kernel, and the executor hands every command's control-plane
// signature down, so the kernel (not only the agent) decides whether a privileged opcode runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../core/errors/index.js';
import { base64urlFromBytes } from '../core/crypto/bytes.js';
import { signCommand } from '../core/protocol/signed-command.js';
import type { Opcode } from '../core/protocol/messages/opcodes.js';
import { createNodeEd25519Provider } from '../runtime/ed25519-node.js';
import { IoctlKernelBridge } from '../kernel/bridge/kernel-bridge.js';
import { MockIoctlDevice } from '../kernel/mock/mock-kernel.js';
import { signKernelKeyRotation } from '../core/protocol/kernel-key-rotation.js';
import { provisionKernelCommandKeys } from './enrollment.js';
import { executeOpcode } from './opcode-executor.js';
import type { TrustConfig } from './state/agent-state.js';

const provider = createNodeEd25519Provider();
const controlPlaneSeed = new Uint8Array(32).fill(3);
const otherSeed = new Uint8Array(32).fill(4);
const deviceId = 'dev-exec-01';

function identity(seed: Uint8Array): { deviceId: string; trust: TrustConfig } {
  return {
    deviceId,
    trust: {
      version: 1, device_id: deviceId, control_plane_url: 'https://cp.invalid', gateway_urls: ['wss://gw.invalid'], ca_pem: '',
      command_keys: [{ kid: 'cp-1', public_key: base64urlFromBytes(provider.publicKeyFromSeed(seed)) }], gateway_keys: [],
    },
  };
}

function kernel(): IoctlKernelBridge {
  const agentSeed = new Uint8Array(32).fill(1);
  const serviceSeed = new Uint8Array(32).fill(2);
  const device = new MockIoctlDevice({
    ed25519: provider, serviceSeed, agentPublicKey: provider.publicKeyFromSeed(agentSeed), clock: { nowMs: () => 0 }, lockScreenSupported: true,
  });
  return new IoctlKernelBridge({ device, ed25519: provider, agentSeed, servicePublicKey: provider.publicKeyFromSeed(serviceSeed), counterStart: 1n });
}

let seq = 1;
function command(opcode: Opcode, options: { seed?: Uint8Array; device?: string } = {}) {
  return signCommand({
    command: { id: `c-${seq}`, device_id: options.device ?? deviceId, opcode, args: {}, issued_at: 1, expires_at: 60_001, device_seq: seq++, issuer: 'test' },
    kid: 'cp-1', seed: options.seed ?? controlPlaneSeed, provider,
  });
}

const executor = (bridge: IoctlKernelBridge) => ({ kernel: bridge, artifactPath: () => '/nowhere', processEntriesMax: 10 });
const refusedWith = (status: string) => (e: unknown): boolean => SdcError.is(e, 'KERNEL_REFUSED') && e.details.status === status;

test('before provisioning the kernel refuses a privileged command; after it, the signed command runs', async () => {
  const bridge = kernel();
  await assert.rejects(executeOpcode(command('EXEC_LOCK_SCREEN'), executor(bridge)), refusedWith('NOT_PROVISIONED'));
  assert.equal(await provisionKernelCommandKeys(bridge, identity(controlPlaneSeed)), 'provisioned');
  assert.deepEqual(await executeOpcode(command('EXEC_LOCK_SCREEN'), executor(bridge)), { locked: true });
  // Read-only opcodes carry their command too, and it is checked.
  assert.equal((await executeOpcode(command('EXEC_GET_STATUS'), executor(bridge))).requests_refused, 1);
});

test('provisioning again with the same keys is a no-op; other keys are refused without a rotation signature', async () => {
  const bridge = kernel();
  assert.equal(await provisionKernelCommandKeys(bridge, identity(controlPlaneSeed)), 'provisioned');
  assert.equal(await provisionKernelCommandKeys(bridge, identity(controlPlaneSeed)), 'unchanged');
  await assert.rejects(provisionKernelCommandKeys(bridge, identity(otherSeed)), refusedWith('PROVISION_DENIED'));
});

test('a command the agent would accept but the kernel was not provisioned for is refused by the kernel', async () => {
  const bridge = kernel();
  await provisionKernelCommandKeys(bridge, identity(controlPlaneSeed));
  // As if the agent's pinned keys had been tampered with: the kernel still holds the enrollment key.
  await assert.rejects(executeOpcode(command('EXEC_ROLLBACK_UPDATE', { seed: otherSeed }), executor(bridge)), refusedWith('COMMAND_FORGED'));
  await assert.rejects(executeOpcode(command('EXEC_ROLLBACK_UPDATE', { device: 'dev-other' }), executor(bridge)), refusedWith('COMMAND_WRONG_DEVICE'));
  const once = command('EXEC_ROLLBACK_UPDATE');
  await assert.rejects(executeOpcode(once, executor(bridge)), refusedWith('BAD_STATE'));
  await assert.rejects(executeOpcode(once, executor(bridge)), refusedWith('COMMAND_REPLAY'));
});

/** The trust.json a renewal writes after the control plane rotated from `previous` to `current`: both keys, and its signed rotations. */
function rotatedIdentity(current: Uint8Array, previous: Uint8Array, signers: readonly Uint8Array[]): { deviceId: string; trust: TrustConfig } {
  const keys = [current, previous].map((seed) => provider.publicKeyFromSeed(seed));
  const base = identity(current);
  return {
    deviceId,
    trust: {
      ...base.trust,
      command_keys: keys.map((key, i) => ({ kid: `cp-${i}`, public_key: base64urlFromBytes(key) })),
      kernel_key_rotations: signers.map((seed, i) => signKernelKeyRotation({ set: { deviceId, keys }, kid: `cp-${i}`, seed, provider })),
    },
  };
}

test('after the control plane rotates its command key, the agent passes its signed rotation to the kernel, which then runs commands by the new key', async () => {
  const bridge = kernel();
  assert.equal(await provisionKernelCommandKeys(bridge, identity(controlPlaneSeed)), 'provisioned');
  await assert.rejects(executeOpcode(command('EXEC_LOCK_SCREEN', { seed: otherSeed }), executor(bridge)), refusedWith('COMMAND_FORGED'));
  // Signed by the new key (which the kernel does not hold) and by the previous one (which it does): the second is taken.
  assert.equal(await provisionKernelCommandKeys(bridge, rotatedIdentity(otherSeed, controlPlaneSeed, [otherSeed, controlPlaneSeed])), 'rotated');
  assert.deepEqual(await executeOpcode(command('EXEC_LOCK_SCREEN', { seed: otherSeed }), executor(bridge)), { locked: true });
  assert.deepEqual(await executeOpcode(command('EXEC_LOCK_SCREEN'), executor(bridge)), { locked: true }, 'the previous key still verifies');
  assert.equal(await provisionKernelCommandKeys(bridge, rotatedIdentity(otherSeed, controlPlaneSeed, [otherSeed, controlPlaneSeed])), 'unchanged');
});

test('a rotation signed by no key the kernel holds (a device that missed a rotation) is refused, and the kernel keeps its keys', async () => {
  const bridge = kernel();
  await provisionKernelCommandKeys(bridge, identity(controlPlaneSeed));
  const thirdSeed = new Uint8Array(32).fill(5);
  await assert.rejects(provisionKernelCommandKeys(bridge, rotatedIdentity(thirdSeed, otherSeed, [thirdSeed, otherSeed])), refusedWith('PROVISION_DENIED'));
  await assert.rejects(provisionKernelCommandKeys(bridge, rotatedIdentity(thirdSeed, otherSeed, [])), refusedWith('PROVISION_DENIED'));
  assert.deepEqual(await executeOpcode(command('EXEC_LOCK_SCREEN'), executor(bridge)), { locked: true });
  await assert.rejects(executeOpcode(command('EXEC_LOCK_SCREEN', { seed: thirdSeed }), executor(bridge)), refusedWith('COMMAND_FORGED'));
});
