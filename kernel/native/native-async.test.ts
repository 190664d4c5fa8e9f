// The native library's calls off the event loop (review h1, finding 5): koffi's async mode runs
// sdc_device_io_control on a worker thread, so timers run during a long call and the bridge's
// timeout fires; the call that timed out is still accounted for (the next waits for it, and gets
// its own answer); a FIFO named as an update source is refused instead of blocking in open().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import { signCommand } from '../../core/protocol/signed-command.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { systemScheduler } from '../../runtime/system.js';
import { IoctlKernelBridge } from '../bridge/kernel-bridge.js';
import { commandAuthorization } from '../command/authorization.js';
import type { IoctlDevice } from '../device.js';
import { buildNativeLibrary } from './build.js';
import { createNativeTarget, type NativeTarget } from './native-target.js';

const agentSeed = new Uint8Array(32).fill(1);
const serviceSeed = new Uint8Array(32).fill(2);
const cpSeed = new Uint8Array(32).fill(3);
const deviceId = 'native-async-01';
const ed25519 = createNodeEd25519Provider();

let libraryPath = '';
let skip: string | undefined;
try {
  libraryPath = buildNativeLibrary({ variant: 'release' }).libraryPath;
} catch (error) {
  skip = `native library cannot be built here: ${(error as Error).message}`;
  if (process.env.CI) throw error;
}

let seq = 1;
const stageAuth = (version: string, bytes: Uint8Array | { sha256: Uint8Array; length: number }) => {
  const digest = bytes instanceof Uint8Array ? sha256(bytes) : bytes.sha256;
  const length = bytes instanceof Uint8Array ? bytes.length : bytes.length;
  return commandAuthorization(signCommand({
    command: {
      id: `na${seq}`, device_id: deviceId, opcode: 'EXEC_STAGE_UPDATE', args: { version, sha256: Buffer.from(digest).toString('hex'), size_bytes: length },
      issued_at: Date.now(), expires_at: Date.now() + 86_400_000, device_seq: seq++, issuer: 'test',
    },
    kid: 'cp', seed: cpSeed, provider: ed25519,
  } as Parameters<typeof signCommand>[0]));
};
function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

async function withProvisioned(body: (target: NativeTarget, bridgeOf: (device: IoctlDevice, options?: { time?: VirtualTime }) => IoctlKernelBridge) => Promise<void>): Promise<void> {
  const target = createNativeTarget({ libraryPath, agentSeed, serviceSeed });
  let counterStart = 1n;
  const bridgeOf = (device: IoctlDevice, options: { time?: VirtualTime } = {}) => {
    const bridge = new IoctlKernelBridge({
      device, ed25519, agentSeed, servicePublicKey: target.servicePublicKey, counterStart,
      // A real scheduler's generous bound only so that a regression fails instead of hanging; the virtual one the test fires itself.
      timeoutMs: options.time ? 1_000 : 120_000, scheduler: options.time ?? systemScheduler,
    });
    counterStart += 1_000n;
    return bridge;
  };
  try {
    await bridgeOf(target.device).provisionCommandKeys({ deviceId, keys: [ed25519.publicKeyFromSeed(cpSeed)] });
    await body(target, bridgeOf);
  } finally {
    target.device.close();
    target.cleanup();
  }
}

test('a FIFO named as the update source is refused (IO_ERROR) without waiting for a writer', { skip }, () => withProvisioned(async (target, bridgeOf) => {
  const fifo = join(target.root, 'artifacts', 'fifo.bin');
  execFileSync('mkfifo', [fifo]);
  const bridge = bridgeOf(target.device);
  await assert.rejects(bridge.stageUpdate({ path: fifo, version: 'v1', sha256: new Uint8Array(32) }, stageAuth('v1', { sha256: new Uint8Array(32), length: 1 })),
    (e) => SdcError.is(e, 'KERNEL_REFUSED') && e.details.status === 'IO_ERROR');
  const status = await bridge.getStatus();
  assert.equal(status.stageFailures, 1);
  assert.equal(status.stagedVersion, '');
}));

test('the event loop keeps turning while a native STAGE of 64 MiB runs', { skip }, () => withProvisioned(async (target, bridgeOf) => {
  const path = join(target.root, 'artifacts', 'big.bin');
  const chunk = new Uint8Array(1024 * 1024).fill(0x5a);
  const fd = openSync(path, 'w');
  const hash = createHash('sha256');
  for (let i = 0; i < 64; i++) {
    writeSync(fd, chunk);
    hash.update(chunk);
  }
  closeSync(fd);
  const digest = new Uint8Array(hash.digest());
  const bridge = bridgeOf(target.device);
  let turns = 0;
  let running = true;
  const turn = () => {
    if (!running) return;
    turns += 1;
    setImmediate(turn);
  };
  const staged = bridge.stageUpdate({ path, version: 'big', sha256: digest }, stageAuth('big', { sha256: digest, length: 64 * chunk.length }));
  setImmediate(turn);
  const result = await staged;
  running = false;
  assert.equal(result.sizeBytes, BigInt(64 * chunk.length));
  // A synchronous call holds the loop from its start to its end: not one turn would run before it resolves.
  assert.ok(turns >= 1, `the loop turned ${turns} time(s) during the call`);
}));

test('a native call that times out is still accounted for: the next call waits for it and gets its own answer', { skip }, () => withProvisioned(async (target, bridgeOf) => {
  const time = new VirtualTime(1_800_000_000_000);
  let fireTimeoutOnce = true;
  // The bridge's timer is fired as the first call reaches the device: its native call then runs on with nobody waiting.
  const device: IoctlDevice = {
    kind: 'native',
    call(code, input, outLen, signal) {
      const call = target.device.call(code, input, outLen, signal);
      if (fireTimeoutOnce) {
        fireTimeoutOnce = false;
        time.advance(1_000);
      }
      return call;
    },
    close: () => target.device.close(),
  };
  const before = await bridgeOf(target.device).getStatus();
  const bridge = bridgeOf(device, { time }); // counters from 2001
  await assert.rejects(bridge.pingKernel(77n), (e) => SdcError.is(e, 'KERNEL_TIMEOUT'));
  const status = await bridge.getStatus();
  // The timed-out ping ran (it was accepted), then this call with the next counter: its answer is its own.
  assert.equal(status.requestsAccepted, before.requestsAccepted + 2n);
  assert.equal(status.lastCounter, 2_002n);
  assert.equal(target.device.nativeCallInFlight, false);
}));
