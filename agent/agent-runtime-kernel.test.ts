import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SdcError } from '../core/errors/index.js';
import { SeededRandom } from '../core/random/prng.js';
import { VirtualTime } from '../core/time/virtual-time.js';
import { openKernel, requireKernelAvailable, runAgent } from './agent-runtime.js';
import { agentPosture } from './posture.js';

/**
 * Which kernel the agent runs (review h1, finding 2): the mock only when named, `auto` refusing
 * when the native library is missing, the mock locking nothing unless asked, and the backend in
 * use reported in the posture.
 */
describe('the agent kernel choice', () => {
  const withDir = (body: (dir: string) => Promise<void>) => async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sdc-agent-kernel-'));
    try {
      await body(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const time = new VirtualTime(1_800_000_000_000);

  it("'auto' without a native library refuses with KERNEL_LIBRARY_MISSING, naming the build and --kernel mock, and provisions nothing", withDir(async (dir) => {
    const libraryPath = join(dir, 'missing', 'libsdc_kernel.so');
    const kernelDir = join(dir, 'kernel');
    assert.throws(() => openKernel({ choice: 'auto', dir: kernelDir, clock: time, random: new SeededRandom(1), scheduler: time, libraryPath }), (error) => {
      assert.ok(SdcError.is(error, 'KERNEL_LIBRARY_MISSING'));
      assert.match(error.message, /npm run kernel:build/);
      assert.match(error.message, /--kernel mock/);
      return true;
    });
    assert.equal(existsSync(kernelDir), false, 'no kernel keys written for a refused start');
    assert.throws(() => requireKernelAvailable('auto', libraryPath), (error) => SdcError.is(error, 'KERNEL_LIBRARY_MISSING'));
    requireKernelAvailable('mock', libraryPath);
  }));

  it("'native' without the library refuses before enrolling: the pairing token is not sent (review h11, finding 6)", withDir(async (dir) => {
    // A listener standing in for the control plane: any enrollment attempt opens a connection to it.
    const sockets: Socket[] = [];
    const server = createServer((socket) => { sockets.push(socket); socket.destroy(); });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      await assert.rejects(runAgent({
        dir: join(dir, 'agent'), serverUrl: `https://127.0.0.1:${port}`, deviceId: 'dev-native-1', pairingToken: 'one-time-token',
        caPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', kernel: 'native', kernelLibraryPath: join(dir, 'missing', 'libsdc_kernel.so'),
        telemetryIntervalMs: 60_000, clock: time, random: new SeededRandom(4), scheduler: time,
      }), (error) => SdcError.is(error, 'KERNEL_LIBRARY_MISSING') && /--kernel native/.test(error.message));
      assert.equal(sockets.length, 0, 'no enrollment request reached the control plane');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }));

  it('the mock, named, answers EXEC_LOCK_SCREEN NOT_SUPPORTED unless asked to simulate a lock, and the posture says mock', withDir(async (dir) => {
    const plain = openKernel({ choice: 'mock', dir: join(dir, 'kernel'), clock: time, random: new SeededRandom(2), scheduler: time });
    try {
      assert.equal(plain.backend, 'mock');
      // The capability bit is the option EXEC_LOCK_SCREEN answers by (NOT_SUPPORTED when clear; mock-kernel.ts).
      assert.equal((await plain.pingKernel()).lockScreenSupported, false);
      const posture = await agentPosture({ kernel: plain, config: { kernel: plain.backend } });
      assert.equal(posture.kernel_backend, 'mock');
      assert.equal(posture.kernel_attestation, 'unattested');
    } finally {
      plain.close();
    }
    const desktop = openKernel({ choice: 'mock', dir: join(dir, 'kernel'), clock: time, random: new SeededRandom(2), scheduler: time, mockLockScreen: true });
    try {
      assert.equal((await desktop.pingKernel()).lockScreenSupported, true);
    } finally {
      desktop.close();
    }
  }));
});
