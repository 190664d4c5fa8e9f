/** Builds a native kernel target (temp sandbox, key files) for the contract suite and the bench. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import type { KernelTarget } from '../kernel-contract-suite.js';
import { NativeIoctlDevice } from './native-device.js';

export function createNativeTarget(options: { libraryPath: string; agentSeed: Uint8Array; serviceSeed: Uint8Array }): KernelTarget & { device: NativeIoctlDevice } {
  const ed25519 = createNodeEd25519Provider();
  const root = mkdtempSync(join(tmpdir(), 'sdc-kernel-'));
  const sandboxDir = join(root, 'sandbox');
  const artifactsDir = join(root, 'artifacts');
  const agentPublicKeyPath = join(root, 'agent.pub');
  const serviceSeedPath = join(root, 'service.seed');
  for (const dir of [sandboxDir, artifactsDir]) mkdirSync(dir);
  writeFileSync(agentPublicKeyPath, ed25519.publicKeyFromSeed(options.agentSeed));
  writeFileSync(serviceSeedPath, options.serviceSeed, { mode: 0o600 });
  const device = new NativeIoctlDevice({ libraryPath: options.libraryPath, sandboxDir, agentPublicKeyPath, serviceSeedPath });
  return {
    device,
    ed25519,
    agentSeed: options.agentSeed,
    servicePublicKey: device.servicePublicKey(),
    putArtifact(name, bytes) {
      const path = join(artifactsDir, name);
      writeFileSync(path, bytes);
      return path;
    },
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

