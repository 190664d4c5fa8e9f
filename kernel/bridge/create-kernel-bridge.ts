/**
 * Chooses the kernel backend from configuration: 'mock', 'native', 'windows' or 'auto'.
 * 'auto' takes the native library; 'native' and 'auto' without a library that opens are refused
 * (KERNEL_LIBRARY_MISSING or KERNEL_OPEN_FAILED), never answered by the mock: the mock is a
 * simulation (it locks and installs nothing) and runs only when asked for by name.
 * A new mock kernel, or a native sandbox never provisioned, refuses privileged opcodes until
 * `bridge.provisionCommandKeys` has run (agent/enrollment.ts provisionKernelCommandKeys).
 */
import { SdcError } from '../../core/errors/index.js';
import type { Clock, Ed25519Provider, RandomSource, Scheduler } from '../../core/ports/ports.js';
import { readKeyFile, type KernelKeyPaths } from '../keys.js';
import type { IoctlDevice } from '../device.js';
import type { KernelFault } from '../mock/faults.js';
import { MockIoctlDevice, type ArtifactSource } from '../mock/mock-kernel.js';
import { sampleProcesses } from '../mock/mock-target.js';
import { nativeArtifacts } from '../native/build.js';
import { NativeIoctlDevice } from '../native/native-device.js';
import { IoctlKernelBridge, type KernelBridge, type KernelCallLogger } from './kernel-bridge.js';
import { WindowsIoctlDevice } from './windows-device.js';

export type KernelBackendChoice = 'mock' | 'native' | 'windows' | 'auto';

export interface KernelBridgeConfig {
  backend: KernelBackendChoice;
  ed25519: Ed25519Provider;
  clock: Clock;
  /** Provisioned key files (kernel/keys.ts provisionKernelKeys). */
  keys: KernelKeyPaths;
  /** Native: the library (default kernel/native/build/release/libsdc_kernel.so) and the sandbox directory. */
  native?: { libraryPath?: string; sandboxDir: string; lockScreen?: boolean };
  /** Windows: the driver's device path. The driver holds the service key; keys.servicePublicKeyPath names its public half. */
  windows?: { devicePath: string };
  /** Mock: artifacts it can stage and the faults to inject. */
  mock?: { artifacts?: ArtifactSource; faults?: readonly KernelFault[]; random?: RandomSource; lockScreenSupported?: boolean };
  scheduler?: Scheduler;
  timeoutMs?: number;
  /** One line per kernel call, with the command's trace id when it has one (IoctlKernelBridgeOptions.logger). */
  logger?: KernelCallLogger;
}

export interface KernelBridgeChoice {
  bridge: KernelBridge;
}

export function createKernelBridge(config: KernelBridgeConfig): KernelBridgeChoice {
  const agentSeed = readKeyFile(config.keys.agentSeedPath);
  const servicePublicKey = readKeyFile(config.keys.servicePublicKeyPath);
  let device: IoctlDevice;
  if (config.backend === 'windows') {
    if (!config.windows) throw new SdcError('KERNEL_BAD_ARGUMENT', "backend 'windows' needs windows.devicePath");
    device = new WindowsIoctlDevice(config.windows);
  } else if (config.backend === 'mock') {
    device = mockDevice(config);
  } else {
    if (!config.native) throw new SdcError('KERNEL_BAD_ARGUMENT', 'native.sandboxDir is not configured');
    device = new NativeIoctlDevice({
      libraryPath: config.native.libraryPath ?? nativeArtifacts('release').libraryPath,
      sandboxDir: config.native.sandboxDir,
      agentPublicKeyPath: config.keys.agentPublicKeyPath,
      serviceSeedPath: config.keys.serviceSeedPath,
      lockScreen: config.native.lockScreen,
    });
  }
  const bridge = new IoctlKernelBridge({
    device, ed25519: config.ed25519, agentSeed, servicePublicKey,
    // Wall-clock microseconds: a restarted agent starts above every counter it sent before.
    counterStart: BigInt(Math.max(1, Math.floor(config.clock.nowMs()))) * 1000n,
    scheduler: config.scheduler, timeoutMs: config.timeoutMs, ...(config.logger === undefined ? {} : { logger: config.logger }),
  });
  return { bridge };
}

function mockDevice(config: KernelBridgeConfig): MockIoctlDevice {
  return new MockIoctlDevice({
    ed25519: config.ed25519,
    serviceSeed: readKeyFile(config.keys.serviceSeedPath),
    agentPublicKey: readKeyFile(config.keys.agentPublicKeyPath),
    clock: config.clock,
    processes: () => sampleProcesses,
    artifacts: config.mock?.artifacts,
    faults: config.mock?.faults,
    random: config.mock?.random,
    lockScreenSupported: config.mock?.lockScreenSupported,
    scheduler: config.scheduler,
  });
}
