// The STAGE source is never opened unless it is a regular file (review h1, F4): the path is the
// agent's choice and the signed command does not cover it, and open() itself acts on a device
// (/dev/watchdog arms the watchdog). A FIFO is the device-like node a test can watch without root
// side effects: opening it for reading releases a writer blocked in open(), so a writer that stays
// blocked proves the kernel never opened the node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, openSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SdcError } from '../../core/errors/index.js';
import type { IoctlKernelBridge } from '../bridge/kernel-bridge.js';
import type { NativeTarget } from './native-target.js';
import { releaseLibraryForTests, sha256, stageAuthorizer, withProvisionedTarget } from './test-support.js';

const agentSeed = new Uint8Array(32).fill(4);
const serviceSeed = new Uint8Array(32).fill(5);
const cpSeed = new Uint8Array(32).fill(6);
const deviceId = 'stage-source-01';
const { libraryPath, skip } = releaseLibraryForTests();
const stageAuth = stageAuthorizer({ idPrefix: 'ss', deviceId, cpSeed });
const refusedIoError = (e: unknown) => SdcError.is(e, 'KERNEL_REFUSED') && e.details.status === 'IO_ERROR';

function withBridge(body: (target: NativeTarget, bridge: IoctlKernelBridge) => Promise<void>): Promise<void> {
  return withProvisionedTarget({ libraryPath, agentSeed, serviceSeed, cpSeed, deviceId, timeoutMs: 60_000 }, (target, bridgeOf) => body(target, bridgeOf(target.device)));
}

test('a FIFO named as the STAGE source is refused IO_ERROR without being opened (a writer blocked in open stays blocked)', { skip }, () => withBridge(async (target, bridge) => {
  const fifo = join(target.root, 'artifacts', 'node.bin');
  execFileSync('mkfifo', [fifo]);
  // open(O_WRONLY) on a FIFO returns only once someone opens it for reading: "opened" tells us that happened.
  const writer = spawn('sh', ['-c', 'exec 3>"$1"; echo opened', 'sh', fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  writer.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  const exited = new Promise((resolve) => writer.once('exit', resolve));
  try {
    await sleep(200); // the writer is in open() by now (if not, the check below is only stricter)
    await assert.rejects(bridge.stageUpdate({ path: fifo, version: 'v1', sha256: new Uint8Array(32) }, stageAuth('v1', new Uint8Array(32), 1)), refusedIoError);
    await sleep(500);
    assert.equal(output, '', 'the kernel opened the FIFO: the writer blocked in open() was released');
  } finally {
    // Our own reader releases the writer: this also shows the check above could see an open.
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    await exited;
    closeSync(reader);
  }
  assert.equal(output, 'opened\n');
  assert.equal((await bridge.getStatus()).stageFailures, 1);
}));

test('a symlink named as the STAGE source is refused IO_ERROR, the regular file it points at stages', { skip }, () => withBridge(async (target, bridge) => {
  const bytes = new TextEncoder().encode('artifact behind a link');
  const file = target.putArtifact('real.bin', bytes);
  const link = join(target.root, 'artifacts', 'link.bin');
  symlinkSync(file, link);
  await assert.rejects(bridge.stageUpdate({ path: link, version: 'v1', sha256: sha256(bytes) }, stageAuth('v1', sha256(bytes), bytes.length)), refusedIoError);
  const staged = await bridge.stageUpdate({ path: file, version: 'v1', sha256: sha256(bytes) }, stageAuth('v1', sha256(bytes), bytes.length));
  assert.equal(staged.sizeBytes, BigInt(bytes.length));
  assert.equal((await bridge.getStatus()).stagedVersion, 'v1');
}));

// A guard, not a reproduction: the old code refused it too, after opening it (which /dev/null does not mind).
test('a device node named as the STAGE source is refused IO_ERROR', { skip }, () => withBridge(async (_target, bridge) => {
  await assert.rejects(bridge.stageUpdate({ path: '/dev/null', version: 'v1', sha256: new Uint8Array(32) }, stageAuth('v1', new Uint8Array(32), 1)), refusedIoError);
}));
