import { open, rm, mkdir, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { SdcError, isErrorCode } from '../../core/errors/index.js';
import { bytesFromBase64url } from '../../core/crypto/bytes.js';
import type { Ed25519Provider, Scheduler } from '../../core/ports/ports.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import type { OpcodeArgs } from '../../core/protocol/messages/opcodes.js';
import { artifactKeyStatement, sealedLength, sealRecordBytesDefault } from '../../runtime/artifact-seal-node.js';
import { httpsJson } from '../../runtime/https-json.js';
import { uploadEncryptedFile } from './encrypted-upload.js';

/**
 * The device's side of EXEC_COLLECT_ARTIFACT (docs/artifacts.md): it makes the artifact (its
 * logs; a screenshot where the platform has one), asks the control plane for this command's
 * upload grant over TLS with its device certificate, checks that the artifact key in the grant
 * is signed by a command key it pinned, seals the artifact to that key with its device id and
 * the command id bound in, uploads it by the grant's presigned PUT, and returns what the signed
 * command result carries: the artifact id, the sealed length and SHA-256, the plaintext length.
 */
export interface ArtifactSources {
  /** The agent's logs, the newest `bytesMax` at most. */
  logs(bytesMax: number): Promise<Uint8Array>;
  /** A screenshot as PNG; absent where the platform has none (ARTIFACT_KIND_UNSUPPORTED). */
  screenshot?: () => Promise<Uint8Array>;
}

export interface ArtifactCollectorOptions {
  readonly deviceId: string;
  readonly controlPlaneUrl: string;
  readonly caPem: string;
  /** The current device certificate (with its chain) and key: read at each upload, so a renewed one is used. */
  readonly clientCert: () => { certPem: string; keyPem: string };
  readonly resolveCommandKey: (kid: string) => Uint8Array | undefined;
  readonly ed25519: Ed25519Provider;
  readonly sources: ArtifactSources;
  /** Where the plaintext waits (0600) while it is sealed and sent; removed afterwards. */
  readonly workDir: string;
  readonly scheduler: Scheduler;
  /** The device's own limit, whatever the grant allows (default 16 MiB). */
  readonly plaintextBytesMax?: number;
  readonly uploadTimeoutMs?: number;
  /**
   * How the grant is asked for (default: HTTPS to the control plane with the device certificate);
   * tests give their own. `sealedLength` is the exact length of the upload, signed into the PUT.
   */
  readonly fetchGrant?: (commandId: string, sealedLength: number) => Promise<ArtifactGrant>;
}

export const artifactCollectorDefaults = Object.freeze({ plaintextBytesMax: 16 * 1024 * 1024, uploadTimeoutMs: 120_000, grantTimeoutMs: 30_000 });

/** The control plane's answer to POST /v1/devices/{id}/artifact-uploads (the fields the device uses). */
export interface ArtifactGrant {
  artifact_id: string;
  put_url: string;
  plaintext_bytes_max: number;
  /** The sealed length the PUT is signed for (what the device declared). */
  sealed_length: number;
  artifact_key: string;
  artifact_key_kid: string;
  artifact_key_signature: string;
}

const contentTypes = { logs: 'text/plain; charset=utf-8', screenshot: 'image/png' } as const;

export function createArtifactCollector(options: ArtifactCollectorOptions): (command: SignedCommand) => Promise<Record<string, unknown>> {
  const ownMax = options.plaintextBytesMax ?? artifactCollectorDefaults.plaintextBytesMax;
  return async (command) => {
    const { kind } = command.args as OpcodeArgs<'EXEC_COLLECT_ARTIFACT'>;
    if (kind === 'screenshot' && options.sources.screenshot === undefined) {
      throw new SdcError('ARTIFACT_KIND_UNSUPPORTED', 'this device has no screen to capture');
    }
    // The artifact is made before the grant: its sealed length (known from the plaintext length
    // alone) is declared in the grant request and signed into the PUT, so the store takes exactly
    // that many bytes. The control plane refuses a length past its limit before claiming the grant.
    const plaintext = kind === 'logs' ? await options.sources.logs(ownMax) : await options.sources.screenshot!();
    if (plaintext.length > ownMax) throw new SdcError('OTA_UPLOAD_TOO_LARGE', `the ${kind} are ${plaintext.length} bytes, more than ${ownMax}`, { bytesMax: ownMax });
    const declared = sealedLength(plaintext.length, sealRecordBytesDefault);
    const grant = await (options.fetchGrant ?? ((id: string, length: number) => requestGrant(options, id, length)))(command.id, declared);
    if (grant.artifact_id !== command.id) throw new SdcError('ARTIFACT_UPLOAD_BINDING', `the grant is for artifact ${grant.artifact_id}, not command ${command.id}`);
    if (grant.sealed_length !== declared) throw new SdcError('OTA_UPLOAD_FAILED', `the grant is for ${grant.sealed_length} sealed bytes, not the ${declared} declared`);
    const recipient = trustedArtifactKey(options, grant);
    const bytesMax = Math.min(ownMax, grant.plaintext_bytes_max);
    if (plaintext.length > bytesMax) throw new SdcError('OTA_UPLOAD_TOO_LARGE', `the ${kind} are ${plaintext.length} bytes, more than ${bytesMax}`, { bytesMax });
    await mkdir(options.workDir, { recursive: true, mode: 0o700 });
    const path = join(options.workDir, `${command.id.replace(/[^A-Za-z0-9_-]/g, '_')}.plain`);
    try {
      await writeFile(path, plaintext, { mode: 0o600 });
      const uploaded = await uploadEncryptedFile({
        path, putUrl: grant.put_url, recipientPublicKey: recipient, binding: { deviceId: options.deviceId, commandId: command.id },
        plaintextBytesMax: bytesMax, totalTimeoutMs: options.uploadTimeoutMs ?? artifactCollectorDefaults.uploadTimeoutMs, scheduler: options.scheduler,
        // The presigned URL is the control plane's own (embedded store) or an S3 endpoint with a public certificate.
        ...(new URL(grant.put_url).origin === new URL(options.controlPlaneUrl).origin ? { caPem: options.caPem } : {}),
      });
      return {
        artifact_id: command.id, kind, content_type: contentTypes[kind], sha256: uploaded.sha256, length: uploaded.length, plaintext_length: uploaded.plaintextLength,
      };
    } finally {
      await rm(path, { force: true });
    }
  };
}

async function requestGrant(options: ArtifactCollectorOptions, commandId: string, sealedBytes: number): Promise<ArtifactGrant> {
  try {
    const answer = await httpsJson<ArtifactGrant>({
      method: 'POST', url: new URL(`/v1/devices/${encodeURIComponent(options.deviceId)}/artifact-uploads`, options.controlPlaneUrl),
      caPem: options.caPem, body: { command_id: commandId, sealed_length: sealedBytes }, timeoutMs: artifactCollectorDefaults.grantTimeoutMs, answerBytesMax: 64 * 1024,
      clientCert: options.clientCert(),
    });
    const grant = answer.body;
    if (typeof grant?.put_url !== 'string' || typeof grant.artifact_key !== 'string' || typeof grant.artifact_key_signature !== 'string'
      || typeof grant.artifact_key_kid !== 'string' || typeof grant.artifact_id !== 'string' || !Number.isSafeInteger(grant.plaintext_bytes_max)
      || !Number.isSafeInteger(grant.sealed_length)) {
      throw new SdcError('OTA_UPLOAD_FAILED', 'the upload grant is malformed');
    }
    return grant;
  } catch (error) {
    // The control plane's refusal keeps its code (ARTIFACT_UPLOAD_REPLAYED, ARTIFACT_UPLOAD_BINDING, ...) in the command result.
    const serverCode = SdcError.is(error) ? error.details.serverCode : undefined;
    if (isErrorCode(serverCode)) throw new SdcError(serverCode, (error as SdcError).message);
    if (SdcError.is(error)) throw error;
    throw new SdcError('OTA_UPLOAD_FAILED', String(error));
  }
}

function trustedArtifactKey(options: ArtifactCollectorOptions, grant: ArtifactGrant): Uint8Array {
  const commandKey = options.resolveCommandKey(grant.artifact_key_kid);
  const key = bytesFromBase64url(grant.artifact_key, { code: 'ARTIFACT_KEY_UNTRUSTED', name: 'artifact_key', length: 32 });
  const signature = bytesFromBase64url(grant.artifact_key_signature, { code: 'ARTIFACT_KEY_UNTRUSTED', name: 'artifact_key_signature', length: 64 });
  if (commandKey === undefined || !options.ed25519.verify(commandKey, artifactKeyStatement(key), signature)) {
    throw new SdcError('ARTIFACT_KEY_UNTRUSTED', `the artifact key is not signed by a pinned command key (kid ${grant.artifact_key_kid})`);
  }
  return key;
}

/** The newest `bytesMax` bytes of each file, in order, each under a header line; missing files are skipped. */
export function fileTailLogs(paths: readonly string[]): ArtifactSources['logs'] {
  return async (bytesMax) => {
    const parts: Buffer[] = [];
    let left = bytesMax;
    for (const path of paths) {
      const header = Buffer.from(`==> ${path.split(/[\\/]/).pop()} <==\n`, 'utf8');
      if (left <= header.length) break;
      let size: number;
      try {
        size = (await stat(path)).size;
      } catch {
        continue;
      }
      const take = Math.min(size, left - header.length);
      const handle = await open(path, 'r');
      try {
        const body = Buffer.alloc(take);
        const { bytesRead } = await handle.read(body, 0, take, size - take);
        parts.push(header, body.subarray(0, bytesRead));
        left -= header.length + bytesRead;
      } finally {
        await handle.close();
      }
    }
    return Buffer.concat(parts);
  };
}

/**
 * The mock kernel's stand-in for a screenshot: a valid PNG (160x100, RGB) drawn from the device
 * id, so tests can check the bytes an operator gets are exactly the device's.
 */
export function simulatedScreenshot(deviceId: string): Uint8Array {
  const width = 160;
  const height = 100;
  let seed = 0;
  for (const char of deviceId) seed = (seed * 31 + char.charCodeAt(0)) >>> 0;
  const rows = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y += 1) {
    const row = y * (width * 3 + 1);
    rows[row] = 0; // filter: none
    for (let x = 0; x < width; x += 1) {
      rows[row + 1 + x * 3] = (x * 255 / width + seed) & 0xff;
      rows[row + 2 + x * 3] = (y * 255 / height + (seed >>> 8)) & 0xff;
      rows[row + 3 + x * 3] = ((x ^ y) + (seed >>> 16)) & 0xff;
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header), pngChunk('IDAT', deflateSync(rows)), pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed));
  return Buffer.concat([length, typed, crc]);
}

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit += 1) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}
