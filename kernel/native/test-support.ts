// Set-up shared by the native kernel's tests: the library built once per test file (or a skip
// reason where it cannot be built), signed STAGE authorizations and a provisioned target.
import { createHash } from 'node:crypto';
import type { Scheduler } from '../../core/ports/ports.js';
import { signCommand } from '../../core/protocol/signed-command.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { systemScheduler } from '../../runtime/system.js';
import { IoctlKernelBridge } from '../bridge/kernel-bridge.js';
import type { CommandAuthorization } from '../command/attachment.js';
import { commandAuthorization } from '../command/authorization.js';
import type { IoctlDevice } from '../device.js';
import { buildNativeLibrary } from './build.js';
import { createNativeTarget, type NativeTarget } from './native-target.js';

export const ed25519 = createNodeEd25519Provider();

/**
 * The release library, built on demand into kernel/native/build/release (gitignored). CI installs
 * cmake, gcc and libssl-dev (.ci/run), so there the build must succeed; the skip reason is only
 * for machines without them.
 */
export function releaseLibraryForTests(): { libraryPath: string; skip: string | undefined } {
  try {
    return { libraryPath: buildNativeLibrary({ variant: 'release' }).libraryPath, skip: undefined };
  } catch (error) {
    if (process.env.CI) throw error;
    return { libraryPath: '', skip: `native library cannot be built here: ${(error as Error).message}` };
  }
}

export const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());

/** Signs EXEC_STAGE_UPDATE commands for one device, numbered from 1 (ids `<idPrefix><seq>`). */
export function stageAuthorizer(options: { idPrefix: string; deviceId: string; cpSeed: Uint8Array }): (version: string, digest: Uint8Array, length: number) => CommandAuthorization {
  let seq = 1;
  return (version, digest, length) => commandAuthorization(signCommand({
    command: {
      id: `${options.idPrefix}${seq}`, device_id: options.deviceId, opcode: 'EXEC_STAGE_UPDATE', args: { version, sha256: Buffer.from(digest).toString('hex'), size_bytes: length },
      issued_at: Date.now(), expires_at: Date.now() + 86_400_000, device_seq: seq++, issuer: 'test',
    },
    kid: 'cp', seed: options.cpSeed, provider: ed25519,
  } as Parameters<typeof signCommand>[0]));
}

export type BridgeOf = (device: IoctlDevice, options?: { scheduler?: Scheduler; timeoutMs?: number }) => IoctlKernelBridge;

/**
 * A fresh native target whose command keys are provisioned with cpSeed's public key, closed and
 * removed after body. Each bridgeOf call gets its own counter range (1, 1001, ...); timeoutMs
 * defaults to options.timeoutMs on the real scheduler.
 */
export async function withProvisionedTarget(
  options: { libraryPath: string; agentSeed: Uint8Array; serviceSeed: Uint8Array; cpSeed: Uint8Array; deviceId: string; timeoutMs: number },
  body: (target: NativeTarget, bridgeOf: BridgeOf) => Promise<void>,
): Promise<void> {
  const { libraryPath, agentSeed, serviceSeed } = options;
  const target = createNativeTarget({ libraryPath, agentSeed, serviceSeed });
  let counterStart = 1n;
  const bridgeOf: BridgeOf = (device, bridgeOptions = {}) => {
    const bridge = new IoctlKernelBridge({
      device, ed25519, agentSeed, servicePublicKey: target.servicePublicKey, counterStart,
      timeoutMs: bridgeOptions.timeoutMs ?? options.timeoutMs, scheduler: bridgeOptions.scheduler ?? systemScheduler,
    });
    counterStart += 1_000n;
    return bridge;
  };
  try {
    await bridgeOf(target.device).provisionCommandKeys({ deviceId: options.deviceId, keys: [ed25519.publicKeyFromSeed(options.cpSeed)] });
    await body(target, bridgeOf);
  } finally {
    target.device.close();
    target.cleanup();
  }
}
