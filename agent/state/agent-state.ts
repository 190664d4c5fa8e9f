import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import { bytesFromBase64url } from '../../core/crypto/bytes.js';
import { pemFromPrivateSeed, privateSeedFromPem } from '../../runtime/ed25519-node.js';
import type { RandomSource } from '../../core/ports/ports.js';
import { ensurePrivateDirectory, fileExists, privateFileMode, writeFileAtomic } from '../../runtime/atomic-file.js';
import { isDeviceId } from '../../core/protocol/device-id.js';

/** The files of an agent directory A (see docs/agent.md). */
export interface AgentPaths {
  dir: string;
  deviceKey: string;
  deviceCert: string;
  chain: string;
  trust: string;
  journal: string;
  kernelKeysDir: string;
}

export function agentPaths(dir: string): AgentPaths {
  return {
    dir,
    deviceKey: join(dir, 'device.key'),
    deviceCert: join(dir, 'device.pem'),
    chain: join(dir, 'chain.pem'),
    trust: join(dir, 'trust.json'),
    journal: join(dir, 'journal.jsonl'),
    kernelKeysDir: join(dir, 'kernel'),
  };
}

/** A public key pinned at enrollment, named by the kid that signatures carry. */
export interface PinnedKey {
  kid: string;
  /** Raw 32-byte Ed25519 public key, base64url. */
  public_key: string;
}

/** trust.json: everything the agent trusts, fixed at enrollment (and refreshed by renewal). */
export interface TrustConfig {
  version: 1;
  device_id: string;
  control_plane_url: string;
  gateway_urls: string[];
  /** The CA certificates (PEM) the agent trusts for HTTPS and WSS. */
  ca_pem: string;
  command_keys: PinnedKey[];
  gateway_keys: PinnedKey[];
  /**
   * The kernel rotation to `command_keys`, signed by each command key the control plane held when
   * it answered (core/protocol/kernel-key-rotation.ts); absent in files written before rotations
   * were issued. provisionKernelCommandKeys passes them to the kernel.
   */
  kernel_key_rotations?: Array<{ kid: string; signature: string }>;
}

const textFileBytesMax = 256 * 1024;
const pinnedKeysMax = 16;
const gatewayUrlsMax = 16;

export async function readTextFile(path: string): Promise<string> {
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    throw new SdcError('AGENT_STATE_INVALID', `${path} cannot be read`, {}, { cause: error });
  }
  if (info.size > textFileBytesMax) throw new SdcError('AGENT_STATE_INVALID', `${path} is larger than ${textFileBytesMax} bytes`);
  return readFile(path, 'utf8');
}

/** Writes one agent file atomically (temp + fsync + rename), 0600, in a 0700 directory. */
export async function writeAgentFile(paths: AgentPaths, path: string, data: string): Promise<void> {
  await ensurePrivateDirectory(paths.dir);
  await writeFileAtomic(path, data, { mode: privateFileMode });
}

/**
 * The device's Ed25519 seed: read from device.key, or made from `random` and written (PKCS#8
 * PEM, 0600) on first run. A key file others can read is refused: it may have leaked.
 */
export async function loadOrCreateDeviceKey(paths: AgentPaths, random: RandomSource): Promise<{ seed: Uint8Array; created: boolean }> {
  if (await fileExists(paths.deviceKey)) return { seed: await readDeviceKey(paths), created: false };
  const seed = random.bytes(32);
  await writeAgentFile(paths, paths.deviceKey, pemFromPrivateSeed(seed));
  return { seed, created: true };
}

export async function readDeviceKey(paths: AgentPaths): Promise<Uint8Array> {
  const info = await stat(paths.deviceKey).catch((error: unknown) => {
    throw new SdcError('AGENT_STATE_INVALID', `${paths.deviceKey} cannot be read`, {}, { cause: error });
  });
  if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
    throw new SdcError('AGENT_STATE_INVALID', `${paths.deviceKey} has mode ${(info.mode & 0o777).toString(8)}; run chmod 600 on it`);
  }
  try {
    return privateSeedFromPem(await readTextFile(paths.deviceKey));
  } catch (error) {
    throw new SdcError('AGENT_STATE_INVALID', `${paths.deviceKey} is not an Ed25519 PKCS#8 key`, {}, { cause: error });
  }
}

export async function readTrustConfig(paths: AgentPaths): Promise<TrustConfig> {
  const text = await readTextFile(paths.trust);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SdcError('AGENT_STATE_INVALID', `${paths.trust} is not JSON`, {}, { cause: error });
  }
  return parseTrustConfig(value, paths.trust);
}

export async function writeTrustConfig(paths: AgentPaths, trust: TrustConfig): Promise<void> {
  parseTrustConfig(trust, 'trust config');
  await writeAgentFile(paths, paths.trust, JSON.stringify(trust, null, 2) + '\n');
}

/** Checks every field, so a damaged trust.json stops the agent instead of weakening it. */
export function parseTrustConfig(value: unknown, source: string): TrustConfig {
  const fail = (what: string): never => {
    throw new SdcError('AGENT_STATE_INVALID', `${source}: ${what}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('not an object');
  const v = value as Record<string, unknown>;
  if (v.version !== 1) fail('version must be 1');
  if (typeof v.device_id !== 'string' || !isDeviceId(v.device_id)) fail('device_id is not a device id');
  if (typeof v.control_plane_url !== 'string' || !isUrl(v.control_plane_url, ['https:'])) fail('control_plane_url must be an https URL');
  if (!Array.isArray(v.gateway_urls) || v.gateway_urls.length === 0 || v.gateway_urls.length > gatewayUrlsMax
    || !v.gateway_urls.every((u) => typeof u === 'string' && isUrl(u, ['wss:']))) {
    fail(`gateway_urls must be 1 to ${gatewayUrlsMax} wss URLs`);
  }
  if (typeof v.ca_pem !== 'string' || !v.ca_pem.includes('-----BEGIN CERTIFICATE-----')) fail('ca_pem must hold PEM certificates');
  const command_keys = parsePinnedKeys(v.command_keys, 'command_keys', fail);
  const gateway_keys = parsePinnedKeys(v.gateway_keys, 'gateway_keys', fail);
  const rotations = v.kernel_key_rotations === undefined ? undefined : parseKernelKeyRotations(v.kernel_key_rotations, fail);
  return {
    version: 1, device_id: v.device_id as string, control_plane_url: v.control_plane_url as string,
    gateway_urls: [...(v.gateway_urls as string[])], ca_pem: v.ca_pem as string, command_keys, gateway_keys,
    ...(rotations === undefined ? {} : { kernel_key_rotations: rotations }),
  };
}

function parseKernelKeyRotations(value: unknown, fail: (what: string) => never): Array<{ kid: string; signature: string }> {
  if (!Array.isArray(value) || value.length > pinnedKeysMax) fail(`kernel_key_rotations must list at most ${pinnedKeysMax} signatures`);
  return (value as unknown[]).map((item) => {
    const rotation = item as Record<string, unknown>;
    if (typeof rotation?.kid !== 'string' || rotation.kid.length === 0 || rotation.kid.length > 128) fail('kernel_key_rotations: a kid is missing or too long');
    if (typeof rotation.signature !== 'string') fail(`kernel_key_rotations: ${String(rotation.kid)} has no signature`);
    try {
      bytesFromBase64url(rotation.signature as string, { code: 'CRYPTO_BAD_SIGNATURE_ENCODING', name: 'signature', length: 64 });
    } catch {
      fail(`kernel_key_rotations: ${String(rotation.kid)} signature is not 64 bytes of base64url`);
    }
    return { kid: rotation.kid as string, signature: rotation.signature as string };
  });
}

function parsePinnedKeys(value: unknown, name: string, fail: (what: string) => never): PinnedKey[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > pinnedKeysMax) fail(`${name} must list 1 to ${pinnedKeysMax} keys`);
  return (value as unknown[]).map((item) => {
    const key = item as Record<string, unknown>;
    if (typeof key?.kid !== 'string' || key.kid.length === 0 || key.kid.length > 128) fail(`${name}: a kid is missing or too long`);
    if (typeof key.public_key !== 'string') fail(`${name}: ${String(key.kid)} has no public_key`);
    try {
      bytesFromBase64url(key.public_key as string, { code: 'CRYPTO_BAD_KEY', name: 'public_key', length: 32 });
    } catch {
      fail(`${name}: ${String(key.kid)} public_key is not 32 bytes of base64url`);
    }
    return { kid: key.kid as string, public_key: key.public_key as string };
  });
}

function isUrl(text: string, protocols: string[]): boolean {
  try {
    return protocols.includes(new URL(text).protocol);
  } catch {
    return false;
  }
}

/** A kid -> key lookup over pinned keys; unknown kids resolve to undefined (the verifier refuses them). */
export function pinnedKeyResolver(keys: readonly PinnedKey[]): (kid: string) => Uint8Array | undefined {
  const table = new Map(keys.map((k) => [k.kid, bytesFromBase64url(k.public_key, { code: 'CRYPTO_BAD_KEY', name: k.kid, length: 32 })]));
  return (kid) => table.get(kid);
}
