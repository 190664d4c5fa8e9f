/**
 * A stand-in for the native library's functions (NativeDeviceOptions.bindings), for tests of what
 * the device and the bridge make of a library that misbehaves: no library, no handle, no thread.
 * Each ioctl completes at once, from the event loop, with the status and the returned length the
 * test chose (the bytes written stay zero).
 */
import type { IoctlFunction, NativeBindings } from './native-device.js';

export interface FakeIoctlAnswer {
  /** What sdc_device_io_control returns (KernelStatus). */
  readonly status: number;
  /** What it writes to `*returned`, from the output buffer's size. */
  readonly returnedBytes: (outLen: number) => number;
}

export function fakeNativeBindings(answer: FakeIoctlAnswer): NativeBindings & { readonly calls: () => number } {
  let calls = 0;
  const ioctl = (() => { throw new Error('the device calls the library asynchronously only'); }) as unknown as IoctlFunction;
  ioctl.async = (...args) => {
    calls += 1;
    const [, , , , , outLen, returned, done] = args;
    returned[0] = answer.returnedBytes(outLen);
    queueMicrotask(() => done(null, answer.status));
  };
  return {
    open: () => 1n,
    close: () => undefined,
    servicePublicKey: () => 0,
    ioctl,
    calls: () => calls,
  };
}
