// Issue 17 (start-up): the simulator builds a device's mock kernel and bridge on the first kernel call.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { lazyKernelBridge } from './lazy-kernel.js';
import { IoctlKernelBridge, type KernelBridge } from '../kernel/bridge/kernel-bridge.js';
import { MockIoctlDevice } from '../kernel/mock/mock-kernel.js';
import { createModelEd25519Provider } from './model-crypto.js';
import { SdcError } from '../core/errors/index.js';

function mockBridge(): KernelBridge {
  const ed25519 = createModelEd25519Provider();
  const agentSeed = new Uint8Array(32).fill(1);
  const serviceSeed = new Uint8Array(32).fill(2);
  const clock = { nowMs: () => 1_700_000_000_000 };
  const device = new MockIoctlDevice({ ed25519, serviceSeed, agentPublicKey: ed25519.publicKeyFromSeed(agentSeed), clock });
  return new IoctlKernelBridge({ device, ed25519, agentSeed, servicePublicKey: ed25519.publicKeyFromSeed(serviceSeed), counterStart: 1n });
}

describe('lazyKernelBridge', () => {
  it('builds the bridge on the first call only, once, and answers as the bridge does', async () => {
    let made = 0;
    const lazy = lazyKernelBridge('mock', () => { made += 1; return mockBridge(); });
    assert.equal(lazy.backend, 'mock');
    assert.equal(made, 0, 'nothing built before a call');
    assert.equal(lazy.built, false);
    const first = await lazy.pingKernel(7n);
    assert.equal(first.nonce, 7n);
    await lazy.getStatus();
    await lazy.pingKernel(8n);
    assert.equal(made, 1, 'built once');
    assert.equal(lazy.built, true);
    lazy.close();
    await assert.rejects(lazy.pingKernel(9n), (error: unknown) => SdcError.is(error, 'KERNEL_CLOSED'));
  });

  it('closed before its first call: a later call is refused as by a closed bridge', async () => {
    let made = 0;
    const lazy = lazyKernelBridge('mock', () => { made += 1; return mockBridge(); });
    lazy.close();
    assert.equal(made, 0, 'closing builds nothing');
    await assert.rejects(lazy.pingKernel(1n), (error: unknown) => SdcError.is(error, 'KERNEL_CLOSED'));
    assert.equal(made, 1);
  });
});
