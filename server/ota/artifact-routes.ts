import type { TLSSocket } from 'node:tls';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SdcError } from '../../core/errors/index.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import type { ArtifactRecord } from '../../core/ota/artifact-record.js';
import { commandTerminalStates } from '../../core/protocol/command-machine.js';
import type { JsonObject, JsonValue } from '../../core/protocol/json-value.js';
import { DeviceId } from '../../core/protocol/messages/fields.js';
import { artifactKeyStatement, sealedLength } from '../../runtime/artifact-seal-node.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import { verifyDeviceCertificate } from '../../trust/verify-device-certificate.js';
import type { CommandService, CommandView } from '../control-plane/commands.js';
import { actors, type ServiceContext } from '../control-plane/context.js';
import { principalOf } from '../control-plane/http/authentication.js';
import type { RoutesPlugin } from '../control-plane/http/plugin.js';
import type { DeploymentMaterials } from '../materials/materials.js';
import type { BlobStore } from './blob-store.js';
import { ArtifactKeyRing } from './artifact-key-ring.js';
import { checkStoredUpload, openEncryptedUpload, uploadKey, type ArtifactKey } from './encrypted-artifacts.js';

/**
 * Encrypted artifact uploads (issue 10, docs/artifacts.md): an operator sends EXEC_COLLECT_ARTIFACT
 * (the device's logs, or a screenshot); while running it the device asks for an upload grant
 * (`POST /v1/devices/{id}/artifact-uploads`, authenticated by its certificate as the TLS client
 * certificate, like renewal) and gets one presigned PUT bound to its device, that command and
 * the sealed length it declared (signed as Content-Length),
 * with the control plane's artifact key signed by the command key; it seals, uploads, and its
 * signed command result carries the artifact id (the command id), length and SHA-256. An
 * operator's `GET /v1/artifacts/{id}` checks the stored object against that result and the seal
 * against the device and command, and only then answers the plaintext; each download and each
 * refusal is audited.
 */

/**
 * How long a command's result refusal stays claimed (#auditResultRefusalOnce): the result's bus
 * entry is retried for minutes at most (in place, then once idle), and a command lives far less
 * than a day; one small key per refused result.
 */
const resultRefusalClaimTtlMs = 24 * 3_600_000;

export const artifactOpcode = 'EXEC_COLLECT_ARTIFACT';

export const artifactDefaults = Object.freeze({
  /** The largest artifact (plaintext) a device may upload and an operator download: 16 MiB. */
  plaintextBytesMax: 16 * 1024 * 1024,
  /** How long an upload grant's presigned PUT is valid: 5 minutes (the store allows 60 s to 1 h). */
  grantExpirySeconds: 300,
  /** Artifacts listed at most per page. */
  listMax: 200,
  /** Retention: an uploaded artifact older than this is deleted (30 days). */
  retentionAgeMsMax: 30 * 86_400_000,
  /** Retention: past this many stored (sealed) bytes in all, the oldest artifacts are deleted (1 GiB). */
  retentionBytesMax: 1024 * 1024 * 1024,
  /** Artifact commands a retention pass looks at, newest first: bounded work per pass (older ones are left to a later pass once newer ones go). */
  retentionScanMax: 5_000,
  /** How often the control plane's periodic retention pass runs (besides each upload grant): 1 hour. */
  retentionSweepIntervalMs: 3_600_000,
});

/** How long and how much uploaded artifacts are kept (docs/artifacts.md, "Retention and deletion"). */
export interface ArtifactRetention {
  readonly ageMsMax: number;
  readonly bytesMax: number;
}

const sha256Pattern = /^[0-9a-f]{64}$/;

export interface ArtifactServiceOptions {
  readonly context: ServiceContext;
  readonly commands: Pick<CommandService, 'get'>;
  readonly materials: Pick<DeploymentMaterials, 'pki' | 'commandSigner'>;
  /** The key ring of the data directory (rotatable), or one key held in memory. */
  readonly artifactKey: ArtifactKey | ArtifactKeyRing;
  /** The store uploads go to (the control plane's: embedded, presigning under its public base URL, or S3). */
  readonly blobStore: () => BlobStore;
  readonly plaintextBytesMax?: number;
  readonly grantExpirySeconds?: number;
  /** Default artifactDefaults.retentionAgeMsMax and retentionBytesMax. */
  readonly retention?: Partial<ArtifactRetention>;
}

export interface UploadGrant {
  readonly artifact_id: string;
  readonly put_url: string;
  readonly expires_at_ms: number;
  readonly plaintext_bytes_max: number;
  readonly sealed_bytes_max: number;
  /** The sealed length the device declared, signed into put_url as Content-Length. */
  readonly sealed_length: number;
  readonly artifact_key: string;
  /** The artifact key's id (what the sealed header names). */
  readonly artifact_key_id: string;
  readonly artifact_key_kid: string;
  readonly artifact_key_signature: string;
}

export class ArtifactService {
  readonly #o: ArtifactServiceOptions;
  readonly plaintextBytesMax: number;
  readonly #grantExpirySeconds: number;
  /** The command key's signature over the current artifact key, made again when the key changes. */
  #keySignature: { keyId: string; signature: string } | undefined;
  readonly retention: ArtifactRetention;
  readonly keys: ArtifactKeyRing;

  constructor(options: ArtifactServiceOptions) {
    this.#o = options;
    this.keys = options.artifactKey instanceof ArtifactKeyRing ? options.artifactKey : ArtifactKeyRing.inMemory(options.artifactKey);
    this.retention = { ageMsMax: options.retention?.ageMsMax ?? artifactDefaults.retentionAgeMsMax, bytesMax: options.retention?.bytesMax ?? artifactDefaults.retentionBytesMax };
    this.plaintextBytesMax = options.plaintextBytesMax ?? artifactDefaults.plaintextBytesMax;
    this.#grantExpirySeconds = options.grantExpirySeconds ?? artifactDefaults.grantExpirySeconds;
  }

  #signedCurrentKey(): { keyId: string; publicKey: Uint8Array; signature: string } {
    const { keyId, publicKey } = this.keys.current;
    if (this.#keySignature?.keyId !== keyId) {
      this.#keySignature = { keyId, signature: base64urlFromBytes(this.#o.context.ed25519.sign(this.#o.materials.commandSigner.seed, artifactKeyStatement(publicKey))) };
    }
    return { keyId, publicKey, signature: this.#keySignature.signature };
  }

  /**
   * The device behind a TLS client certificate: it must chain to our CA, be valid and not
   * revoked, name `deviceId`, be on record for it, and the device must not be revoked (as renewal checks).
   */
  async authenticateDevice(deviceId: string, certDer: Uint8Array | undefined): Promise<void> {
    if (certDer === undefined) throw new SdcError('API_CLIENT_CERT_REQUIRED', 'an upload grant needs the device certificate as the TLS client certificate');
    const { pki } = this.#o.materials;
    const { db } = this.#o.context;
    const verified = await verifyDeviceCertificate({
      certDer, trustAnchors: [pki.intermediate.certificate, pki.rootCertificate], now: new Date(this.#o.context.clock.nowMs()),
      isRevoked: async (serial) => (await db.query('SELECT serial FROM revocations WHERE serial = ?', [normalizeSerialHex(serial)])).length > 0,
    });
    if (verified.deviceId !== deviceId) throw new SdcError('API_CLIENT_CERT_DEVICE_MISMATCH', `the client certificate is device ${verified.deviceId}'s, not ${deviceId}'s`, { deviceId });
    const [device] = await db.query('SELECT status FROM devices WHERE id = ?', [deviceId]);
    if (device === undefined) throw new SdcError('API_CLIENT_CERT_UNKNOWN', `device ${deviceId} is not enrolled here`, { deviceId });
    if ((device as { status: string }).status === 'revoked') throw new SdcError('API_DEVICE_REVOKED', `device ${deviceId} is revoked`, { deviceId });
    const [onRecord] = await db.query('SELECT serial FROM device_certificates WHERE serial = ? AND device_id = ?', [normalizeSerialHex(verified.serialHex), deviceId]);
    if (onRecord === undefined) throw new SdcError('API_CLIENT_CERT_UNKNOWN', `this certificate was not issued to ${deviceId} by this control plane`, { deviceId });
  }

  /**
   * One presigned PUT for a running EXEC_COLLECT_ARTIFACT command of this device: a second ask
   * for the same command is ARTIFACT_UPLOAD_REPLAYED (claimed once in the kv store, for as long
   * as the command could still run), so a leaked or replayed request gets no second URL.
   */
  async grant(deviceId: string, commandId: string, sealedBytes: number): Promise<UploadGrant> {
    const { context } = this.#o;
    const command = await this.#command(commandId).catch(() => undefined);
    if (command === undefined || command.device_id !== deviceId || command.opcode !== artifactOpcode) {
      await this.#auditRefusal('artifact.upload_refused', actors.device(deviceId), commandId, 'ARTIFACT_UPLOAD_BINDING');
      throw new SdcError('ARTIFACT_UPLOAD_BINDING', `command ${commandId} is not an ${artifactOpcode} command of device ${deviceId}`, { deviceId, commandId });
    }
    const nowMs = context.clock.nowMs();
    if ((commandTerminalStates as readonly string[]).includes(command.state) || command.expires_at_ms <= nowMs) {
      await this.#auditRefusal('artifact.upload_refused', actors.device(deviceId), commandId, 'ARTIFACT_UPLOAD_BINDING');
      throw new SdcError('ARTIFACT_UPLOAD_BINDING', `command ${commandId} is ${command.state}: no upload is granted for it`, { deviceId, commandId, state: command.state });
    }
    // Checked before the claim: a device refused for size has used up nothing and may ask again with a smaller artifact.
    const sealedBytesMax = sealedLength(this.plaintextBytesMax);
    if (!Number.isSafeInteger(sealedBytes) || sealedBytes < sealedLength(0) || sealedBytes > sealedBytesMax) {
      await this.#auditRefusal('artifact.upload_refused', actors.device(deviceId), commandId, 'OTA_UPLOAD_TOO_LARGE');
      throw new SdcError('OTA_UPLOAD_TOO_LARGE', `a sealed upload is ${sealedLength(0)} to ${sealedBytesMax} bytes here, not ${sealedBytes}`, { bytesMax: sealedBytesMax });
    }
    const claimed = await context.kv.set(`sdc:artifact:grant:${commandId}`, String(nowMs), { onlyIfAbsent: true, ttlMs: Math.max(60_000, command.expires_at_ms - nowMs + 3_600_000) });
    if (!claimed) {
      await this.#auditRefusal('artifact.upload_refused', actors.device(deviceId), commandId, 'ARTIFACT_UPLOAD_REPLAYED');
      throw new SdcError('ARTIFACT_UPLOAD_REPLAYED', `an upload was already granted for command ${commandId}`, { commandId });
    }
    // The declared length is signed as Content-Length: the store refuses a body of any other length
    // (S3 and the embedded store: SignatureDoesNotMatch), so the device cannot store more than it asked for.
    const putUrl = await this.#o.blobStore().presign('PUT', uploadKey({ deviceId, commandId }), this.#grantExpirySeconds, { contentLength: sealedBytes });
    // The key files again: another control plane process on this data directory may have rotated.
    await this.keys.refresh();
    const key = this.#signedCurrentKey();
    const grant: UploadGrant = {
      artifact_id: commandId, put_url: putUrl, expires_at_ms: nowMs + this.#grantExpirySeconds * 1000,
      plaintext_bytes_max: this.plaintextBytesMax, sealed_bytes_max: sealedBytesMax, sealed_length: sealedBytes,
      artifact_key: base64urlFromBytes(key.publicKey), artifact_key_id: key.keyId, artifact_key_kid: this.#o.materials.commandSigner.kid, artifact_key_signature: key.signature,
    };
    await context.audit.append({
      kind: 'artifact.upload_granted', actor: actors.device(deviceId), subject: `artifact:${commandId}`,
      payload: { device_id: deviceId, command_id: commandId, kind: String(command.args.kind ?? ''), expires_at_ms: grant.expires_at_ms, plaintext_bytes_max: grant.plaintext_bytes_max, sealed_length: sealedBytes, artifact_key_id: key.keyId },
    });
    // Each new upload is when the store grows: the retention pass runs here (and on demand), so no timer is needed for the byte limit.
    await this.enforceRetention().catch((error: unknown) => context.logger.warn({ err: error }, 'artifact retention pass failed'));
    return grant;
  }

  /**
   * Deletes one uploaded artifact's object from the store; audited `artifact.deleted` with the
   * reason. ARTIFACT_NOT_FOUND when there is no such artifact command or its object is gone
   * already. Downloads of it then answer ARTIFACT_NOT_FOUND.
   */
  async delete(artifactId: string, actor: string, reason: string): Promise<{ id: string; length: number }> {
    const command = await this.#command(artifactId);
    if (command === undefined || command.opcode !== artifactOpcode) throw new SdcError('ARTIFACT_NOT_FOUND', `no artifact ${artifactId}`);
    const key = uploadKey({ deviceId: command.device_id, commandId: command.id });
    const store = this.#o.blobStore();
    const head = await store.head(key);
    if (head === undefined) throw new SdcError('ARTIFACT_NOT_FOUND', `artifact ${artifactId} has no object in the store (never uploaded, or deleted)`);
    await store.delete(key);
    await this.#o.context.audit.append({
      kind: 'artifact.deleted', actor, subject: `artifact:${artifactId}`,
      payload: { device_id: command.device_id, kind: String(command.args.kind ?? ''), length: head.length, reason },
    });
    return { id: artifactId, length: head.length };
  }

  /**
   * The retention pass: of the artifacts still in the store (newest first, at most
   * retentionScanMax commands looked at), deletes those older than `ageMsMax` and, once the
   * newer ones add up to `bytesMax`, every older one. Each deletion is audited by the system
   * with its reason (`retention_age`, `retention_bytes`). Returns what it deleted.
   */
  async enforceRetention(): Promise<Array<{ id: string; length: number; reason: string }>> {
    const { db, clock } = this.#o.context;
    const rows = await db.query<{ id: string; device_id: string; created_at: number }>(
      'SELECT id, device_id, created_at FROM commands WHERE opcode = ? ORDER BY created_at DESC, id DESC LIMIT ?', [artifactOpcode, artifactDefaults.retentionScanMax]);
    const store = this.#o.blobStore();
    const oldestKeptMs = clock.nowMs() - this.retention.ageMsMax;
    const deleted: Array<{ id: string; length: number; reason: string }> = [];
    let keptBytes = 0;
    for (const row of rows) {
      const head = await store.head(uploadKey({ deviceId: row.device_id, commandId: row.id }));
      if (head === undefined) continue;
      const reason = Number(row.created_at) < oldestKeptMs ? 'retention_age' : keptBytes + head.length > this.retention.bytesMax ? 'retention_bytes' : undefined;
      if (reason === undefined) {
        keptBytes += head.length;
        continue;
      }
      const gone = await this.delete(row.id, actors.system, reason).catch((error: unknown) => {
        if (SdcError.is(error, 'ARTIFACT_NOT_FOUND')) return undefined; // deleted meanwhile by someone else
        throw error;
      });
      if (gone !== undefined) deleted.push({ ...gone, reason });
    }
    return deleted;
  }

  /**
   * A device's succeeded EXEC_COLLECT_ARTIFACT result, checked when it arrives (the control
   * plane's result handler asks before recording it; events.ts `resultCheck`): the result must
   * describe its upload, and the stored object must have exactly that length and SHA-256. The
   * refusal is returned (the handler records the command failed with its code) and audited
   * `artifact.result_refused`; other opcodes pass. A store that cannot be reached throws, so the
   * handler's entry is retried, not recorded either way.
   */
  async checkResult(command: { readonly id: string; readonly deviceId: string; readonly opcode: string }, output: Readonly<Record<string, unknown>>): Promise<SdcError | undefined> {
    if (command.opcode !== artifactOpcode) return undefined;
    let refusal: SdcError | undefined;
    try {
      const claimed = uploadClaimOf(command.id, output);
      refusal = await checkStoredUpload({
        store: this.#o.blobStore(), binding: { deviceId: command.deviceId, commandId: command.id },
        expected: claimed, sealedBytesMax: sealedLength(this.plaintextBytesMax),
      });
    } catch (error) {
      if (!SdcError.is(error, 'ARTIFACT_RESULT_INVALID')) throw error;
      refusal = error;
    }
    if (refusal !== undefined) {
      this.#o.context.logger.warn({ commandId: command.id, deviceId: command.deviceId, code: refusal.code, reason: refusal.message }, 'artifact result refused: its upload does not match');
      await this.#auditResultRefusalOnce(command, refusal.code);
    }
    return refusal;
  }

  /**
   * `artifact.result_refused`, once per command: the result's bus entry is handled again when the
   * transition after this check fails (a store error: the consumer retries the entry), and the
   * check then refuses it again. The first refusal claims a key; a claimed key means it was
   * audited, or is being audited by the try in flight. An append that fails gives the key back,
   * so the retry audits it.
   */
  async #auditResultRefusalOnce(command: { readonly id: string; readonly deviceId: string }, code: string): Promise<void> {
    const { kv, audit, logger } = this.#o.context;
    const key = `sdc:artifact:result-refused:${command.id}`;
    if (!(await kv.set(key, code, { onlyIfAbsent: true, ttlMs: resultRefusalClaimTtlMs }))) return;
    try {
      await audit.append({ kind: 'artifact.result_refused', actor: actors.device(command.deviceId), subject: `artifact:${command.id}`, payload: { code } });
    } catch (error) {
      await kv.del(key).catch(() => undefined);
      logger.warn({ err: error, artifactId: command.id }, 'artifact refusal not audited');
    }
  }

  /**
   * The artifact's plaintext for an operator: the command must have succeeded with a result
   * naming this artifact, the stored object must have exactly the length and SHA-256 of that
   * signed result, and its seal must open for this device and command (a tampered object,
   * another command's upload copied over it, a replaced object: all refused). Audited either way.
   */
  async open(artifactId: string, operator: string): Promise<{ record: ArtifactRecord; bytes: Buffer }> {
    const actor = actors.user(operator);
    try {
      const command = await this.#command(artifactId);
      if (command === undefined || command.opcode !== artifactOpcode) throw new SdcError('ARTIFACT_NOT_FOUND', `no artifact ${artifactId}`);
      const record = recordOf(command);
      if (command.state !== 'succeeded' || record.sha256 === null || record.length === null) {
        throw new SdcError('ARTIFACT_NOT_FOUND', `artifact ${artifactId}'s command is ${command.state}, with no upload recorded`, { state: command.state });
      }
      const bytes = await openEncryptedUpload({
        store: this.#o.blobStore(), privateKey: this.keys.resolver(), binding: { deviceId: command.device_id, commandId: command.id },
        expected: { sha256: record.sha256, length: record.length }, plaintextBytesMax: this.plaintextBytesMax,
      }).catch((error: unknown) => {
        // The store holding no object for a succeeded command's result is its own refusal, not the repository's code.
        if (SdcError.is(error, 'OTA_REPOSITORY_NOT_FOUND')) throw new SdcError('ARTIFACT_NOT_FOUND', `artifact ${artifactId} is not in the store`);
        throw error;
      });
      if (record.plaintext_length !== null && bytes.length !== record.plaintext_length) {
        throw new SdcError('OTA_UPLOAD_DIGEST_MISMATCH', `the artifact opened to ${bytes.length} bytes, the result says ${record.plaintext_length}`);
      }
      await this.#o.context.audit.append({
        kind: 'artifact.downloaded', actor, subject: `artifact:${artifactId}`,
        payload: { device_id: command.device_id, kind: record.kind, sha256: record.sha256, length: record.length, plaintext_length: bytes.length },
      });
      return { record, bytes };
    } catch (error) {
      const code = SdcError.is(error) ? error.code : 'INTERNAL';
      if (code !== 'ARTIFACT_NOT_FOUND') await this.#auditRefusal('artifact.download_refused', actor, artifactId, code);
      throw error;
    }
  }

  /**
   * A new artifact key for every later grant; the old one is retired and still opens what was
   * sealed to it. Audited `artifact.key_rotated` with both key ids.
   */
  async rotateKey(actor: string): Promise<{ retired: string; current: string }> {
    const rotated = await this.keys.rotate();
    await this.#o.context.audit.append({ kind: 'artifact.key_rotated', actor, subject: `artifact-key:${rotated.current}`, payload: { retired_key_id: rotated.retired, current_key_id: rotated.current } });
    return rotated;
  }

  /** Forgets a retired artifact key (uploads sealed to it then answer ARTIFACT_KEY_UNKNOWN). Audited `artifact.key_removed`. */
  async removeKey(keyId: string, actor: string): Promise<void> {
    await this.keys.remove(keyId);
    await this.#o.context.audit.append({ kind: 'artifact.key_removed', actor, subject: `artifact-key:${keyId}`, payload: { key_id: keyId } });
  }

  /** EXEC_COLLECT_ARTIFACT commands, newest first, with what their results say about the upload. */
  async list(query: { deviceId?: string; limit?: number }): Promise<ArtifactRecord[]> {
    const limit = Math.min(Math.max(1, query.limit ?? 50), artifactDefaults.listMax);
    const where = ['opcode = ?', ...(query.deviceId === undefined ? [] : ['device_id = ?'])];
    const rows = await this.#o.context.db.query(
      `SELECT id FROM commands WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT ?`,
      [artifactOpcode, ...(query.deviceId === undefined ? [] : [query.deviceId]), limit],
    ) as Array<{ id: string }>;
    const records: ArtifactRecord[] = [];
    for (const row of rows) {
      const command = await this.#command(row.id);
      if (command === undefined) continue;
      try {
        records.push(recordOf(command));
      } catch (error) {
        // A result that describes no upload is listed without one (its download answers ARTIFACT_RESULT_INVALID), not fatal to the list.
        if (!SdcError.is(error, 'ARTIFACT_RESULT_INVALID')) throw error;
        records.push({ id: command.id, device_id: command.device_id, kind: String(command.args.kind ?? ''), state: command.state, created_by: command.created_by, created_at_ms: command.created_at_ms, sha256: null, length: null, plaintext_length: null, content_type: null });
      }
    }
    return records;
  }

  async #command(id: string): Promise<CommandView | undefined> {
    try {
      return await this.#o.commands.get(id);
    } catch (error) {
      if (SdcError.is(error, 'COMMAND_NOT_FOUND')) return undefined;
      throw error;
    }
  }

  async #auditRefusal(kind: string, actor: string, artifactId: string, code: string): Promise<void> {
    await this.#o.context.audit.append({ kind, actor, subject: `artifact:${artifactId}`, payload: { code } }).catch((error: unknown) => {
      this.#o.context.logger.warn({ err: error, artifactId }, 'artifact refusal not audited');
    });
  }
}

function objectOf(value: JsonValue | undefined): JsonObject | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : undefined;
}

/** The artifact an EXEC_COLLECT_ARTIFACT command's signed result describes; a succeeded result that does not is ARTIFACT_RESULT_INVALID. */
export function recordOf(command: CommandView): ArtifactRecord {
  const kind = typeof command.args.kind === 'string' ? command.args.kind : '';
  const base = { id: command.id, device_id: command.device_id, kind, state: command.state, created_by: command.created_by, created_at_ms: command.created_at_ms };
  const empty = { ...base, sha256: null, length: null, plaintext_length: null, content_type: null };
  if (command.state !== 'succeeded') return empty;
  const output = objectOf(objectOf(objectOf(command.result_frame ?? undefined)?.body)?.output);
  const { sha256, length, plaintextLength, contentType } = uploadClaimOf(command.id, output ?? {});
  return { ...base, sha256, length, plaintext_length: plaintextLength, content_type: contentType };
}

/** The upload a succeeded result's output reports; ARTIFACT_RESULT_INVALID when it does not describe one of this command. */
function uploadClaimOf(commandId: string, output: Readonly<Record<string, unknown>>): { sha256: string; length: number; plaintextLength: number; contentType: string | null } {
  const { artifact_id: id, sha256, length, plaintext_length: plaintextLength, content_type: contentType } = output;
  if (id !== commandId || typeof sha256 !== 'string' || !sha256Pattern.test(sha256) || !Number.isSafeInteger(length) || (length as number) < 0
    || !Number.isSafeInteger(plaintextLength) || (plaintextLength as number) < 0) {
    throw new SdcError('ARTIFACT_RESULT_INVALID', `command ${commandId}'s result does not describe its upload (artifact_id, sha256, length, plaintext_length)`, { commandId });
  }
  return { sha256, length: length as number, plaintextLength: plaintextLength as number, contentType: typeof contentType === 'string' ? contentType : null };
}

/** The TLS client certificate of the connection, if any (the API's listener requests one and lets the route judge it). */
function presentedCertificate(request: FastifyRequest): Uint8Array | undefined {
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  const raw = (socket.getPeerCertificate(false) as { raw?: unknown } | null)?.raw;
  return raw instanceof Uint8Array && raw.length > 0 ? new Uint8Array(raw) : undefined;
}

const strict = { additionalProperties: false } as const;
const CommandId = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' });
const GrantBody = Type.Object({
  command_id: CommandId,
  sealed_length: Type.Integer({ minimum: 1, description: 'The exact length of the sealed upload (header, records and tags): signed into put_url as Content-Length' }),
}, strict);
const GrantView = Type.Object({
  artifact_id: Type.String({ description: 'The artifact\'s id: the command\'s id' }),
  put_url: Type.String({ description: 'A presigned PUT (AWS SigV4) for this device and command only' }),
  expires_at_ms: Type.Integer(),
  plaintext_bytes_max: Type.Integer(),
  sealed_bytes_max: Type.Integer(),
  sealed_length: Type.Integer({ description: 'The declared sealed length, signed as the PUT\'s Content-Length: the store refuses any other' }),
  artifact_key: Type.String({ description: 'The control plane\'s X25519 artifact key, raw, base64url' }),
  artifact_key_id: Type.String({ description: 'Its key id: hex of the first 8 bytes of SHA-256 of the raw key, named in the sealed header' }),
  artifact_key_kid: Type.String({ description: 'The command key that signed it' }),
  artifact_key_signature: Type.String({ description: 'Ed25519 by that key over "sdc artifact key v1\\n" || the raw key, base64url' }),
});
const ArtifactView = Type.Object({
  id: Type.String(), device_id: Type.String(), kind: Type.String(), state: Type.String(), created_by: Type.String(), created_at_ms: Type.Integer(),
  sha256: Type.Union([Type.String(), Type.Null()]), length: Type.Union([Type.Integer(), Type.Null()]),
  plaintext_length: Type.Union([Type.Integer(), Type.Null()]), content_type: Type.Union([Type.String(), Type.Null()]),
});
const ListQuery = Type.Object({ device_id: Type.Optional(DeviceId), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: artifactDefaults.listMax })) }, strict);
const Params = Type.Object({ id: CommandId }, strict);
const DeviceParams = Type.Object({ id: DeviceId }, strict);

export const artifactRoutes: RoutesPlugin<{ readonly artifacts: ArtifactService }> = async (app, { artifacts }) => {
  app.post('/v1/devices/:id/artifact-uploads', {
    schema: { params: DeviceParams, body: GrantBody, response: { 201: GrantView } },
    config: { auth: 'public', summary: 'A device asks for the presigned PUT of its running EXEC_COLLECT_ARTIFACT command (the device certificate as TLS client certificate; once per command; the declared sealed length is signed as Content-Length)' },
  }, async (request, reply) => {
    await artifacts.authenticateDevice(request.params.id, presentedCertificate(request));
    const grant = await artifacts.grant(request.params.id, request.body.command_id, request.body.sealed_length);
    return reply.status(201).send(grant);
  });

  app.get('/v1/artifacts', {
    schema: { querystring: ListQuery, response: { 200: Type.Object({ items: Type.Array(ArtifactView) }) } },
    config: { auth: 'viewer', summary: 'Artifacts asked of devices (EXEC_COLLECT_ARTIFACT commands), newest first, with the length and SHA-256 their signed results report' },
  }, async (request) => ({
    items: await artifacts.list({ ...(request.query.device_id === undefined ? {} : { deviceId: request.query.device_id }), ...(request.query.limit === undefined ? {} : { limit: request.query.limit }) }),
  }));

  app.delete('/v1/artifacts/:id', {
    schema: { params: Params, response: { 200: Type.Object({ id: Type.String(), length: Type.Integer() }) } },
    config: { auth: 'operator', summary: 'Delete an uploaded artifact\'s object from the store (audited artifact.deleted); its downloads then answer ARTIFACT_NOT_FOUND' },
  }, async (request) => artifacts.delete(request.params.id, actors.user(principalOf(request).name), 'operator'));

  app.post('/v1/artifacts/retention', {
    schema: { response: { 200: Type.Object({ deleted: Type.Array(Type.Object({ id: Type.String(), length: Type.Integer(), reason: Type.String() })) }) } },
    config: { auth: 'admin', summary: 'Run the artifact retention pass now (age and total bytes; it also runs at each upload grant); each deletion audited' },
  }, async () => ({ deleted: await artifacts.enforceRetention() }));

  const KeyList = Type.Object({ items: Type.Array(Type.Object({ key_id: Type.String(), current: Type.Boolean() })) });
  app.get('/v1/artifacts/keys', {
    schema: { response: { 200: KeyList } },
    config: { auth: 'admin', summary: 'The artifact keys held: the current one (new grants) and the retired ones (they open what was sealed to them)' },
  }, async () => {
    await artifacts.keys.refresh();
    return { items: artifacts.keys.list() };
  });

  app.post('/v1/artifacts/keys/rotate', {
    schema: { response: { 200: Type.Object({ retired: Type.String(), current: Type.String() }) } },
    config: { auth: 'admin', summary: 'Rotate the artifact key: later grants hand out a new key; the old one is retired and still opens its uploads (audited artifact.key_rotated)' },
  }, async (request) => artifacts.rotateKey(actors.user(principalOf(request).name)));

  app.delete('/v1/artifacts/keys/:key_id', {
    schema: { params: Type.Object({ key_id: Type.String({ pattern: '^[0-9a-f]{16}$' }) }, strict), response: { 200: Type.Object({ key_id: Type.String(), removed: Type.Boolean() }) } },
    config: { auth: 'admin', summary: 'Remove a retired artifact key: uploads sealed to it no longer open (ARTIFACT_KEY_UNKNOWN); the current key is ARTIFACT_KEY_IN_USE (audited artifact.key_removed)' },
  }, async (request) => {
    await artifacts.removeKey(request.params.key_id, actors.user(principalOf(request).name));
    return { key_id: request.params.key_id, removed: true };
  });

  app.get('/v1/artifacts/:id', {
    schema: { params: Params },
    config: { auth: 'operator', summary: 'The artifact\'s decrypted bytes (application/octet-stream), after its digest, length and device/command binding are checked; audited' },
  }, async (request, reply) => {
    const { record, bytes } = await artifacts.open(request.params.id, principalOf(request).name);
    return reply
      .header('content-type', 'application/octet-stream')
      .header('content-length', String(bytes.length))
      .header('x-sdc-artifact-kind', record.kind)
      .header('x-sdc-device-id', record.device_id)
      .send(bytes);
  });
};

/**
 * Artifacts in a control plane: the artifact key from the deployment materials (or the data
 * directory when the materials carry none), the service over the control plane's blob store
 * (the one attachOta opens: embedded or S3, its presigned routes registered there), the routes.
 */
export async function attachArtifacts(options: {
  readonly context: ServiceContext;
  readonly app: FastifyInstance;
  readonly dataDir: string;
  readonly materials: DeploymentMaterials;
  readonly commands: Pick<CommandService, 'get'>;
  readonly blobStore: () => BlobStore;
  readonly plaintextBytesMax?: number;
  readonly retention?: Partial<ArtifactRetention>;
}): Promise<ArtifactService> {
  // The ring of the data directory: the current key (the one the materials loaded) and the retired ones.
  const artifactKey = await ArtifactKeyRing.load(options.dataDir);
  const service = new ArtifactService({
    context: options.context, commands: options.commands, materials: options.materials, artifactKey, blobStore: options.blobStore,
    ...(options.plaintextBytesMax === undefined ? {} : { plaintextBytesMax: options.plaintextBytesMax }),
    ...(options.retention === undefined ? {} : { retention: options.retention }),
  });
  options.app.register(artifactRoutes, { artifacts: service });
  return service;
}
