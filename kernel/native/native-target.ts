/** Builds a native kernel target (temp sandbox, key files) for the contract suite and the bench. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import type { KernelTarget } from '../kernel-contract-suite.js';
import { NativeIoctlDevice } from './native-device.js';

export interface NativeTarget extends KernelTarget {
  device: NativeIoctlDevice;
  /** Where the sandbox and key files live, for reopening the same service state. */
  readonly root: string;
  readonly libraryPath: string;
  readonly agentSeed: Uint8Array;
}

export function createNativeTarget(options: { libraryPath: string; agentSeed: Uint8Array; serviceSeed: Uint8Array; root?: string }): NativeTarget {
  const ed25519 = createNodeEd25519Provider();
  const reuse = options.root !== undefined;
  const root = options.root ?? mkdtempSync(join(tmpdir(), 'sdc-kernel-'));
  const sandboxDir = join(root, 'sandbox');
  const artifactsDir = join(root, 'artifacts');
  const agentPublicKeyPath = join(root, 'agent.pub');
  const serviceSeedPath = join(root, 'service.seed');
  if (!reuse) for (const dir of [sandboxDir, artifactsDir]) mkdirSync(dir);
  writeFileSync(agentPublicKeyPath, ed25519.publicKeyFromSeed(options.agentSeed));
  writeFileSync(serviceSeedPath, options.serviceSeed, { mode: 0o600 });
  const device = new NativeIoctlDevice({ libraryPath: options.libraryPath, sandboxDir, agentPublicKeyPath, serviceSeedPath });
  return {
    device,
    root,
    libraryPath: options.libraryPath,
    ed25519,
    agentSeed: options.agentSeed,
    servicePublicKey: device.servicePublicKey(),
    putArtifact(name, bytes) {
      const path = join(artifactsDir, name);
      writeFileSync(path, bytes);
      return path;
    },
    // The library's watchdog runs on CLOCK_MONOTONIC: real waiting, plus a margin for timer granularity.
    elapse: (ms) => new Promise((resolve) => setTimeout(resolve, ms + 50)),
    virtualTime: false,
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}


/** A new service instance on the same sandbox and keys (the state a restarted service restores). */
export function reopenNativeTarget(target: NativeTarget): NativeTarget {
  const serviceSeed = readFileSync(join(target.root, 'service.seed'));
  return createNativeTarget({ libraryPath: target.libraryPath, agentSeed: target.agentSeed, serviceSeed, root: target.root });
}
