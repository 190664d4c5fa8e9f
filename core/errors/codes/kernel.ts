import { defineErrors } from '../error-spec.js';

/** The agent's kernel bridge and the kernel service boundary (kernel/, kernel/bridge). */
export const kernelErrors = defineErrors({
  KERNEL_REFUSED: { fault: 'remote', status: 502, summary: 'The kernel service answered with a status other than OK (details.status names it)' },
  KERNEL_NOT_SUPPORTED: { fault: 'remote', status: 501, summary: 'The kernel service does not support the operation on this system' },
  KERNEL_RESPONSE_INVALID: { fault: 'remote', status: 502, summary: 'Kernel response is malformed: length, magic, version, opcode, counter or payload layout' },
  KERNEL_RESPONSE_SIGNATURE: { fault: 'remote', status: 502, summary: 'Kernel response signature does not verify under the provisioned service key' },
  KERNEL_TIMEOUT: { fault: 'local', status: 504, summary: 'Kernel call did not complete within its timeout' },
  KERNEL_CANCELLED: { fault: 'local', status: 503, summary: 'Kernel call was cancelled before it completed' },
  KERNEL_CLOSED: { fault: 'local', status: 503, summary: 'The kernel bridge or device handle is closed' },
  KERNEL_BAD_ARGUMENT: { fault: 'local', status: 500, summary: 'A kernel bridge method was called with an argument outside the contract (a bug in the caller)' },
  KERNEL_LIBRARY_MISSING: { fault: 'local', status: 503, summary: 'The native kernel library is not built or cannot be loaded (run npm run kernel:build)' },
  KERNEL_OPEN_FAILED: { fault: 'local', status: 503, summary: 'Opening the kernel service failed (sandbox directory, key files or device)' },
  KERNEL_KEY_FILE: { fault: 'local', status: 500, summary: 'A kernel key file is missing or not exactly 32 raw bytes' },
  KERNEL_BUILD_FAILED: { fault: 'local', status: 500, summary: 'Building the native kernel library failed' },
  KERNEL_QUEUE_FULL: { fault: 'local', status: 503, summary: 'Too many kernel calls are waiting on this bridge' },
  KERNEL_COUNTER_EXHAUSTED: { fault: 'local', status: 500, summary: 'The request counter reached 2^64 - 1; the agent must be re-provisioned' },
});
