// The Windows backend's call discipline (review h1, F6), with kernel32 faked: no driver and no
// Windows here. DeviceIoControl must run off the event loop (koffi's async mode), one call at a
// time with at most deviceCallLimits.waitingCallsMax waiting, the caller's signal ending only its
// wait, and CloseHandle only after the driver call returned.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../../core/errors/index.js';
import { KernelStatus } from '../generated/contract.js';
import { deviceCallLimits } from '../serial-device-calls.js';
import { WindowsIoctlDevice, type DeviceIoControlFunction, type Kernel32 } from './windows-device.js';

const handleValue = 0x1234n;

interface FakeKernel32 {
  kernel32: Kernel32;
  /** Completes the oldest pending async call: ok with a response whose header status is `status`, or failed with `lastError`. */
  complete: (outcome: { status: number } | { lastError: number }) => void;
  readonly pending: number;
  readonly started: number;
  readonly closed: bigint[];
}

/**
 * The synchronous form blocks the thread for `syncBlockMs`, as the real call does for the time the
 * driver takes; the async form completes when the test says so (`complete`), from the event loop.
 */
function fakeKernel32(options: { syncBlockMs?: number } = {}): FakeKernel32 {
  const pending: Array<{ out: Buffer; returned: [number]; done: (error: unknown, ok: boolean) => void }> = [];
  let started = 0;
  let lastError = 0;
  const closed: bigint[] = [];
  const sync = (() => {
    const until = performance.now() + (options.syncBlockMs ?? 0);
    while (performance.now() < until) { /* the driver is working */ }
    return false;
  }) as unknown as DeviceIoControlFunction;
  sync.async = (...args) => {
    started += 1;
    const [handle, , , , out, , returned] = args;
    assert.equal(handle, handleValue);
    pending.push({ out, returned, done: args[8] });
  };
  return {
    kernel32: {
      CreateFileW: () => handleValue,
      DeviceIoControl: sync,
      CloseHandle: (handle) => { closed.push(handle); return true; },
      GetLastError: () => lastError,
    },
    complete(outcome) {
      const call = pending.shift();
      assert.ok(call, 'no call pending');
      if ('lastError' in outcome) {
        lastError = outcome.lastError;
        call.done(null, false);
        return;
      }
      call.out.writeUInt32LE(outcome.status, 24);
      call.returned[0] = 96;
      call.done(null, true);
    },
    get pending() { return pending.length; },
    get started() { return started; },
    closed,
  };
}

/** Bounded in loop turns, not time: a call that never reaches the async form fails instead of hanging. */
async function untilPending(fake: FakeKernel32): Promise<void> {
  for (let turns = 0; fake.pending === 0; turns++) {
    assert.ok(turns < 10_000, 'no DeviceIoControl.async call started');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const device = (fake: FakeKernel32) => new WindowsIoctlDevice({ devicePath: '\\\\.\\SdcKernel', kernel32: fake.kernel32 });
const input = new Uint8Array(96);

test('a DeviceIoControl that takes long does not hold the event loop: timers fire while it runs', async () => {
  const fake = fakeKernel32({ syncBlockMs: 300 });
  const windows = device(fake);
  let timerFired = false;
  const timer = setTimeout(() => { timerFired = true; fake.complete({ status: KernelStatus.OK }); }, 0);
  try {
    const result = await windows.call(0x222004, input, 96);
    assert.equal(timerFired, true, 'the call returned before a 0 ms timer could run: it blocked the loop');
    assert.equal(result.status, KernelStatus.OK);
    assert.equal(result.output.length, 96);
    assert.equal(fake.started, 1);
  } finally {
    clearTimeout(timer);
    windows.close();
  }
});

test('a failed call maps the worker\'s last error: insufficient buffer -> BUFFER_TOO_SMALL, else IO_ERROR, nothing returned', async () => {
  const fake = fakeKernel32();
  const windows = device(fake);
  const small = windows.call(0x222004, input, 96);
  await untilPending(fake);
  fake.complete({ lastError: 122 });
  assert.deepEqual(await small, { status: KernelStatus.BUFFER_TOO_SMALL, output: new Uint8Array(0) });
  const failed = windows.call(0x222004, input, 96);
  await untilPending(fake);
  fake.complete({ lastError: 31 });
  assert.deepEqual(await failed, { status: KernelStatus.IO_ERROR, output: new Uint8Array(0) });
  windows.close();
});

test('one driver call at a time; at most waitingCallsMax wait behind it, the next is KERNEL_QUEUE_FULL', async () => {
  const fake = fakeKernel32();
  const windows = device(fake);
  const calls = Array.from({ length: deviceCallLimits.waitingCallsMax + 1 }, () => windows.call(0x222004, input, 96));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(fake.started, 1, 'a second call reached the driver while one was running');
  await assert.rejects(windows.call(0x222004, input, 96), (e) => SdcError.is(e, 'KERNEL_QUEUE_FULL'));
  for (let i = 0; i < calls.length; i++) {
    await untilPending(fake);
    assert.equal(fake.pending, 1);
    fake.complete({ status: KernelStatus.OK });
    assert.equal((await calls[i])!.status, KernelStatus.OK);
  }
  assert.equal(fake.started, calls.length);
  windows.close();
});

test('the caller\'s signal ends its wait, not the driver call: the handle is closed only after that call returned', async () => {
  const fake = fakeKernel32();
  const windows = device(fake);
  const abort = new AbortController();
  const running = windows.call(0x222004, input, 96, abort.signal);
  const waitingAbort = new AbortController();
  const waiting = windows.call(0x222004, input, 96, waitingAbort.signal);
  waitingAbort.abort(new SdcError('KERNEL_TIMEOUT', 'waited too long'));
  await assert.rejects(waiting, (e) => SdcError.is(e, 'KERNEL_TIMEOUT'));
  abort.abort(new SdcError('KERNEL_TIMEOUT', 'took too long'));
  await assert.rejects(running, (e) => SdcError.is(e, 'KERNEL_TIMEOUT'));
  await untilPending(fake);
  windows.close();
  assert.deepEqual(fake.closed, [], 'the handle was closed under a driver call still running');
  await assert.rejects(windows.call(0x222004, input, 96), (e) => SdcError.is(e, 'KERNEL_CLOSED'));
  fake.complete({ status: KernelStatus.OK });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(fake.closed, [handleValue]);
  assert.equal(fake.started, 1, 'the aborted waiter reached the driver');
});
