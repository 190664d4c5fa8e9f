import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { release, type } from 'node:os';
import { canonicalize } from '../core/protocol/canonical-json.js';
import type { JsonValue } from '../core/protocol/json-value.js';
import type { DevicePosture, KernelAttestationStatus } from '../core/protocol/messages/posture.js';
import type { KernelBridge } from '../kernel/bridge/kernel-bridge.js';

/**
 * What the real agent reports about itself in AUTH for compliance (core/protocol/messages/posture.ts,
 * docs/compliance.md). Computed once at start: the binary and configuration do not change while
 * the process runs, and a change means a restart, which authenticates again.
 */

/** The agent's own modules hashed as its "binary": the files that decide what a command does. */
const agentModules = ['agent-runtime', 'agent-core', 'opcode-executor', 'command-journal', 'posture'] as const;

/**
 * SHA-256 over the agent's modules as they are on disk next to this one (`.js` when built,
 * `.ts` when run through tsx), each name and length-prefixed so no two file sets hash alike.
 */
export async function agentBinarySha256(moduleUrl: string = import.meta.url): Promise<string> {
  const extension = moduleUrl.endsWith('.ts') ? '.ts' : '.js';
  const hash = createHash('sha256');
  for (const name of agentModules) {
    const bytes = await readFile(new URL(`./${name}${extension}`, moduleUrl));
    hash.update(`${name}${extension}\n${bytes.length}\n`).update(bytes);
  }
  return hash.digest('hex');
}

/** SHA-256 of the configuration's canonical JSON (RFC 8785), so key order never changes it. */
export function configSha256(config: { readonly [key: string]: JsonValue }): string {
  return createHash('sha256').update(canonicalize(config)).digest('hex');
}

/**
 * The kernel's status: it must answer a ping (the bridge checks the answer echoes its nonce). No
 * attestation protocol exists yet (the kernel cannot prove its integrity), so an answer is
 * `unattested`, never `attested`; a refusal or no answer is `failed`.
 */
export async function kernelAttestation(kernel: Pick<KernelBridge, 'pingKernel'>): Promise<KernelAttestationStatus> {
  try {
    await kernel.pingKernel();
    return 'unattested';
  } catch {
    return 'failed';
  }
}

/** `kernel_backend` is the bridge's resolved backend, so a device on the mock kernel says so (docs/compliance.md). */
export async function agentPosture(options: { kernel: Pick<KernelBridge, 'pingKernel' | 'backend'>; config: { readonly [key: string]: JsonValue } }): Promise<DevicePosture> {
  return {
    os_version: `${type()} ${release()}`.slice(0, 128),
    binary_sha256: await agentBinarySha256(),
    config_sha256: configSha256(options.config),
    kernel_attestation: await kernelAttestation(options.kernel),
    kernel_backend: options.kernel.backend,
  };
}
