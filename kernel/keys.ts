/**
 * Kernel key provisioning on disk: raw 32-byte files, mode 0600 for seeds. The agent keeps
 * agent.seed and service.pub; the kernel service is opened with agent.pub and service.seed.
 * Each file is written whole or not at all (runtime/atomic-file.ts: a temporary file in the same
 * directory, fsync'd, then renamed; the directory fsync is best effort, since some platforms such as
 * Windows refuse it), so a crash never leaves a short seed that would fail every later start; and the mode
 * is set on the file written, not only when a file is created (writeFileSync's `mode` is ignored
 * for a file that exists, so a seed left by a partial earlier run kept whatever mode it had).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SdcError } from '../core/errors/index.js';
import type { Ed25519Provider, RandomSource } from '../core/ports/ports.js';
import { writeFileAtomicSync } from '../runtime/atomic-file.js';

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

/** The mode of a private seed file and of the key directory: the owner's only. */
export const kernelSeedFileMode = 0o600;
const keyDirMode = 0o700;

/**
 * Creates both key pairs in `dir` unless all four files already exist; returns their paths.
 * When they exist, a seed file (or the directory) that group or others may read is made the
 * owner's only again (a seed written by an older agent, or copied in with a umask's mode): its
 * key is kept, since replacing it would not undo a read that may already have happened.
 */
export function provisionKernelKeys(options: { dir: string; ed25519: Ed25519Provider; random: RandomSource }): KernelKeyPaths {
  const paths = kernelKeyPaths(options.dir);
  if (Object.values(paths).every((p) => existsSync(p))) {
    restrictMode(options.dir, keyDirMode);
    restrictMode(paths.agentSeedPath, kernelSeedFileMode);
    restrictMode(paths.serviceSeedPath, kernelSeedFileMode);
    return paths;
  }
  mkdirSync(options.dir, { recursive: true, mode: keyDirMode });
  restrictMode(options.dir, keyDirMode);
  const agentSeed = options.random.bytes(32);
  const serviceSeed = options.random.bytes(32);
  writeFileAtomicSync(paths.agentSeedPath, agentSeed, { mode: kernelSeedFileMode });
  writeFileAtomicSync(paths.serviceSeedPath, serviceSeed, { mode: kernelSeedFileMode });
  writeFileAtomicSync(paths.agentPublicKeyPath, options.ed25519.publicKeyFromSeed(agentSeed), { mode: 0o644 });
  writeFileAtomicSync(paths.servicePublicKeyPath, options.ed25519.publicKeyFromSeed(serviceSeed), { mode: 0o644 });
  return paths;
}

/** Clears the bits of `path`'s mode beyond `mode` (never adds any). */
function restrictMode(path: string, mode: number): void {
  const current = statSync(path).mode & 0o777;
  if ((current & ~mode) !== 0) chmodSync(path, current & mode);
}
