import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { SdcError } from '../../core/errors/index.js';
import { provisionKernelKeys } from '../keys.js';
import { SeededRandom } from '../../core/random/prng.js';
import { buildNativeLibrary } from '../native/build.js';
import { createKernelBridge } from './create-kernel-bridge.js';

const ed25519 = createNodeEd25519Provider();
const clock = { nowMs: () => 1_700_000_000_000 };

function withKeys(body: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sdc-bridge-'));
    try {
      await body(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

for (const backend of ['native', 'auto'] as const) {
  test(`'${backend}' without a built library is refused with KERNEL_LIBRARY_MISSING, never answered by the mock`, withKeys(async (dir) => {
    const keys = provisionKernelKeys({ dir, ed25519, random: new SeededRandom(3) });
    assert.throws(() => createKernelBridge({ backend, ed25519, clock, keys, native: { sandboxDir: dir, libraryPath: join(dir, 'missing.so') } }),
      (e) => SdcError.is(e, 'KERNEL_LIBRARY_MISSING'));
  }));
}

test("'auto' uses the native library when it is built", withKeys(async (dir) => {
  const keys = provisionKernelKeys({ dir, ed25519, random: new SeededRandom(4) });
  const { libraryPath } = buildNativeLibrary({ variant: 'release' });
  const { bridge } = createKernelBridge({ backend: 'auto', ed25519, clock, keys, native: { sandboxDir: dir, libraryPath } });
  assert.equal(bridge.backend, 'native');
  const status = await bridge.getStatus();
  assert.equal(status.lastCounter, 1_700_000_000_000_000n);
  bridge.close();
}));

test('a bridge holding the wrong service key refuses every response as forged', withKeys(async (dir) => {
  const keys = provisionKernelKeys({ dir, ed25519, random: new SeededRandom(5) });
  const other = provisionKernelKeys({ dir: join(dir, 'other'), ed25519, random: new SeededRandom(6) });
  const { bridge } = createKernelBridge({ backend: 'mock', ed25519, clock, keys: { ...keys, servicePublicKeyPath: other.servicePublicKeyPath } });
  await assert.rejects(bridge.pingKernel(), (e) => SdcError.is(e, 'KERNEL_RESPONSE_SIGNATURE'));
  bridge.close();
}));

test("'windows' on Linux is refused with KERNEL_LIBRARY_MISSING, not a crash", withKeys(async (dir) => {
  const keys = provisionKernelKeys({ dir, ed25519, random: new SeededRandom(7) });
  assert.throws(() => createKernelBridge({ backend: 'windows', ed25519, clock, keys, windows: { devicePath: '\\\\.\\SdcKernel' } }),
    (e) => SdcError.is(e, 'KERNEL_LIBRARY_MISSING'));
}));

test('each kernel call is logged with its opcode, counter and status, and with the trace id its authorization carries', withKeys(async (dir) => {
  const keys = provisionKernelKeys({ dir, ed25519, random: new SeededRandom(5) });
  const lines: Array<Record<string, unknown>> = [];
  const { bridge } = createKernelBridge({ backend: 'mock', ed25519, clock, keys, logger: { info: (fields) => { lines.push({ ...fields }); } } });
  try {
    await bridge.pingKernel(7n);
    // An authorization the kernel refuses (no command keys, a junk signature): the call is logged all the same, with its trace.
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await assert.rejects(bridge.pingKernel(8n, { signedBytes: new Uint8Array([1, 2, 3]), signature: new Uint8Array(64), traceparent }), (error) => SdcError.is(error));
    assert.equal(lines.length, 2);
    assert.equal(lines[0]!.opcode, 'EXEC_PING_KERNEL');
    assert.equal(lines[0]!.status, 'OK');
    assert.equal(lines[0]!.trace_id, undefined);
    assert.equal(lines[1]!.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(lines[1]!.parent_id, '00f067aa0ba902b7');
    assert.notEqual(lines[1]!.status, 'OK');
    assert.equal(BigInt(String(lines[1]!.counter)), BigInt(String(lines[0]!.counter)) + 1n);
  } finally {
    bridge.close();
  }
}));
