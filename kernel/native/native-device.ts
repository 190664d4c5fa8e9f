/**
 * The native kernel library through koffi: sdc_open / sdc_device_io_control / sdc_close.
 * koffi 3 returns pointers as BigInt; the handle is kept as one and never exposed.
 *
 * sdc_device_io_control runs through koffi's async mode, on a libuv worker thread, one call at a
 * time with a bounded wait (kernel/serial-device-calls.ts, shared with the Windows backend): the
 * caller's signal ends the wait, not the native call, and close() frees the handle only after the
 * last native call returned. Each call has its own buffers, so a late completion can only ever
 * settle the call that made it.
 */
import { existsSync } from 'node:fs';
import koffi from 'koffi';
import { SdcError } from '../../core/errors/index.js';
import { KernelStatus, kernelStatusNames } from '../generated/contract.js';
import type { IoctlDevice, IoctlResult } from '../device.js';
import { deviceCallLimits, SerialDeviceCalls } from '../serial-device-calls.js';

/** sdc_open flag: EXEC_LOCK_SCREEN answers NOT_SUPPORTED without running the session manager. */
export const OPEN_NO_LOCK_SCREEN = 0x1;

/** The library's functions (loadNativeLibrary); tests pass a fake (NativeDeviceOptions.bindings). */
export interface NativeBindings {
  open: (sandbox: string, agentPub: string, serviceSeed: string, flags: number, status: [number]) => bigint | null;
  close: (handle: bigint) => void;
  servicePublicKey: (handle: bigint, out: Buffer, outLen: number) => number;
  ioctl: IoctlFunction;
}

type IoctlArgs = [handle: bigint, code: number, input: Buffer | null, inLen: number, out: Buffer, outLen: number, returned: [number]];
/** The koffi function: callable, and `.async(...args, callback)` on a worker thread. */
export type IoctlFunction = ((...args: IoctlArgs) => number) & { async: (...args: [...IoctlArgs, (error: unknown, status: number) => void]) => void };

/** The bound on calls waiting behind a native call still running (kernel/serial-device-calls.ts). */
export const nativeDeviceLimits = deviceCallLimits;

const loaded = new Map<string, NativeBindings>();

/** Loads (once per path) the library; KERNEL_LIBRARY_MISSING when absent or not loadable. */
export function loadNativeLibrary(libraryPath: string): NativeBindings {
  const cached = loaded.get(libraryPath);
  if (cached) return cached;
  if (!existsSync(libraryPath)) {
    throw new SdcError('KERNEL_LIBRARY_MISSING', `native kernel library not found at ${libraryPath}; run npm run kernel:build`);
  }
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load(libraryPath);
  } catch (error) {
    throw new SdcError('KERNEL_LIBRARY_MISSING', `cannot load ${libraryPath}: ${(error as Error).message}`);
  }
  const bindings: NativeBindings = {
    open: lib.func('void *sdc_open(const char *sandbox, const char *agent_pub, const char *service_seed, uint32_t flags, _Out_ int32_t *status)') as NativeBindings['open'],
    close: lib.func('void sdc_close(void *handle)') as NativeBindings['close'],
    servicePublicKey: lib.func('int sdc_service_public_key(void *handle, _Out_ uint8_t *out, uint32_t out_len)') as NativeBindings['servicePublicKey'],
    ioctl: lib.func('int sdc_device_io_control(void *handle, uint32_t code, const void *input, uint32_t in_len, _Out_ uint8_t *output, uint32_t out_len, _Out_ uint32_t *returned)') as unknown as IoctlFunction,
  };
  loaded.set(libraryPath, bindings);
  return bindings;
}

export interface NativeDeviceOptions {
  libraryPath: string;
  /** Directory the service owns for update slots (must exist). */
  sandboxDir: string;
  /** File of exactly 32 raw bytes: the agent's Ed25519 public key (provisioning). */
  agentPublicKeyPath: string;
  /** File of exactly 32 raw bytes: the service's Ed25519 private seed. */
  serviceSeedPath: string;
  /** Run the session manager for EXEC_LOCK_SCREEN (default false: tests must not lock a developer's screen). */
  lockScreen?: boolean;
  /** The library's functions; loaded from libraryPath by default, a fake in tests (a library that misreports lengths). */
  bindings?: NativeBindings;
}

export class NativeIoctlDevice implements IoctlDevice {
  readonly kind = 'native' as const;
  private handle: bigint | null;
  private readonly lib: NativeBindings;
  private readonly calls = new SerialDeviceCalls({ deviceName: 'native kernel device', freeHandle: () => this.freeHandle() });

  constructor(options: NativeDeviceOptions) {
    this.lib = options.bindings ?? loadNativeLibrary(options.libraryPath);
    const status: [number] = [-1];
    const flags = options.lockScreen ? 0 : OPEN_NO_LOCK_SCREEN;
    const handle = this.lib.open(options.sandboxDir, options.agentPublicKeyPath, options.serviceSeedPath, flags, status);
    if (handle === null || handle === 0n) {
      const name = kernelStatusNames[status[0]] ?? String(status[0]);
      throw new SdcError('KERNEL_OPEN_FAILED', `sdc_open failed with ${name} (sandbox ${options.sandboxDir})`, { status: name });
    }
    this.handle = handle;
  }

  servicePublicKey(): Uint8Array {
    const out = Buffer.alloc(32);
    const status = this.lib.servicePublicKey(this.requireHandle(), out, out.length);
    if (status !== KernelStatus.OK) throw new SdcError('KERNEL_OPEN_FAILED', `sdc_service_public_key returned ${status}`);
    return new Uint8Array(out);
  }

  /**
   * One call on a worker thread. `signal` ends the caller's wait (its reason is the rejection),
   * never the native call, which is still accounted for until it returns.
   */
  async call(code: number, input: Uint8Array, outLen: number, signal?: AbortSignal): Promise<IoctlResult> {
    const out = Buffer.alloc(outLen);
    const returned: [number] = [0];
    const inBuffer = input.length === 0 ? null : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    const status = await this.calls.run(() => {
      const handle = this.requireHandle();
      return new Promise<number>((resolve, reject) => {
        // The closure keeps `inBuffer`, `out` and `returned` alive until the worker is done with them.
        this.lib.ioctl.async(handle, code >>> 0, inBuffer, input.length, out, outLen, returned, (error, result) => (error ? reject(error) : resolve(result)));
      });
    }, signal);
    // The library's word on the length, not a cancelled call: typed so the bridge passes it on and the agent reports a malformed response.
    if (returned[0] > outLen) {
      throw new SdcError('KERNEL_RESPONSE_INVALID', `native library reported ${returned[0]} bytes for a ${outLen}-byte buffer`, { reportedBytes: returned[0], bufferBytes: outLen });
    }
    return { status, output: new Uint8Array(out.buffer, out.byteOffset, returned[0]) };
  }

  /** Frees the handle now, or when the native call in flight returns (the worker still uses it). */
  close(): void {
    this.calls.close();
  }

  /** Whether a native call is running (one whose caller may have stopped waiting). */
  get nativeCallInFlight(): boolean {
    return this.calls.inFlight;
  }

  private freeHandle(): void {
    if (this.handle !== null) this.lib.close(this.handle);
    this.handle = null;
  }

  private requireHandle(): bigint {
    if (this.handle === null) throw new SdcError('KERNEL_CLOSED', 'native kernel device is closed');
    return this.handle;
  }
}
