/**
 * The Windows backend: opens the driver's device with CreateFileW and sends the same byte
 * layouts with DeviceIoControl, through koffi. Present and type-checked, NOT exercised against a
 * driver on this Linux machine (no driver, no kernel32); docs/kernel-contract.md says so. Its call
 * discipline is tested with a fake kernel32 (windows-device.test.ts).
 *
 * DeviceIoControl runs through koffi's async mode on a libuv worker thread, one call at a time
 * with a bounded wait (kernel/serial-device-calls.ts, shared with the native backend): a STAGE
 * hash or a screen lock may take seconds, and a synchronous call would freeze the agent's event
 * loop (heartbeats, liveness answers) and the bridge's timeout for that long. The caller's
 * signal ends its wait, never the driver call; CloseHandle waits for the last call to return.
 */
import koffi from 'koffi';
import { SdcError } from '../../core/errors/index.js';
import { KernelStatus } from '../generated/contract.js';
import type { IoctlDevice, IoctlResult } from '../device.js';
import { SerialDeviceCalls } from '../serial-device-calls.js';

const GENERIC_READ = 0x80000000;
const GENERIC_WRITE = 0x40000000;
const OPEN_EXISTING = 3;
const FILE_ATTRIBUTE_NORMAL = 0x80;
const INVALID_HANDLE_VALUE = (1n << 64n) - 1n; // (HANDLE)-1 as koffi's unsigned BigInt pointer
const ERROR_INSUFFICIENT_BUFFER = 122;
const ERROR_MORE_DATA = 234;

type DeviceIoControlArgs = [handle: bigint, code: number, input: Buffer | null, inLen: number, output: Buffer, outLen: number, returned: [number], overlapped: null];
/** The koffi function: callable, and `.async(...args, callback)` on a worker thread. Only the async form is used. */
export type DeviceIoControlFunction = ((...args: DeviceIoControlArgs) => boolean)
  & { async: (...args: [...DeviceIoControlArgs, (error: unknown, ok: boolean) => void]) => void };

/** The kernel32 functions the backend uses; tests pass a fake (WindowsDeviceOptions.kernel32). */
export interface Kernel32 {
  CreateFileW: (name: string, access: number, share: number, security: null, disposition: number, flags: number, template: null) => bigint;
  DeviceIoControl: DeviceIoControlFunction;
  CloseHandle: (handle: bigint) => boolean;
  /** Inside an async call's callback koffi (>= 3.2) gives the worker thread's last error. */
  GetLastError: () => number;
}

function loadKernel32(): Kernel32 {
  if (process.platform !== 'win32') throw new SdcError('KERNEL_LIBRARY_MISSING', 'the windows kernel backend runs only on Windows');
  const lib = koffi.load('kernel32.dll');
  return {
    CreateFileW: lib.func('void * __stdcall CreateFileW(const char16_t *name, uint32_t access, uint32_t share, void *security, uint32_t disposition, uint32_t flags, void *template)') as Kernel32['CreateFileW'],
    DeviceIoControl: lib.func('bool __stdcall DeviceIoControl(void *handle, uint32_t code, const void *input, uint32_t in_len, _Out_ uint8_t *output, uint32_t out_len, _Out_ uint32_t *returned, void *overlapped)') as unknown as Kernel32['DeviceIoControl'],
    CloseHandle: lib.func('bool __stdcall CloseHandle(void *handle)') as Kernel32['CloseHandle'],
    GetLastError: lib.func('uint32_t __stdcall GetLastError()') as Kernel32['GetLastError'],
  };
}

export interface WindowsDeviceOptions {
  /** The driver's device path, e.g. \\\\.\\SdcKernel. */
  devicePath: string;
  /** kernel32 itself by default (Windows only); tests inject a fake. */
  kernel32?: Kernel32;
}

export class WindowsIoctlDevice implements IoctlDevice {
  readonly kind = 'windows' as const;
  private readonly k32: Kernel32;
  private handle: bigint | null;
  private readonly calls = new SerialDeviceCalls({ deviceName: 'windows kernel device', freeHandle: () => this.freeHandle() });

  constructor(options: WindowsDeviceOptions) {
    this.k32 = options.kernel32 ?? loadKernel32();
    const handle = this.k32.CreateFileW(options.devicePath, GENERIC_READ | GENERIC_WRITE, 0, null, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, null);
    if (handle === INVALID_HANDLE_VALUE || handle === 0n) {
      throw new SdcError('KERNEL_OPEN_FAILED', `CreateFileW(${options.devicePath}) failed with Win32 error ${this.k32.GetLastError()}`);
    }
    this.handle = handle;
  }

  /**
   * One DeviceIoControl on a worker thread. `signal` ends the caller's wait (its reason is the
   * rejection), never the driver call, which is still accounted for until it returns.
   */
  async call(code: number, input: Uint8Array, outLen: number, signal?: AbortSignal): Promise<IoctlResult> {
    const out = Buffer.alloc(outLen);
    const returned: [number] = [0];
    const inBuffer = input.length === 0 ? null : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    const done = await this.calls.run(() => {
      const handle = this.requireHandle();
      return new Promise<{ ok: boolean; lastError: number }>((resolve, reject) => {
        // The closure keeps the buffers alive until the worker is done; the last error is the worker's only inside the callback.
        this.k32.DeviceIoControl.async(handle, code >>> 0, inBuffer, input.length, out, outLen, returned, null,
          (error, ok) => (error ? reject(error) : resolve({ ok, lastError: ok ? 0 : this.k32.GetLastError() })));
      });
    }, signal);
    return windowsResult(done, out, Math.min(returned[0], outLen));
  }

  /** Closes the handle now, or when the driver call in flight returns (the worker still uses it). */
  close(): void {
    this.calls.close();
  }

  private freeHandle(): void {
    if (this.handle !== null) this.k32.CloseHandle(this.handle);
    this.handle = null;
  }

  private requireHandle(): bigint {
    if (this.handle === null) throw new SdcError('KERNEL_CLOSED', 'windows kernel device is closed');
    return this.handle;
  }
}

/**
 * The driver completes refusals with a signed response and success; a failed call that wrote
 * nothing maps to BUFFER_TOO_SMALL or IO_ERROR so the bridge reports it as unauthenticated.
 */
function windowsResult(done: { ok: boolean; lastError: number }, out: Buffer, length: number): IoctlResult {
  if (!done.ok) {
    const status = done.lastError === ERROR_INSUFFICIENT_BUFFER || done.lastError === ERROR_MORE_DATA ? KernelStatus.BUFFER_TOO_SMALL : KernelStatus.IO_ERROR;
    return { status, output: new Uint8Array(0) };
  }
  const output = new Uint8Array(out.buffer, out.byteOffset, length);
  const status = length >= 28 ? new DataView(output.buffer, output.byteOffset).getUint32(24, true) : KernelStatus.IO_ERROR;
  return { status, output };
}
