/**
 * The DeviceIoControl shape every backend implements: an IOCTL code, an input buffer and an
 * output capacity in, a status and the bytes returned out. The contract suite and the bridge
 * only see this interface, so mock, native and Windows backends are interchangeable.
 */
export interface IoctlResult {
  /** The call's return status (KernelStatus); equals the response header's status when a response was written. */
  status: number;
  /** The bytes returned (length <= outLen); empty when nothing was written. */
  output: Uint8Array;
}

export type IoctlBackendKind = 'mock' | 'native' | 'windows';

export interface IoctlDevice {
  readonly kind: IoctlBackendKind;
  /** `signal` lets the caller give up on a call that hangs (honoured by the mock's fault layer). */
  call(code: number, input: Uint8Array, outLen: number, signal?: AbortSignal): Promise<IoctlResult>;
  close(): void;
}
