/**
 * The native kernel library through koffi: sdc_open / sdc_device_io_control / sdc_close.
 * koffi 3 returns pointers as BigInt; the handle is kept as one and never exposed.
 */
import { existsSync } from 'node:fs';
import koffi from 'koffi';
import { SdcError } from '../../core/errors/index.js';
import { KernelStatus, kernelStatusNames } from '../generated/contract.js';
import type { IoctlDevice, IoctlResult } from '../device.js';

/** sdc_open flag: EXEC_LOCK_SCREEN answers NOT_SUPPORTED without running the session manager. */
export const OPEN_NO_LOCK_SCREEN = 0x1;

interface NativeBindings {
  open: (sandbox: string, agentPub: string, serviceSeed: string, flags: number, status: [number]) => bigint | null;
  close: (handle: bigint) => void;
  servicePublicKey: (handle: bigint, out: Buffer, outLen: number) => number;
  ioctl: (handle: bigint, code: number, input: Buffer | null, inLen: number, out: Buffer, outLen: number, returned: [number]) => number;
}

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
    ioctl: lib.func('int sdc_device_io_control(void *handle, uint32_t code, const void *input, uint32_t in_len, _Out_ uint8_t *output, uint32_t out_len, _Out_ uint32_t *returned)') as NativeBindings['ioctl'],
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
}

export class NativeIoctlDevice implements IoctlDevice {
  readonly kind = 'native' as const;
  private handle: bigint | null;
  private readonly lib: NativeBindings;

  constructor(options: NativeDeviceOptions) {
    this.lib = loadNativeLibrary(options.libraryPath);
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

  /** Synchronous call; `call` wraps it for the IoctlDevice interface. */
  callSync(code: number, input: Uint8Array, outLen: number): IoctlResult {
    const handle = this.requireHandle();
    const out = Buffer.alloc(outLen);
    const returned: [number] = [0];
    const inBuffer = input.length === 0 ? null : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    const status = this.lib.ioctl(handle, code >>> 0, inBuffer, input.length, out, outLen, returned);
    if (returned[0] > outLen) throw new Error(`native library reported ${returned[0]} bytes for a ${outLen}-byte buffer`);
    return { status, output: new Uint8Array(out.buffer, out.byteOffset, returned[0]) };
  }

  async call(code: number, input: Uint8Array, outLen: number): Promise<IoctlResult> {
    return this.callSync(code, input, outLen);
  }

  close(): void {
    if (this.handle !== null) this.lib.close(this.handle);
    this.handle = null;
  }

  private requireHandle(): bigint {
    if (this.handle === null) throw new SdcError('KERNEL_CLOSED', 'native kernel device is closed');
    return this.handle;
  }
}
