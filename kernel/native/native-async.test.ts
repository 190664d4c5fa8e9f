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
import { VirtualTime } from '../../core/time/virtual-time.js';
import type { IoctlKernelBridge } from '../bridge/kernel-bridge.js';
import type { IoctlDevice } from '../device.js';
import type { NativeTarget } from './native-target.js';
import { releaseLibraryForTests, stageAuthorizer, withProvisionedTarget } from './test-support.js';

const agentSeed = new Uint8Array(32).fill(1);
const serviceSeed = new Uint8Array(32).fill(2);
const cpSeed = new Uint8Array(32).fill(3);
const deviceId = 'native-async-01';
const { libraryPath, skip } = releaseLibraryForTests();
const stageAuth = stageAuthorizer({ idPrefix: 'na', deviceId, cpSeed });

function withProvisioned(body: (target: NativeTarget, bridgeOf: (device: IoctlDevice, options?: { time?: VirtualTime }) => IoctlKernelBridge) => Promise<void>): Promise<void> {
  // A real scheduler's generous bound only so that a regression fails instead of hanging; the virtual one the test fires itself.
  return withProvisionedTarget({ libraryPath, agentSeed, serviceSeed, cpSeed, deviceId, timeoutMs: 120_000 }, (target, bridgeOf) =>
    body(target, (device, options = {}) => bridgeOf(device, options.time ? { scheduler: options.time, timeoutMs: 1_000 } : {})));
}

test('a FIFO named as the update source is refused (IO_ERROR) without waiting for a writer', { skip }, () => withProvisioned(async (target, bridgeOf) => {
  const fifo = join(target.root, 'artifacts', 'fifo.bin');
  execFileSync('mkfifo', [fifo]);
  const bridge = bridgeOf(target.device);
  await assert.rejects(bridge.stageUpdate({ path: fifo, version: 'v1', sha256: new Uint8Array(32) }, stageAuth('v1', new Uint8Array(32), 1)),
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
  const staged = bridge.stageUpdate({ path, version: 'big', sha256: digest }, stageAuth('big', digest, 64 * chunk.length));
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
