// A native library that reports more bytes than the output buffer holds (review h16, finding 1):
// the device refuses its answer as a malformed response (KERNEL_RESPONSE_INVALID), and the bridge
// passes that on unchanged, instead of a plain Error relabelled KERNEL_CANCELLED (as if the
// agent had given up on the call). The agent's report of it: agent/agent-core.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../../core/errors/index.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { IoctlKernelBridge } from '../bridge/kernel-bridge.js';
import { KernelStatus } from '../generated/contract.js';
import { fakeNativeBindings } from './fake-bindings.js';
import { NativeIoctlDevice } from './native-device.js';

const provider = createNodeEd25519Provider();
const paths = { libraryPath: '/nonexistent/libsdc.so', sandboxDir: '/nonexistent', agentPublicKeyPath: '/nonexistent/a', serviceSeedPath: '/nonexistent/s' };

test('a reported length above the buffer is KERNEL_RESPONSE_INVALID from the device and through the bridge', async () => {
  const bindings = fakeNativeBindings({ status: KernelStatus.OK, returnedBytes: (outLen) => outLen + 1 });
  const device = new NativeIoctlDevice({ ...paths, bindings });
  await assert.rejects(device.call(1, new Uint8Array(4), 64),
    (e) => SdcError.is(e, 'KERNEL_RESPONSE_INVALID') && e.details.reportedBytes === 65 && e.details.bufferBytes === 64);
  const bridge = new IoctlKernelBridge({
    device, ed25519: provider, agentSeed: new Uint8Array(32).fill(1), servicePublicKey: provider.publicKeyFromSeed(new Uint8Array(32).fill(2)), counterStart: 1n,
  });
  await assert.rejects(bridge.pingKernel(7n), (e) => SdcError.is(e, 'KERNEL_RESPONSE_INVALID') && /reported \d+ bytes/.test(e.message));
  assert.equal(bindings.calls(), 2);
  bridge.close();
});

test('a reported length that fits is passed on as the output', async () => {
  const device = new NativeIoctlDevice({ ...paths, bindings: fakeNativeBindings({ status: KernelStatus.OK, returnedBytes: (outLen) => outLen }) });
  const result = await device.call(1, new Uint8Array(4), 64);
  assert.deepEqual([result.status, result.output.length], [KernelStatus.OK, 64]);
  device.close();
});
