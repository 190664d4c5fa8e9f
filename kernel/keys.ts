/**
 * Kernel key provisioning on disk: raw 32-byte files, mode 0600 for seeds. The agent keeps
 * agent.seed and service.pub; the kernel service is opened with agent.pub and service.seed.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SdcError } from '../core/errors/index.js';
import type { Ed25519Provider, RandomSource } from '../core/ports/ports.js';

export interface KernelKeyPaths {
  agentSeedPath: string;
  agentPublicKeyPath: string;
  serviceSeedPath: string;
  servicePublicKeyPath: string;
}

export function kernelKeyPaths(dir: string): KernelKeyPaths {
  return {
    agentSeedPath: join(dir, 'agent.seed'),
    agentPublicKeyPath: join(dir, 'agent.pub'),
    serviceSeedPath: join(dir, 'service.seed'),
    servicePublicKeyPath: join(dir, 'service.pub'),
  };
}

export function readKeyFile(path: string): Uint8Array {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new SdcError('KERNEL_KEY_FILE', `cannot read key file ${path}: ${(error as Error).message}`);
  }
  if (bytes.length !== 32) throw new SdcError('KERNEL_KEY_FILE', `key file ${path} has ${bytes.length} bytes, expected 32`);
  return new Uint8Array(bytes);
}

/** Creates both key pairs in `dir` unless all four files already exist; returns their paths. */
export function provisionKernelKeys(options: { dir: string; ed25519: Ed25519Provider; random: RandomSource }): KernelKeyPaths {
  const paths = kernelKeyPaths(options.dir);
  if (Object.values(paths).every((p) => existsSync(p))) return paths;
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const agentSeed = options.random.bytes(32);
  const serviceSeed = options.random.bytes(32);
  writeFileSync(paths.agentSeedPath, agentSeed, { mode: 0o600 });
  writeFileSync(paths.serviceSeedPath, serviceSeed, { mode: 0o600 });
  writeFileSync(paths.agentPublicKeyPath, options.ed25519.publicKeyFromSeed(agentSeed), { mode: 0o644 });
  writeFileSync(paths.servicePublicKeyPath, options.ed25519.publicKeyFromSeed(serviceSeed), { mode: 0o644 });
  return paths;
}
