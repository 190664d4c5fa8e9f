// Issue 12, item 5: when the control plane's command-signing key rotates, the control plane signs
// the kernel's key rotation and the agent passes it down, so the kernel (which only takes a new
// key set signed by a key it holds) moves to the new key instead of refusing every privileged
// command signed by it. End to end: a control plane whose data directory was rotated
// (rotateCommandSigningKey), the agent renewing over HTTPS (the enrollment answer carries both
// keys and the signed rotations, stored in trust.json), and a kernel provisioned before the
// rotation, on the mock and, when it builds here, on the native library.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureEnrolled, provisionKernelCommandKeys, renewCertificate } from '../../agent/enrollment.js';
import { executeOpcode } from '../../agent/opcode-executor.js';
import { IoctlKernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import type { IoctlDevice } from '../../kernel/device.js';
import { MockIoctlDevice } from '../../kernel/mock/mock-kernel.js';
import { buildNativeLibrary } from '../../kernel/native/build.js';
import { createNativeTarget } from '../../kernel/native/native-target.js';
import { SdcError } from '../../core/errors/index.js';
import { initDeployment, loadDeployment, rotateCommandSigningKey, type DeploymentMaterials } from '../../server/materials/materials.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { systemRandom } from '../../runtime/system.js';
import { ManualClock, makeHarness, sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';

const provider = createNodeEd25519Provider();
const agentSeed = new Uint8Array(32).fill(1);
const serviceSeed = new Uint8Array(32).fill(2);

let nativeLibrary: string | undefined;
let nativeSkip: string | undefined;
try {
  nativeLibrary = buildNativeLibrary({ variant: 'release' }).libraryPath;
} catch (error) {
  nativeSkip = `native library cannot be built here: ${(error as Error).message}`;
}

describe('command-key rotation reaches the kernel', () => {
  let h: Harness;
  let materials: DeploymentMaterials;
  let cpDir: string;
  let agentDir: string;
  let serverUrl: string;

  before(async () => {
    cpDir = await mkdtemp(join(tmpdir(), 'sdc-rotate-cp-'));
    agentDir = await mkdtemp(join(tmpdir(), 'sdc-rotate-agent-'));
    const clock = new ManualClock();
    const before = await initDeployment({ dataDir: cpDir, clock, random: systemRandom });
    const kids = await rotateCommandSigningKey(cpDir, systemRandom);
    assert.equal(kids.previous, before.commandSigner.kid);
    materials = await loadDeployment({ dataDir: cpDir, clock, random: systemRandom });
    assert.equal(materials.commandSigner.kid, kids.current);
    assert.equal(materials.previousCommandSigner?.kid, kids.previous);
    h = await makeHarness(sqlJsTarget, { controlPlane: { materials } });
    serverUrl = (await h.cp.listen({ host: '127.0.0.1', port: 0, tls: true })).url;
  });
  after(async () => {
    await h.close();
    await rm(cpDir, { recursive: true, force: true });
    await rm(agentDir, { recursive: true, force: true });
  });

  const kernelCases: Array<{ name: string; device: () => { device: IoctlDevice; close(): void }; skip?: string }> = [
    {
      name: 'mock kernel',
      device: () => {
        const device = new MockIoctlDevice({ ed25519: provider, serviceSeed, agentPublicKey: provider.publicKeyFromSeed(agentSeed), clock: h.clock, lockScreenSupported: true });
        return { device, close: () => device.close() };
      },
    },
    {
      name: 'native kernel',
      ...(nativeSkip === undefined ? {} : { skip: nativeSkip }),
      device: () => {
        const target = createNativeTarget({ libraryPath: nativeLibrary!, agentSeed, serviceSeed });
        return { device: target.device, close: () => { target.device.close(); target.cleanup(); } };
      },
    },
  ];

  for (const [index, kernelCase] of kernelCases.entries()) {
    it(`${kernelCase.name}: provisioned with the previous key, it takes the renewed answer's rotation and runs a command signed by the new key`, { ...(kernelCase.skip === undefined ? {} : { skip: kernelCase.skip }) }, async () => {
      const deviceId = `dev-rotate-${index}`;
      const { token } = await h.cp.devices.createPairingToken({ actor: 'admin', deviceId });
      const { identity } = await ensureEnrolled({ dir: join(agentDir, deviceId), serverUrl, deviceId, pairingToken: token, caPem: materials.rootCaPem, random: systemRandom, clock: h.clock });
      // The answer pins both keys, current first, and carries one signed rotation per key the control plane holds.
      assert.deepEqual(identity.trust.command_keys.map((k) => k.kid), [materials.commandSigner.kid, materials.previousCommandSigner!.kid]);
      assert.deepEqual(identity.trust.kernel_key_rotations?.map((r) => r.kid), [materials.commandSigner.kid, materials.previousCommandSigner!.kid]);

      const { device, close } = kernelCase.device();
      const bridge = new IoctlKernelBridge({ device, ed25519: provider, agentSeed, servicePublicKey: provider.publicKeyFromSeed(serviceSeed), counterStart: 1n });
      try {
        // As the kernel was left by the enrollment before the rotation: the previous key alone.
        assert.equal((await bridge.provisionCommandKeys({ deviceId, keys: [materials.previousCommandSigner!.publicKey] })).outcome, 'provisioned');
        const { command } = await h.cp.commands.create({ actor: { name: 'admin', role: 'admin' }, deviceId, opcode: 'EXEC_ROLLBACK_UPDATE', args: {} });
        const signed = command.signed!;
        assert.equal(signed.sig.kid, materials.commandSigner.kid, 'commands are signed with the new key');
        const executor = { kernel: bridge, artifactPath: () => '/nowhere', processEntriesMax: 10 };
        const refusedWith = (status: string) => (e: unknown): boolean => SdcError.is(e, 'KERNEL_REFUSED') && e.details.status === status;
        await assert.rejects(executeOpcode(signed, executor), refusedWith('COMMAND_FORGED'), 'before the rotation reaches the kernel');

        const renewed = await renewCertificate(identity);
        assert.equal(renewed.trust.kernel_key_rotations?.length, 2, 'the renewal answer is stored with its rotations');
        assert.equal(await provisionKernelCommandKeys(bridge, renewed), 'rotated');
        // It ran: nothing staged to roll back is the operation's own refusal, past every authorization check.
        await assert.rejects(executeOpcode(signed, executor), refusedWith('BAD_STATE'));
        assert.equal(await provisionKernelCommandKeys(bridge, renewed), 'unchanged', 'every later start');
      } finally {
        bridge.close();
        close();
      }
    });
  }
});
