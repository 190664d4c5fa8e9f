import { readFile } from 'node:fs/promises';
import { SdcError } from '../../core/errors/index.js';
import { BoundedLru } from '../../core/crypto/bounded-lru.js';
import { kvKeys, revocationChannel } from '../bus-contract/streams.js';
import { policyBundleChannels } from '../bus-contract/policy-bundle-keys.js';
import { base64urlFromBytes, bytesFromBase64url } from '../../core/crypto/bytes.js';
import type { DeploymentMaterials } from '../materials/materials.js';
import { signKernelKeyRotation, type KernelKeyRotation } from '../../core/protocol/kernel-key-rotation.js';
import { decodeEnvelope, decodeEnvelopeForVerify, envelopeMacAlg, parseSignedEnvelope, verifyDecodedEnvelope, type SignedEnvelope } from '../../core/protocol/envelope.js';
import type { JsonValue } from '../../core/protocol/json-value.js';
import type { MessageBody, MessageType } from '../../core/protocol/messages/catalog.js';
import { validateMessageBody } from '../../core/protocol/messages/validate.js';
import { deviceKid } from '../../core/protocol/session/gateway-connection.js';
import { sessionMacTypes } from '../../core/protocol/session/session-mac.js';
import { createCrl, type SignedCrl } from '../../trust/crl.js';
import { DeviceCertificateIssuer, type IssuedDeviceCertificate } from '../../trust/device-issuer.js';
import { EnrollmentService } from '../../trust/enrollment.js';
import { createPairingTokens, hashPairingToken, isOutstanding } from '../../trust/pairing-tokens.js';
import { requireRevocationReason, type RevocationReason } from '../../trust/revocation.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import { verifyDeviceCertificate } from '../../trust/verify-device-certificate.js';
import { parseCertificate } from '../../trust/x509-provider.js';
import { writeFileAtomic } from '../../runtime/atomic-file.js';
import { actors, type ServiceContext } from './context.js';
import { decodeCursor, encodeCursor, pageLimit } from './pagination.js';
import { SqlPairingTokenStore } from './stores/sql-pairing-token-store.js';
import { SqlRevocationStore } from './stores/sql-revocation-store.js';
import { SqlCrlStore, type StoredCrl } from './stores/sql-crl-store.js';
import type { SqlExecutor } from '../stores/sql/sql-port.js';
import { TrustPublisher, type TrustPublishCounts } from './trust-publisher.js';
import { DeviceKeyCache, deviceKeyCacheLimits, type DeviceKeyReadMark, type DeviceKeyRecord } from './device-key-cache.js';
import { Batched } from './batched-reads.js';
import { CommandFinishedWrites } from './command-finished-writes.js';
import { deviceTagLimits, deviceTagPattern, isDeviceTag } from '../../core/protocol/device-tags.js';

export interface DeviceView {
  readonly id: string;
  readonly status: string;
  readonly created_at_ms: number;
  readonly last_seen_at_ms: number | null;
  readonly gateway_id: string | null;
  readonly online: boolean;
  readonly cert_serial: string | null;
  readonly cert_not_after_ms: number | null;
  readonly last_command_seq: number | null;
  /** The device clock minus the gateway's, measured at its last AUTH (docs/protocol.md, Clocks); null before one. */
  readonly clock_offset_ms: number | null;
  /** Its tags, sorted; `group:NAME` tags are its groups (docs/policy.md, "Tags and groups"). */
  readonly tags: readonly string[];
  /** The agent version reported at its last AUTH; null before one. */
  readonly agent_version: string | null;
  /**
   * The risk score of its newest telemetry sample (core/protocol/risk-score.ts, 0..100; the
   * fact policy rules see as `riskScore`) and that sample's time; null before any telemetry.
   */
  readonly risk_score: number | null;
  readonly risk_scored_at_ms: number | null;
}

interface DeviceRow {
  id: string; status: string; created_at: number; last_seen_at: number | null; cert_serial: string | null;
  cert_not_after: number | null; public_key: string | null; last_command_seq: number | null; gateway_id: string | null;
  clock_offset_ms: number | null; agent_version?: string | null;
}

export interface EnrollmentAnswer {
  readonly certificate_pem: string;
  readonly chain_pems: readonly string[];
  readonly command_keys: ReadonlyArray<{ kid: string; public_key: string }>;
  readonly gateway_keys: ReadonlyArray<{ kid: string; public_key: string }>;
  readonly gateway_urls: readonly string[];
  /**
   * The kernel rotation to `command_keys` for this device, signed by each command key the control
   * plane holds (current and, after a rotation, previous): the agent passes them to
   * PROVISION_COMMAND_KEYS until the kernel takes one (docs/kernel-contract.md, "Provisioning").
   */
  readonly kernel_key_rotations: readonly KernelKeyRotation[];
}

export interface DeviceServiceOptions {
  readonly context: ServiceContext;
  readonly materials: DeploymentMaterials;
  readonly gatewayUrls: readonly string[];
  /** Validity of issued device certificates (default: the trust profile's). */
  readonly certificateValidityMs?: number;
  /** Where each newly signed CRL is written (PEM, world-readable), for gateways to read; none when absent. */
  readonly crlPath?: string;
  /** A CRL's validity, thisUpdate to nextUpdate (default crlNextUpdateMsDefault, 24 h); re-signed with a third of it left. */
  readonly crlValidityMs?: number;
  /**
   * How often the control plane runs republishCrl (default crlRepublishIntervalMsDefault, 60 s):
   * the deployment-wide spacing of the CRLs the passes sign is derived from it (crlSigningSpacingMs).
   */
  readonly crlRepublishIntervalMs?: number;
  /** Outstanding pairing tokens at most (default pairingTokensMaxDefault, trust/pairing-tokens.ts). */
  readonly pairingTokensMax?: number;
  /**
   * Called once a revocation is committed and published: the control plane cancels the device's
   * commands no delivery was reported for (CommandService.cancelForRevokedDevice). A failure is
   * logged, not thrown: the revocation stands, and those commands end by their TTL instead.
   */
  readonly onRevoked?: (revocation: { deviceId: string; actor: string }) => Promise<number>;
}

export interface CreatedPairingTokenView { readonly token: string; readonly device_id: string; readonly expires_at_ms: number }

/** The TLS client certificate a request arrived with (DER), as the HTTPS layer saw it. */
export interface PresentedClientCertificate {
  readonly certDer: Uint8Array;
}

/** How fresh `last_seen_at_ms` is kept from telemetry: at most one write per device per interval, so it lags by less than that. */
export const deviceActivityLimits = Object.freeze({ lastSeenWriteIntervalMs: 5_000, lastSeenCacheEntriesMax: 100_000 });

/** Ids per `IN (...)` lookup when registering a batch of devices: well under every driver's placeholder limit. */
const pendingLookupIdsMax = 500;

/**
 * How long GET /v1/crl serves the stored CRL it last read before reading SQL again (decision 0021,
 * 2026-12-06 h14): a storm of gateway fetches costs one query per replica per 2 s, and a
 * revocation made on another replica is served here at most 2 s after that replica stored its CRL.
 */
export const crlReadCacheMs = 2_000;

/** How often each control plane runs its CRL republish pass unless configured (ControlPlaneOptions.crlRepublishIntervalMs). */
export const crlRepublishIntervalMsDefault = 60_000;

/**
 * How long after the latest stored CRL's thisUpdate a republish pass may sign another for a
 * revocation set that changed (decision 0021, section "h7"): judged on the stored CRL, so the
 * replicas together sign about one CRL per republish interval, as one replica does, not one each.
 * A tenth short of the interval: the replica that signed last comes back one interval later and
 * must still find it due when its previous pass ran a little late (its thisUpdate later than the
 * timer's anchor) or its clock and the signer's disagree by a few seconds; otherwise its changes
 * would wait for the interval after. Two signings are never closer than this.
 */
export function crlSigningSpacingMs(republishIntervalMs: number): number {
  return republishIntervalMs - Math.floor(republishIntervalMs / 10);
}

/** A stored CRL is re-signed once a third of its validity is left (decision 0021: 8 h before nextUpdate at the default 24 h). */
function crlRefreshDue(crl: StoredCrl, nowMs: number): boolean {
  return nowMs >= crl.nextUpdateMs - (crl.nextUpdateMs - crl.thisUpdateMs) / 3;
}

/** Thrown out of the signing transaction (rolled back, the number it took given back) when another replica signed meanwhile. */
class CrlSigningNotElected extends Error {}

/**
 * How often a device may be given a new certificate (review h1, finding 2): every renewal revokes
 * the device's previous certificate, so unbounded renewals grew the CRL without end. An agent
 * renews once in the last third of its certificate's validity and retries a failed renewal at its
 * next check (6 h), so these limits never touch a device that follows the protocol.
 */
export const renewalLimits = Object.freeze({
  /** Certificates issued to one device (enrollment and renewals) per sliding window, at most; beyond, API_RENEWAL_TOO_SOON. */
  windowMs: 24 * 60 * 60_000,
  certificatesPerWindowMax: 6,
});

/** Unexpired certificates kept per device when a new one is issued: the one presented and the new one. */
const superseded = { perIssueMax: 64 } as const;

/** Ed25519 SPKI DER is a fixed 12-byte prefix and the 32-byte key. */
function rawEd25519Key(spki: ArrayBuffer): Uint8Array {
  const bytes = new Uint8Array(spki);
  if (bytes.length !== 44) throw new SdcError('TRUST_CERT_INVALID', 'certificate key is not a 32-byte Ed25519 key');
  return bytes.slice(12);
}

/**
 * A frame from the telemetry stream: the gateway parsed these exact bytes strictly (limits,
 * duplicate names, UTF-8) and authenticated them before forwarding them as received, so V8's
 * JSON.parse and the envelope's shape check suffice here, several times cheaper per sample. A
 * signed frame's signature is still verified by the caller; a MAC'd one is taken on the gateway's word.
 */
function decodeGatewayCheckedFrame(frameText: string): SignedEnvelope {
  let value: JsonValue;
  try {
    value = JSON.parse(frameText) as JsonValue;
  } catch (error) {
    throw new SdcError('PROTO_JSON_SYNTAX', 'frame on the stream is not JSON', {}, { cause: error });
  }
  return parseSignedEnvelope(value);
}

/** A frame as decoded for its check here, with the signed bytes when they could be taken from its text. */
interface DecodedDeviceFrame {
  readonly envelope: SignedEnvelope;
  readonly signingInput: Uint8Array | undefined;
}

/**
 * A forwarded frame the gateway did not vouch for (a command's ACK or RESULT, an alert, a report):
 * parsed strictly here too, and its signing input taken from the text as received when the text is
 * canonical (every agent writes it so), so the check below does not write the signed fields out
 * again (issue 17: a canonicalisation of the fields, the body included, and a second shape check
 * per ACK and RESULT, 3 a command). Same parse, same limits and refusals as decodeEnvelope; a text
 * with a lone surrogate (no UTF-8 form; String.prototype.isWellFormed, Node 20, not in the ES2023
 * library types) takes decodeEnvelope, which refuses it as before.
 */
function decodeDeviceFrame(frameText: string): DecodedDeviceFrame {
  if (!(frameText as unknown as { isWellFormed(): boolean }).isWellFormed()) return { envelope: decodeEnvelope(frameText), signingInput: undefined };
  const { envelope, signingInput } = decodeEnvelopeForVerify(Buffer.from(frameText, 'utf8'));
  return { envelope, signingInput };
}

/** A telemetry entry's frame after DeviceService.telemetryFrame's checks: one sample, or a batch of them. */
export type TelemetryFrame =
  | { envelope: SignedEnvelope; type: 'TELEMETRY'; body: MessageBody<'TELEMETRY'> }
  | { envelope: SignedEnvelope; type: 'TELEMETRY_BATCH'; body: MessageBody<'TELEMETRY_BATCH'> };

/** The frame is of `type` and from `deviceId` (the entry's device): PROTO_SCHEMA_INVALID or COMMAND_DEVICE_MISMATCH otherwise. */
function checkFrameAddress(envelope: SignedEnvelope, deviceId: string, type: MessageType): void {
  if (envelope.type !== type) throw new SdcError('PROTO_SCHEMA_INVALID', `frame is ${envelope.type}, expected ${type}`);
  if (envelope.device_id !== deviceId) throw new SdcError('COMMAND_DEVICE_MISMATCH', `frame is from ${envelope.device_id}, entry names ${deviceId}`);
}

/**
 * Devices: registry, pairing tokens, enrollment, revocation and the CRL. The device's public key
 * is stored at enrollment, so frames forwarded by a gateway (results, telemetry) are verified
 * again here against the key the device enrolled with, not one a gateway asserts.
 */
/** Devices per batched key read (one placeholder each). */
const deviceKeyReadsPerQueryMax = 128;

export class DeviceService {
  readonly #ctx: ServiceContext;
  /** verifyDeviceFrame's key and status per device, dropped at every enroll, renew and revoke here. */
  readonly #deviceKeys: DeviceKeyCache;
  /** The cache's row reads, batched across devices (#readDeviceKeys). */
  readonly #deviceKeyReads: Batched<string, DeviceKeyRecord>;
  /** The last last_seen_at this process wrote per device (bounded): lets recordSeen skip writes that would match nothing. */
  readonly #lastSeenWritten = new BoundedLru<string, number>(deviceActivityLimits.lastSeenCacheEntriesMax);
  readonly #finishedWrites: CommandFinishedWrites;
  readonly #options: DeviceServiceOptions;
  readonly #tokens: SqlPairingTokenStore;
  readonly revocations: SqlRevocationStore;
  readonly #enrollment: EnrollmentService;
  readonly #issuer: DeviceCertificateIssuer;
  /** The key/value copy of who is enrolled with which certificate and what is revoked, which gateways admit by. */
  readonly trust: TrustPublisher;
  #tokenCreator = 'system';
  readonly #crls: SqlCrlStore;
  /** The highest valid stored CRL as last read (or signed here), and when: GET /v1/crl reads SQL at most once per crlReadCacheMs. */
  #served: { crl: StoredCrl | undefined; readAtMs: number } | undefined;
  /** The read of the stored CRL in flight, shared by the requests that arrive meanwhile (a fetch storm makes one query). */
  #servedRead: Promise<StoredCrl | undefined> | undefined;
  /** The signing in flight when no stored CRL is valid, shared likewise (one signature per replica, not one per request). */
  #signing: Promise<SignedCrl> | undefined;
  /** The republish pass's elected signing in flight (the pass at start and a timer's pass share it). */
  #electedSigning: Promise<void> | undefined;
  #unsubscribeRevocations: (() => Promise<void>) | undefined;

  constructor(options: DeviceServiceOptions) {
    this.#ctx = options.context;
    this.#deviceKeys = new DeviceKeyCache(options.context.clock, (deviceId) => this.#loadDeviceKey(deviceId));
    this.#deviceKeyReads = new Batched({ run: (deviceIds) => this.#readDeviceKeys(deviceIds), keysPerBatchMax: deviceKeyReadsPerQueryMax });
    this.#finishedWrites = new CommandFinishedWrites(options.context.db);
    this.#options = options;
    this.#tokens = new SqlPairingTokenStore(options.context.db, {
      createdBy: () => this.#tokenCreator,
      ...(options.pairingTokensMax === undefined ? {} : { recordsMax: options.pairingTokensMax }),
      // The token and its audit entry commit together.
      onCreated: (tx, record) => this.#ctx.audit.record(tx, {
        kind: 'pairing.token_created', actor: actors.user(this.#tokenCreator), subject: `device:${record.deviceId}`,
        payload: { expires_at_ms: record.expiresAtMs },
      }),
    });
    this.revocations = new SqlRevocationStore(options.context.db, { clock: options.context.clock });
    this.#crls = new SqlCrlStore(options.context.db, {
      issuer: options.materials.pki.intermediate.certificate,
      onSkipped: (crlNumber, error) => options.context.logger.error({ err: error, code: SdcError.is(error) ? error.code : undefined, crlNumber },
        'a stored CRL is not one our intermediate signed with its number; skipped, the next one below is served'),
    });
    this.trust = new TrustPublisher(options.context);
    const issuer = new DeviceCertificateIssuer({
      intermediate: options.materials.pki.intermediate, rootCertificate: options.materials.pki.rootCertificate,
      random: options.context.random, isRevoked: (serial) => this.revocations.isRevoked(serial),
    });
    this.#issuer = issuer;
    this.#enrollment = new EnrollmentService({ tokens: this.#tokens, issuer, validityMs: options.certificateValidityMs });
  }

  /** A page of devices by id; with `tag`, only the devices carrying it (an index lookup in device_tags). */
  async list(query: { limit?: number; cursor?: string; tag?: string }): Promise<{ items: DeviceView[]; next_cursor: string | null }> {
    const limit = pageLimit(query.limit);
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)[1];
    const where: string[] = [];
    const params: Array<string | number> = [];
    if (query.tag !== undefined) {
      where.push('id IN (SELECT device_id FROM device_tags WHERE tag = ?)');
      params.push(query.tag);
    }
    if (after !== undefined) {
      where.push('id > ?');
      params.push(after);
    }
    const rows = await this.#ctx.db.query<DeviceRow>(
      `SELECT * FROM devices ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`} ORDER BY id ASC LIMIT ?`, [...params, limit + 1],
    );
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    const ids = page.map((row) => row.id);
    const [tags, risks] = await Promise.all([this.#tagsOfMany(ids), this.#latestRiskOfMany(ids)]);
    const items = await Promise.all(page.map((row) => this.#view(row, tags.get(row.id) ?? [], risks.get(row.id))));
    return { items, next_cursor: rows.length > limit && last !== undefined ? encodeCursor(['0', last.id]) : null };
  }

  async get(deviceId: string): Promise<DeviceView> {
    const row = await this.#row(deviceId);
    const [tags, risks] = await Promise.all([this.#tagsOfMany([deviceId]), this.#latestRiskOfMany([deviceId])]);
    return this.#view(row, tags.get(deviceId) ?? [], risks.get(deviceId));
  }

  /**
   * The newest telemetry sample's risk score per device for a page of ids: one query per
   * pendingLookupIdsMax ids, each group's MAX(ts) found on the (device_id, ts) index, the same
   * on SQLite and MySQL. Two samples at the same ts: either one (they were scored together).
   */
  async #latestRiskOfMany(deviceIds: readonly string[]): Promise<Map<string, { score: number; atMs: number }>> {
    const byDevice = new Map<string, { score: number; atMs: number }>();
    for (let start = 0; start < deviceIds.length; start += pendingLookupIdsMax) {
      const chunk = deviceIds.slice(start, start + pendingLookupIdsMax);
      const rows = await this.#ctx.db.query<{ device_id: string; risk_score: number | string | null; ts: number | string }>(
        `SELECT t.device_id, t.risk_score, t.ts FROM telemetry t
           JOIN (SELECT device_id, MAX(ts) AS ts FROM telemetry WHERE device_id IN (${chunk.map(() => '?').join(', ')}) GROUP BY device_id) newest
             ON t.device_id = newest.device_id AND t.ts = newest.ts`, chunk,
      );
      for (const row of rows) {
        const score = row.risk_score === null ? Number.NaN : Number(row.risk_score);
        if (Number.isFinite(score)) byDevice.set(row.device_id, { score, atMs: Number(row.ts) });
      }
    }
    return byDevice;
  }

  /**
   * Replaces the device's tags (PUT semantics: the list is the whole new set), with a
   * `device.tags_set` audit entry naming the tags before and after, in one transaction. The
   * route's schema bounds the count and checks each tag's charset; checked again here because
   * the simulator and tests call the service directly. `guard` sees the tags before and after
   * inside the transaction (the route refuses there an operator's change to a tag the policy
   * selects on, decision 0013), with the transaction, so it can read the policy revision in force
   * as of the commit (review finding 4); a throw rolls the change back. After the commit a fresh policy
   * bundle is asked for (policyBundleChannels.requests), so the device's own check does not keep
   * judging with the old tags until its bundle is next re-signed (days).
   */
  async setTags(options: {
    actor: string; deviceId: string; tags: readonly string[];
    guard?: (previous: readonly string[], next: readonly string[], tx: SqlExecutor) => void | Promise<void>;
  }): Promise<{ device_id: string; tags: string[] }> {
    const { deviceId } = options;
    const tags = [...new Set(options.tags)].sort();
    if (tags.length > deviceTagLimits.tagsPerDeviceMax || !tags.every(isDeviceTag)) {
      throw new SdcError('API_VALIDATION', `tags: at most ${deviceTagLimits.tagsPerDeviceMax}, each matching ${deviceTagPattern}`, { path: 'body/tags' });
    }
    await this.#row(deviceId);
    const changed = await this.#ctx.db.transaction(async (tx) => {
      const before = (await tx.query<{ tag: string }>('SELECT tag FROM device_tags WHERE device_id = ? ORDER BY tag', [deviceId])).map((row) => row.tag);
      await options.guard?.(before, tags, tx);
      await tx.execute('DELETE FROM device_tags WHERE device_id = ?', [deviceId]);
      for (const tag of tags) await tx.execute('INSERT INTO device_tags (device_id, tag) VALUES (?, ?)', [deviceId, tag]);
      await this.#ctx.audit.record(tx, {
        kind: 'device.tags_set', actor: actors.user(options.actor), subject: `device:${deviceId}`, payload: { tags, previous: before },
      });
      return before.length !== tags.length || before.some((tag, index) => tag !== tags[index]);
    });
    await this.#ctx.settleAudit();
    if (changed) await this.#requestPolicyBundle(deviceId);
    return { device_id: deviceId, tags };
  }

  /**
   * Asks the control planes' bundle publishers for a fresh bundle for the device (they sign it,
   * store it and announce it; its gateway sends it if the device is connected, else it is sent
   * at the next AUTH). Pub/sub is at most once, so a lost request only leaves the device on its
   * older bundle until the gateway's half-life re-sign: logged, never a failure of the change.
   */
  async #requestPolicyBundle(deviceId: string): Promise<void> {
    try {
      await this.#ctx.kv.publish(policyBundleChannels.requests, deviceId);
    } catch (error) {
      this.#ctx.logger.warn({ err: error, deviceId }, 'policy bundle re-cut after a tag change not requested');
    }
  }

  /** Tags per device for a page of ids (one query per pendingLookupIdsMax ids). */
  async #tagsOfMany(deviceIds: readonly string[]): Promise<Map<string, string[]>> {
    const byDevice = new Map<string, string[]>();
    for (let start = 0; start < deviceIds.length; start += pendingLookupIdsMax) {
      const chunk = deviceIds.slice(start, start + pendingLookupIdsMax);
      const rows = await this.#ctx.db.query<{ device_id: string; tag: string }>(
        `SELECT device_id, tag FROM device_tags WHERE device_id IN (${chunk.map(() => '?').join(', ')}) ORDER BY device_id, tag`, chunk,
      );
      for (const row of rows) byDevice.set(row.device_id, [...(byDevice.get(row.device_id) ?? []), row.tag]);
    }
    return byDevice;
  }

  async #row(deviceId: string): Promise<DeviceRow> {
    const [row] = await this.#ctx.db.query<DeviceRow>('SELECT * FROM devices WHERE id = ?', [deviceId]);
    if (row === undefined) throw new SdcError('API_DEVICE_NOT_FOUND', `device ${deviceId} is unknown`, { deviceId });
    return row;
  }

  /** Online means the gateway's presence key exists now (it expires without heartbeats). */
  async #view(row: DeviceRow, tags: readonly string[], risk?: { score: number; atMs: number }): Promise<DeviceView> {
    const online = (await this.#ctx.kv.get(kvKeys.presence(row.id))) !== null;
    return {
      id: row.id, status: row.status, created_at_ms: Number(row.created_at), online,
      last_seen_at_ms: row.last_seen_at === null ? null : Number(row.last_seen_at), gateway_id: row.gateway_id,
      cert_serial: row.cert_serial, cert_not_after_ms: row.cert_not_after === null ? null : Number(row.cert_not_after),
      last_command_seq: row.last_command_seq === null ? null : Number(row.last_command_seq),
      clock_offset_ms: row.clock_offset_ms === null ? null : Number(row.clock_offset_ms),
      tags: [...tags], agent_version: row.agent_version ?? null,
      risk_score: risk?.score ?? null, risk_scored_at_ms: risk?.atMs ?? null,
    };
  }

  /** A one-time pairing token for `deviceId` (registered as `pending` if new). The secret is returned once and stored only as a hash. */
  async createPairingToken(options: { actor: string; deviceId: string; ttlMs?: number }): Promise<CreatedPairingTokenView> {
    const [created] = await this.createPairingTokens({ actor: options.actor, deviceIds: [options.deviceId], ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }) });
    return created!;
  }

  /**
   * One token per device id (bulk provisioning, up to pairingTokensPerBatchMax): new ids are
   * registered as `pending`, then every token and its audit entry commit in one transaction, so a
   * refusal (TRUST_PAIRING_CAPACITY names the limit) creates none. Secrets are returned once.
   */
  async createPairingTokens(options: { actor: string; deviceIds: readonly string[]; ttlMs?: number }): Promise<CreatedPairingTokenView[]> {
    const nowMs = this.#ctx.clock.nowMs();
    await this.#registerPending(options.deviceIds, nowMs);
    this.#tokenCreator = options.actor;
    const created = await createPairingTokens({ store: this.#tokens, deviceIds: options.deviceIds, now: new Date(nowMs), random: this.#ctx.random, ttlMs: options.ttlMs });
    await this.#ctx.settleAudit();
    return created.map((c) => ({ token: c.token, device_id: c.deviceId, expires_at_ms: c.expiresAt.getTime() }));
  }

  /** Registers the ids not known yet as `pending`, in one transaction; one created meanwhile by another call is left as it is. */
  async #registerPending(deviceIds: readonly string[], nowMs: number): Promise<void> {
    const known = new Set<string>();
    for (let start = 0; start < deviceIds.length; start += pendingLookupIdsMax) {
      const chunk = deviceIds.slice(start, start + pendingLookupIdsMax);
      const rows = await this.#ctx.db.query<{ id: string }>(`SELECT id FROM devices WHERE id IN (${chunk.map(() => '?').join(', ')})`, chunk);
      for (const row of rows) known.add(row.id);
    }
    const missing = deviceIds.filter((id) => !known.has(id));
    if (missing.length === 0) return;
    await this.#ctx.db.transaction(async (tx) => {
      for (const id of missing) {
        try {
          await tx.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'pending', ?)", [id, nowMs]);
        } catch (error) {
          if (!SdcError.is(error, 'STORE_UNIQUE_VIOLATION')) throw error;
        }
      }
    });
  }

  /**
   * Whether `token` is outstanding for `deviceId` (exists, names it, unused, unexpired): one
   * SHA-256 and one read by key, no CSR work. The enrollment route's limits count a request whose
   * token holds only against its device, so strangers naming the device cannot lock it out.
   */
  async pairingTokenHolds(options: { deviceId: string; token: string }): Promise<boolean> {
    let tokenHashHex: string;
    try {
      tokenHashHex = hashPairingToken(options.token);
    } catch (error) {
      if (SdcError.is(error, 'TRUST_PAIRING_TOKEN_INVALID')) return false;
      throw error;
    }
    const record = await this.#tokens.find(tokenHashHex);
    return record !== undefined && record.deviceId === options.deviceId && isOutstanding(record, this.#ctx.clock.nowMs());
  }

  /** Trades a one-time token and a CSR for the device's certificate and the keys it must pin. */
  async enroll(options: { deviceId: string; token: string; csrPem: string }): Promise<EnrollmentAnswer> {
    const nowMs = this.#ctx.clock.nowMs();
    const enrolled = await this.#enrollment.enroll({ token: options.token, deviceId: options.deviceId, csrPem: options.csrPem, now: new Date(nowMs) });
    // The issuer returns the certificate's notAfter (whole seconds) and key: no second parse of what it just made.
    const result = enrolled;
    const publicKey = base64urlFromBytes(enrolled.publicKeyRaw);
    const serial = normalizeSerialHex(result.serialHex);
    // The certificate, the device row, the superseded certificates' revocations and the audit entry commit together.
    const supersededSerials = await this.#ctx.db.transaction(async (tx) => {
      await this.#recordCertificate(tx, options.deviceId, result, nowMs);
      const updated = await tx.execute(
        "UPDATE devices SET status = 'enrolled', cert_serial = ?, cert_not_after = ?, public_key = ? WHERE id = ?",
        [serial, result.notAfter.getTime(), publicKey, options.deviceId],
      );
      if (updated.changes === 0) {
        await tx.execute(
          "INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES (?, 'enrolled', ?, ?, ?, ?)",
          [options.deviceId, nowMs, serial, result.notAfter.getTime(), publicKey],
        );
      }
      // A new pairing replaces whatever the device held before (it may have been lost or stolen).
      const revoked = await this.#revokeCertificates(tx, options.deviceId, [serial], 'superseded', nowMs);
      await this.#ctx.audit.record(tx, {
        kind: 'device.enrolled', actor: actors.device(options.deviceId), subject: `device:${options.deviceId}`,
        payload: { serial, not_after_ms: result.notAfter.getTime(), public_key: publicKey, superseded: revoked },
      });
      await this.#takeSupersededCrlNumberIn(tx, revoked);
      return revoked;
    });
    this.#deviceKeys.invalidate();
    await this.#ctx.settleAudit();
    await this.#publishSuperseded(options.deviceId, supersededSerials, nowMs);
    await this.trust.certificateIssued(options.deviceId, serial, result.notAfter.getTime());
    return this.#answer(options.deviceId, result.certificatePem, result.chainPems);
  }

  /**
   * Renews a device's certificate (issue 2): the caller proved possession of `presented`'s key in
   * the TLS handshake; it must chain to our CA, be valid, not revoked, on record for `deviceId`,
   * and name `deviceId`. The CSR may carry a new key (rotation). Every other unexpired
   * certificate of the device except the presented one is revoked as `superseded`: a renewal whose
   * answer was lost can be retried with the same certificate, and at most two certificates of a
   * device are ever usable at once. `authenticated`, if given, runs once the presented certificate
   * has passed every check above (chain, not revoked, names `deviceId`, device not revoked,
   * certificate on record) and before anything is signed; its throw refuses the renewal (the
   * route's per-device rate limit, so only the device itself can spend its count).
   */
  async renew(options: { deviceId: string; csrPem: string; presented: PresentedClientCertificate | undefined; authenticated?: () => Promise<void> }): Promise<EnrollmentAnswer> {
    const { deviceId } = options;
    if (options.presented === undefined) {
      throw new SdcError('API_CLIENT_CERT_REQUIRED', 'renewal needs the current device certificate as the TLS client certificate');
    }
    const nowMs = this.#ctx.clock.nowMs();
    const { pki } = this.#options.materials;
    const verified = await verifyDeviceCertificate({
      certDer: options.presented.certDer, trustAnchors: [pki.intermediate.certificate, pki.rootCertificate], now: new Date(nowMs),
      isRevoked: (serial) => this.revocations.isRevoked(serial),
    });
    if (verified.deviceId !== deviceId) {
      throw new SdcError('API_CLIENT_CERT_DEVICE_MISMATCH', `the client certificate is device ${verified.deviceId}'s, not ${deviceId}'s`, { deviceId });
    }
    const row = await this.#row(deviceId);
    if (row.status === 'revoked') throw new SdcError('API_DEVICE_REVOKED', `device ${deviceId} is revoked`, { deviceId });
    const presentedSerial = normalizeSerialHex(verified.serialHex);
    const [onRecord] = await this.#ctx.db.query('SELECT serial FROM device_certificates WHERE serial = ? AND device_id = ?', [presentedSerial, deviceId]);
    if (onRecord === undefined) {
      throw new SdcError('API_CLIENT_CERT_UNKNOWN', `certificate ${presentedSerial} was not issued to ${deviceId} by this control plane`, { deviceId });
    }
    await options.authenticated?.();
    // Checked before signing (cheap reads), and again under the row's lock in the transaction.
    await this.#checkRenewalRate(this.#ctx.db, deviceId, nowMs);
    const issued = await this.#issuer.renewDeviceCertificate({
      currentCertPem: parseCertificate(options.presented.certDer).toString('pem'), csrPem: options.csrPem, now: new Date(nowMs),
      ...(this.#options.certificateValidityMs === undefined ? {} : { validityMs: this.#options.certificateValidityMs }),
    });
    const certificate = parseCertificate(issued.certificatePem);
    const result = { ...issued, notAfter: certificate.notAfter };
    const serial = normalizeSerialHex(result.serialHex);
    const publicKey = base64urlFromBytes(rawEd25519Key(certificate.publicKey.rawData));
    const supersededSerials = await this.#ctx.db.transaction(async (tx) => {
      // Checked again under the row's lock (review h1, finding 1): a revocation that committed
      // since the checks above wins, and the certificate just signed is never recorded nor given out.
      await this.#lockForRenewal(tx, deviceId, presentedSerial);
      await this.#checkRenewalRate(tx, deviceId, nowMs);
      await this.#recordCertificate(tx, deviceId, result, nowMs);
      await tx.execute('UPDATE devices SET cert_serial = ?, cert_not_after = ?, public_key = ? WHERE id = ?',
        [serial, result.notAfter.getTime(), publicKey, deviceId]);
      const revoked = await this.#revokeCertificates(tx, deviceId, [serial, presentedSerial], 'superseded', nowMs);
      await this.#ctx.audit.record(tx, {
        kind: 'device.renewed', actor: actors.device(deviceId), subject: `device:${deviceId}`,
        payload: { serial, previous_serial: presentedSerial, not_after_ms: result.notAfter.getTime(), public_key: publicKey, superseded: revoked },
      });
      await this.#takeSupersededCrlNumberIn(tx, revoked);
      return revoked;
    });
    this.#deviceKeys.invalidate();
    await this.#ctx.settleAudit();
    await this.#publishSuperseded(deviceId, supersededSerials, nowMs);
    await this.trust.certificateIssued(deviceId, serial, result.notAfter.getTime());
    await this.#withdrawIfRevokedSince(deviceId, serial);
    return this.#answer(deviceId, result.certificatePem, this.#issuer.chainPems());
  }

  /**
   * Inside a renewal's transaction: the device row locked (FOR UPDATE on MySQL; SQLite runs one
   * transaction at a time), refused API_DEVICE_REVOKED when a revocation committed since the
   * renewal's first checks, and TRUST_CERT_REVOKED when the presented certificate was revoked
   * meanwhile (superseded by a re-enrollment).
   */
  async #lockForRenewal(tx: SqlExecutor, deviceId: string, presentedSerial: string): Promise<void> {
    const [row] = await tx.query<{ status: string }>(
      `SELECT status FROM devices WHERE id = ?${tx.dialect === 'mysql' ? ' FOR UPDATE' : ''}`, [deviceId]);
    if (row === undefined) throw new SdcError('API_DEVICE_NOT_FOUND', `device ${deviceId} is unknown`, { deviceId });
    if (row.status === 'revoked') throw new SdcError('API_DEVICE_REVOKED', `device ${deviceId} was revoked while its renewal ran`, { deviceId });
    const revoked = await tx.query('SELECT serial FROM revocations WHERE serial = ?', [presentedSerial]);
    if (revoked.length > 0) throw new SdcError('TRUST_CERT_REVOKED', `certificate ${presentedSerial} was revoked while the renewal ran`, { deviceId });
  }

  /**
   * Refuses a renewal that comes too soon, API_RENEWAL_TOO_SOON with retryAfterS: once the device
   * was given renewalLimits.certificatesPerWindowMax certificates in the sliding window. The
   * presented certificate is the device's current one or the one the current one was renewed from
   * (the only other one a renewal leaves unrevoked: its answer was lost), so a renewal loop, from
   * either, ends here and supersedes (revokes) at most that many certificates a day.
   */
  async #checkRenewalRate(executor: SqlExecutor, deviceId: string, nowMs: number): Promise<void> {
    const recent = await executor.query<{ issued_at: number | string }>(
      'SELECT issued_at FROM device_certificates WHERE device_id = ? AND issued_at > ? ORDER BY issued_at ASC', [deviceId, nowMs - renewalLimits.windowMs]);
    if (recent.length < renewalLimits.certificatesPerWindowMax) return;
    const oldest = Number(recent[recent.length - renewalLimits.certificatesPerWindowMax]!.issued_at);
    const retryAfterS = Math.max(1, Math.ceil((oldest + renewalLimits.windowMs - nowMs) / 1000));
    throw new SdcError('API_RENEWAL_TOO_SOON', `device ${deviceId} was given ${recent.length} certificates in the last ${renewalLimits.windowMs / 3_600_000} h (at most ${renewalLimits.certificatesPerWindowMax}); retry in ${retryAfterS} s`, { deviceId, retryAfterS });
  }

  /**
   * After a renewal published its certificate: if a revocation of the device committed since its
   * transaction (and so may have deleted the keys before they were written), the keys are
   * withdrawn again and the renewal refused. Either this read sees that commit, or the
   * revocation's deletes run after the writes above: the keys never outlive a revocation.
   */
  async #withdrawIfRevokedSince(deviceId: string, serial: string): Promise<void> {
    const [row] = await this.#ctx.db.query<{ status: string }>('SELECT status FROM devices WHERE id = ?', [deviceId]);
    if (row !== undefined && row.status !== 'revoked') return;
    await this.#ctx.kv.del(kvKeys.deviceCertificate(serial));
    await this.trust.deviceRevoked(deviceId);
    throw new SdcError('API_DEVICE_REVOKED', `device ${deviceId} was revoked while its renewal was published`, { deviceId });
  }

  async #recordCertificate(tx: SqlExecutor, deviceId: string, issued: Pick<IssuedDeviceCertificate, 'serialHex' | 'notAfter'>, nowMs: number): Promise<void> {
    await tx.execute('INSERT INTO device_certificates (serial, device_id, not_after, issued_at) VALUES (?, ?, ?, ?)',
      [normalizeSerialHex(issued.serialHex), deviceId, issued.notAfter.getTime(), nowMs]);
  }

  /** Revokes the device's unexpired, unrevoked certificates except `keep`, as `reason`, in SQL; returns their serials (the caller publishes them). */
  async #revokeCertificates(tx: SqlExecutor, deviceId: string, keep: readonly string[], reason: RevocationReason, nowMs: number): Promise<string[]> {
    const rows = await tx.query<{ serial: string }>(
      `SELECT c.serial FROM device_certificates c LEFT JOIN revocations r ON r.serial = c.serial
       WHERE c.device_id = ? AND c.not_after > ? AND r.serial IS NULL ORDER BY c.issued_at ASC LIMIT ?`,
      [deviceId, nowMs, superseded.perIssueMax],
    );
    const revoked: string[] = [];
    for (const { serial } of rows) {
      if (keep.includes(serial)) continue;
      await this.revocations.revokeDeviceIn(tx, serial, reason, new Date(nowMs), deviceId);
      revoked.push(serial);
    }
    return revoked;
  }

  /**
   * A CRL number taken in the transaction that revokes certificates as superseded (as revoke does,
   * review h20 finding 1), and no CRL signed for it: the counter is then ahead of every stored CRL,
   * so a republish pass on some replica (republishCrl, every 60 s) signs one CRL listing every
   * superseded certificate since (decision 0021, h12 and h7: about one signing per interval for the
   * deployment, not a full CRL per renewal; a process that ends after the commit leaves the same gap).
   */
  async #takeSupersededCrlNumberIn(tx: SqlExecutor, revoked: readonly string[]): Promise<void> {
    if (revoked.length > 0) await this.revocations.nextCrlNumberIn(tx);
  }

  /**
   * Superseded certificates are revoked like any other, and the gateways are told at once (the kv
   * revoked keys they check at AUTH, and the notice on which they close the sessions): they refuse
   * the old certificate from now on, though the CRL lists it only after the next republish.
   */
  async #publishSuperseded(deviceId: string, revoked: readonly string[], nowMs: number): Promise<void> {
    await this.trust.certificatesRevoked(deviceId, [...revoked], nowMs);
  }

  #answer(deviceId: string, certificatePem: string, chainPems: readonly string[]): EnrollmentAnswer {
    const { commandSigner, previousCommandSigner, gatewaySigner } = this.#options.materials;
    // Current first (the kernel keeps the first COMMAND_KEYS_MAX), then the one it replaced, so commands signed before the rotation still verify.
    const commandSigners = previousCommandSigner === undefined ? [commandSigner] : [commandSigner, previousCommandSigner];
    const set = { deviceId, keys: commandSigners.map((signer) => signer.publicKey) };
    return {
      certificate_pem: certificatePem, chain_pems: [...chainPems],
      command_keys: commandSigners.map((signer) => ({ kid: signer.kid, public_key: base64urlFromBytes(signer.publicKey) })),
      kernel_key_rotations: commandSigners.map((signer) => signKernelKeyRotation({ set, kid: signer.kid, seed: signer.seed, provider: this.#ctx.ed25519 })),
      gateway_keys: [{ kid: gatewaySigner.kid, public_key: base64urlFromBytes(gatewaySigner.publicKey) }],
      gateway_urls: [...this.#options.gatewayUrls],
    };
  }

  /**
   * Revokes the device's current certificate and every other unexpired one: recorded in SQL and
   * the device marked revoked (so the control plane refuses what it still sends), then published
   * (TrustPublisher.certificatesRevoked: the kv revoked keys, normalized serials, that gateways
   * check at AUTH, and the notice on which every gateway closes the device's sessions), the
   * enrolled-device key removed, and a fresh CRL is signed.
   */
  async revoke(options: { actor: string; deviceId: string; reason?: string }): Promise<{ serial: string; crl_number: string }> {
    const reason = requireRevocationReason(options.reason ?? 'unspecified');
    const row = await this.#row(options.deviceId);
    if (row.cert_serial === null) throw new SdcError('API_DEVICE_NOT_ENROLLED', `device ${options.deviceId} has no certificate`, { deviceId: options.deviceId });
    const nowMs = this.#ctx.clock.nowMs();
    // The revocations, the device's status and the audit entry commit together; the entry names the
    // number of the CRL that lists them, taken in the same transaction and used below.
    const { serial, others, crlNumber } = await this.#ctx.db.transaction(async (tx) => {
      // The current serial read again under the row's lock: a renewal that committed since the read
      // above made another certificate current (review h1, finding 1, the reverse order).
      const [locked] = await tx.query<{ cert_serial: string | null }>(
        `SELECT cert_serial FROM devices WHERE id = ?${tx.dialect === 'mysql' ? ' FOR UPDATE' : ''}`, [options.deviceId]);
      const current = normalizeSerialHex(locked?.cert_serial ?? row.cert_serial!);
      await this.revocations.revokeDeviceIn(tx, current, reason, new Date(nowMs), options.deviceId);
      // An earlier certificate kept alive by a renewal must not outlive the device's revocation.
      const revoked = await this.#revokeCertificates(tx, options.deviceId, [current], reason, nowMs);
      await tx.execute("UPDATE devices SET status = 'revoked' WHERE id = ?", [options.deviceId]);
      const number = await this.revocations.nextCrlNumberIn(tx);
      await this.#ctx.audit.record(tx, {
        kind: 'device.revoked', actor: actors.user(options.actor), subject: `device:${options.deviceId}`,
        payload: { serial: current, reason, crl_number: number.toString() },
      });
      return { serial: current, others: revoked, crlNumber: number };
    });
    this.#deviceKeys.invalidate();
    await this.#ctx.settleAudit();
    await this.trust.certificatesRevoked(options.deviceId, [serial, ...others], nowMs);
    await this.trust.deviceRevoked(options.deviceId);
    await this.#cancelCommandsOf(options.deviceId, options.actor);
    const crl = await this.#regenerateCrl(nowMs, crlNumber);
    return { serial, crl_number: crl.crlNumber.toString() };
  }

  async #cancelCommandsOf(deviceId: string, actor: string): Promise<void> {
    try {
      const canceled = await this.#options.onRevoked?.({ deviceId, actor });
      if (canceled !== undefined && canceled > 0) this.#ctx.logger.info({ deviceId, canceled }, 'commands of the revoked device canceled');
    } catch (error) {
      this.#ctx.logger.warn({ err: error, deviceId }, "the revoked device's waiting commands were not all canceled; the rest end by their TTL");
    }
  }

  /**
   * Re-publishes from SQL what gateways admit by (TrustPublisher.publishAll): every enrolled
   * device's key, its current certificates and every revoked serial, so a wiped key/value store
   * heals. Run when the control plane starts, periodically, and when the store was found wiped.
   */
  async publishEnrolledDevices(): Promise<{ published: number } & TrustPublishCounts> {
    const counts = await this.trust.publishAll();
    return { published: counts.devices, ...counts };
  }

  /**
   * A fresh CRL, stored in SQL for every replica to serve (decision 0021, 2026-12-06 h14).
   * Without `crlNumber`: one transaction takes the next number, lists the revocations (all those
   * that took a lower number have committed: the counter's row lock), signs and stores the CRL.
   * With `crlNumber` (a revocation's transaction took it and has committed): the revocations are
   * listed now, which includes that one and every one numbered lower, and the CRL is stored on its
   * own; if the process ends before that, a republish pass finds the number taken and re-signs.
   * So no stored CRL numbered N misses a revocation committed with a number below N, and serving the
   * highest stored one serves every committed revocation.
   */
  async #regenerateCrl(nowMs: number, crlNumber?: bigint, election?: { spacingMs: number }): Promise<SignedCrl> {
    const sign = (entries: Awaited<ReturnType<SqlRevocationStore['list']>>, number: bigint) => createCrl({
      issuer: this.#options.materials.pki.intermediate, entries, crlNumber: number, now: new Date(nowMs),
      ...(this.#options.crlValidityMs === undefined ? {} : { nextUpdateMs: this.#options.crlValidityMs }),
    });
    let crl: SignedCrl;
    try {
      if (crlNumber === undefined) {
        crl = await this.#ctx.db.transaction(async (tx) => {
          const number = await this.revocations.nextCrlNumberIn(tx);
          if (election !== undefined) {
            // The election: under the counter's row lock, which a replica signing here holds until
            // its CRL is stored, a CRL stored within the spacing means another replica signed it
            // meanwhile (it lists what this one would); the rollback gives the number back.
            const lastSignedMs = await this.#crls.lastSignedMsIn(tx, nowMs + election.spacingMs);
            if (lastSignedMs !== undefined && nowMs - lastSignedMs < election.spacingMs) throw new CrlSigningNotElected();
          }
          const signed = await sign(await this.revocations.listIn(tx), number);
          await this.#crls.storeIn(tx, signed);
          return signed;
        });
      } else {
        crl = await sign(await this.revocations.list(), crlNumber);
        await this.#crls.store(crl);
      }
    } catch (error) {
      if (error instanceof CrlSigningNotElected) throw error;
      // TRUST_CRL_INCOMPLETE above all: loud, never a CRL that leaves revocations out.
      this.#ctx.logger.error({ err: error, code: SdcError.is(error) ? error.code : undefined }, 'CRL not signed; the previous one stays published');
      throw error;
    }
    const served = this.#servedNow(crl);
    await this.#writeCrlFile(served.pem);
    return crl;
  }

  /** The cached served CRL after this process signed `crl`: the higher-numbered of the two. */
  #servedNow(crl: SignedCrl): StoredCrl {
    const signed: StoredCrl = { pem: crl.pem, crlNumber: crl.crlNumber, thisUpdateMs: crl.thisUpdate.getTime(), nextUpdateMs: crl.nextUpdate.getTime() };
    const cached = this.#served?.crl;
    const served = cached !== undefined && cached.crlNumber > signed.crlNumber ? cached : signed;
    this.#served = { crl: served, readAtMs: this.#served?.readAtMs ?? this.#ctx.clock.nowMs() };
    return served;
  }

  /** A failed write is logged, not thrown: SQL already holds the revocation, and the kv keys carry it to the gateways. */
  async #writeCrlFile(pem: string): Promise<void> {
    const path = this.#options.crlPath;
    if (path === undefined) return;
    try {
      await writeFileAtomic(path, pem, { mode: 0o644 });
    } catch (error) {
      this.#ctx.logger.error({ err: error, path }, 'CRL file not written; gateways keep the previous one');
    }
  }

  /**
   * The scheduled re-publication (and the one at start). A CRL is signed only when one is due for
   * the deployment, judged on the stored CRLs (decision 0021, section "h7"), not per replica:
   * - a CRL number was taken and no CRL stored under it (the superseded certificates of every
   *   renewal and re-enrollment since, one CRL for all of them; or a revocation whose own signing
   *   failed or whose process ended), and no CRL was stored within crlSigningSpacingMs; or
   * - the highest valid stored CRL has a third of its validity left (or none is valid).
   * The replica whose pass finds it due first signs, elected under the CRL-number counter's row
   * lock (#regenerateCrl); the others find that CRL and sign nothing. So N replicas sign about as
   * many CRLs as one, and a superseded serial is in the stored CRL within one interval of the
   * replica that signed last. A failed signing is logged by #regenerateCrl and tried again at the
   * next pass. The file is rewritten when it does not hold the served CRL, so a deleted or
   * replaced file, a write that failed at a revocation, or a CRL signed by another replica reaches
   * the file within one interval.
   */
  async republishCrl(): Promise<void> {
    const nowMs = this.#ctx.clock.nowMs();
    if (await this.#crlSigningDue(nowMs)) await this.#signIfElected(nowMs);
    const pem = await this.crlPem();
    const path = this.#options.crlPath;
    if (path === undefined) return;
    const onDisk = await readFile(path, 'utf8').catch(() => undefined);
    if (onDisk !== pem) await this.#writeCrlFile(pem);
  }

  get #crlSigningSpacingMs(): number {
    return crlSigningSpacingMs(this.#options.crlRepublishIntervalMs ?? crlRepublishIntervalMsDefault);
  }

  /** republishCrl's judgement, before any lock: most passes end here (two reads). */
  async #crlSigningDue(nowMs: number): Promise<boolean> {
    const spacingMs = this.#crlSigningSpacingMs;
    const { numberTakenWithoutCrl, lastSignedMs } = await this.#crls.signingState(nowMs + spacingMs);
    if (lastSignedMs !== undefined && nowMs - lastSignedMs < spacingMs) return false;
    if (numberTakenWithoutCrl) return true;
    const served = await this.#servedCrl(nowMs);
    return served === undefined || crlRefreshDue(served, nowMs);
  }

  async #signIfElected(nowMs: number): Promise<void> {
    this.#electedSigning ??= this.#regenerateCrl(nowMs, undefined, { spacingMs: this.#crlSigningSpacingMs }).then(
      () => undefined,
      (error: unknown) => { if (!(error instanceof CrlSigningNotElected)) throw error; },
    ).finally(() => { this.#electedSigning = undefined; });
    return this.#electedSigning;
  }

  /**
   * The highest-numbered valid CRL any control plane on the database stored, read through a cache
   * of crlReadCacheMs (a revocation committed on another replica is served here at most that long
   * after its CRL was stored; one made here, at once). Signed here only when none is valid (nothing
   * to serve otherwise); re-signing one with a third of its validity left is the republish pass's
   * (every interval, elected across the replicas), so a fetch never signs a CRL out of step.
   */
  async crlPem(): Promise<string> {
    const nowMs = this.#ctx.clock.nowMs();
    const served = await this.#servedCrl(nowMs);
    if (served === undefined) return (await this.#signOnce(nowMs)).pem;
    return served.pem;
  }

  async #servedCrl(nowMs: number): Promise<StoredCrl | undefined> {
    const cached = this.#served;
    // A clock that stepped back also reads again.
    if (cached !== undefined && nowMs >= cached.readAtMs && nowMs - cached.readAtMs < crlReadCacheMs
      && (cached.crl === undefined || cached.crl.nextUpdateMs > nowMs)) return cached.crl;
    this.#servedRead ??= this.#crls.highestValid(nowMs).then((read) => {
      // A CRL this process signed while the read was in flight may be higher than what it read.
      const held = this.#served?.crl;
      const crl = held !== undefined && held.nextUpdateMs > nowMs && (read === undefined || held.crlNumber > read.crlNumber) ? held : read;
      this.#served = { crl, readAtMs: nowMs };
      return crl;
    }).finally(() => { this.#servedRead = undefined; });
    return this.#servedRead;
  }

  async #signOnce(nowMs: number): Promise<SignedCrl> {
    this.#signing ??= this.#regenerateCrl(nowMs).finally(() => { this.#signing = undefined; });
    return this.#signing;
  }

  async #loadDeviceKey(deviceId: string): Promise<DeviceKeyRecord> {
    return (await this.#deviceKeyReads.get(deviceId, undefined)) ?? { publicKey: null, revoked: false };
  }

  /** Where a read of devices rows made elsewhere starts (ComplianceService's at AUTH), for keepDeviceKey. */
  deviceKeyMark(): DeviceKeyReadMark {
    return this.#deviceKeys.mark();
  }

  /**
   * The key and status of a devices row read elsewhere since `mark` (the compliance read at AUTH
   * already reads the row), kept for verifyDeviceFrame as its own read would be (issue 17: the
   * bundle report a moment later read the row again, 2,000 reads of about 100 µs at the start-up
   * of 2,000 simulated agents). A key that does not decode is left to verifyDeviceFrame's own read.
   */
  keepDeviceKey(deviceId: string, row: { public_key: string | null; status: string }, mark: DeviceKeyReadMark): void {
    let publicKey: Uint8Array | null = null;
    try {
      if (row.public_key !== null) publicKey = bytesFromBase64url(row.public_key, { code: 'CRYPTO_BAD_KEY', name: 'device public key', length: 32 });
    } catch (error) {
      if (error instanceof SdcError) return;
      throw error;
    }
    this.#deviceKeys.keep(deviceId, { publicKey, revoked: row.status === 'revoked' }, mark);
  }

  /**
   * The devices' key rows the cache asked for meanwhile, in one statement (issue 17: the key of a
   * command's ACK and RESULT frames was about 1.3 reads per command under load, one per device).
   * A key that does not decode is that device's CRYPTO_BAD_KEY alone; an unknown device has no entry.
   */
  async #readDeviceKeys(deviceIds: readonly string[]): Promise<Map<string, DeviceKeyRecord | SdcError>> {
    const rows = await this.#ctx.db.query<{ id: string; public_key: string | null; status: string }>(
      `SELECT id, public_key, status FROM devices WHERE id IN (${deviceIds.map(() => '?').join(', ')})`, deviceIds);
    const records = new Map<string, DeviceKeyRecord | SdcError>();
    for (const row of rows) {
      const revoked = row.status === 'revoked';
      try {
        records.set(row.id, { publicKey: row.public_key === null ? null : bytesFromBase64url(row.public_key, { code: 'CRYPTO_BAD_KEY', name: 'device public key', length: 32 }), revoked });
      } catch (error) {
        if (!(error instanceof SdcError)) throw error;
        records.set(row.id, error);
      }
    }
    return records;
  }

  /**
   * Decodes a device-signed frame (canonical JSON text), checks it is of `type`, from `deviceId`,
   * a device not revoked (API_DEVICE_REVOKED), signed by the key the device enrolled with, and
   * that its body matches the schema.
   *
   * `gatewayAuthenticated`: a TELEMETRY frame carrying the session MAC (ADR 0004) was checked by
   * the gateway under the session's key, which only the gateway and the device hold; it is taken
   * on the gateway's word (the bus is internal, as for presence), never verified twice. Every
   * other frame, and a signed TELEMETRY frame from an agent without the MAC, is verified here.
   */
  async verifyDeviceFrame<T extends MessageType>(deviceId: string, frameText: string, type: T, options: { gatewayAuthenticated?: boolean } = {}): Promise<{ envelope: SignedEnvelope; body: MessageBody<T> }> {
    const { envelope, signingInput } = options.gatewayAuthenticated === true
      ? { envelope: decodeGatewayCheckedFrame(frameText), signingInput: undefined } : decodeDeviceFrame(frameText);
    checkFrameAddress(envelope, deviceId, type);
    const macTrusted = options.gatewayAuthenticated === true && sessionMacTypes.has(type) && envelope.sig.alg === envelopeMacAlg;
    return this.#verifyDecoded(deviceId, envelope, type, macTrusted, signingInput);
  }

  /**
   * verifyDeviceFrame(deviceId, frameText, 'TELEMETRY', { gatewayAuthenticated: true }) (the
   * telemetry handler's), answered in this call when it needs no read: a MAC'd frame of a device
   * whose row is cached (the common case at telemetry rates). The same checks in the same order
   * (the frame's decode and address, the device enrolled and not revoked, the body's schema), the
   * same refusals; a row not cached, one without a key (reloaded, as verifyDeviceFrame does) or a
   * signed frame take verifyDeviceFrame's path and return its promise (issue 17: an async call,
   * the cache's async get and their awaits were about 4 promises per sample).
   *
   * A TELEMETRY_BATCH frame (decision 0004, "Batches") is taken the same way, once for all its
   * samples; it exists only under the session MAC, so a signed one is refused
   * PROTO_TELEMETRY_BATCH_WITHOUT_MAC (no gateway forwards one).
   */
  telemetryFrame(deviceId: string, frameText: string): TelemetryFrame | Promise<TelemetryFrame> {
    const envelope = decodeGatewayCheckedFrame(frameText);
    const type = envelope.type === 'TELEMETRY_BATCH' ? 'TELEMETRY_BATCH' : 'TELEMETRY';
    checkFrameAddress(envelope, deviceId, type);
    const macTrusted = envelope.sig.alg === envelopeMacAlg;
    if (type === 'TELEMETRY_BATCH' && !macTrusted) throw new SdcError('PROTO_TELEMETRY_BATCH_WITHOUT_MAC', `device ${deviceId}'s TELEMETRY_BATCH is not MAC'd`);
    const record = macTrusted ? this.#deviceKeys.cached(deviceId, deviceKeyCacheLimits.macCheckedTtlMs) : undefined;
    if (record === undefined || record.publicKey === null) return this.#verifyDecoded(deviceId, envelope, type, macTrusted) as Promise<TelemetryFrame>;
    this.#checkDeviceFrame(deviceId, envelope, record, true);
    return { envelope, type, body: validateMessageBody(type, envelope.body) } as TelemetryFrame;
  }

  /** `envelope` exactly as decoded (parseSignedEnvelope), unchanged; `signingInput` its signed bytes when taken from the frame's text. */
  async #verifyDecoded<T extends MessageType>(deviceId: string, envelope: SignedEnvelope, type: T, macTrusted: boolean, signingInput?: Uint8Array): Promise<{ envelope: SignedEnvelope; type: T; body: MessageBody<T> }> {
    try {
      // A MAC-checked frame needs only the revoked flag, which every revocation drops from the cache at once.
      const ttlMs = macTrusted ? deviceKeyCacheLimits.macCheckedTtlMs : deviceKeyCacheLimits.ttlMs;
      this.#checkDeviceFrame(deviceId, envelope, await this.#deviceKeys.get(deviceId, ttlMs), macTrusted, signingInput);
    } catch (error) {
      // The cached row may predate an enrollment or renewal made by another control plane (docs/decisions/0008).
      if (!SdcError.is(error) || !(error.code === 'CRYPTO_SIGNATURE_INVALID' || error.code === 'API_DEVICE_NOT_ENROLLED')) throw error;
      this.#checkDeviceFrame(deviceId, envelope, await this.#deviceKeys.reload(deviceId), macTrusted, signingInput);
    }
    return { envelope, type, body: validateMessageBody(type, envelope.body) };
  }

  /**
   * `envelope` came from parseSignedEnvelope (decodeEnvelope, decodeGatewayCheckedFrame or
   * decodeDeviceFrame) and is unchanged, so its shape is not checked again; without a
   * `signingInput` the verifier writes the signed fields out.
   */
  #checkDeviceFrame(deviceId: string, envelope: SignedEnvelope, { publicKey, revoked }: DeviceKeyRecord, macTrusted: boolean, signingInput?: Uint8Array): void {
    if (publicKey === null) throw new SdcError('API_DEVICE_NOT_ENROLLED', `device ${deviceId} has no enrolled key`);
    // Frames a revoked device sent before its sessions were closed may still be on the streams.
    if (revoked) throw new SdcError('API_DEVICE_REVOKED', `device ${deviceId} is revoked; its frame is refused`, { deviceId });
    if (!macTrusted) {
      verifyDecodedEnvelope({
        envelope, resolveKey: (kid) => (kid === deviceKid(deviceId) ? publicKey : undefined), provider: this.#ctx.ed25519,
        ...(signingInput === undefined ? {} : { signingInput }),
      });
    }
  }

  /**
   * Drops the cached device rows at every revocation notice, this process's or another control
   * plane's, so a revocation made elsewhere is seen at once rather than after the cache's TTL.
   */
  async start(): Promise<void> {
    if (this.#unsubscribeRevocations !== undefined) return;
    this.#unsubscribeRevocations = await this.#ctx.kv.subscribe(revocationChannel, () => this.#deviceKeys.invalidate());
  }

  async stop(): Promise<void> {
    const unsubscribe = this.#unsubscribeRevocations;
    this.#unsubscribeRevocations = undefined;
    if (unsubscribe !== undefined) await unsubscribe();
  }

  /**
   * Records presence in SQL. An offline event clears the gateway only if it is still the one on
   * record: after a reconnect, the old gateway's late "offline" must not hide the new session.
   * Returns false for an unknown device.
   */
  async recordPresence(options: { deviceId: string; gatewayId: string; online: boolean; atMs: number; lastCommandSeq?: number; clockOffsetMs?: number; agentVersion?: string }): Promise<boolean> {
    const { deviceId, gatewayId, online, atMs } = options;
    const updated = await this.#ctx.db.execute(
      `UPDATE devices SET
         last_seen_at = CASE WHEN last_seen_at IS NULL OR last_seen_at < ? THEN ? ELSE last_seen_at END,
         gateway_id = CASE WHEN ? = 1 THEN ? WHEN gateway_id = ? THEN NULL ELSE gateway_id END,
         last_command_seq = COALESCE(?, last_command_seq),
         clock_offset_ms = COALESCE(?, clock_offset_ms),
         agent_version = COALESCE(?, agent_version)
       WHERE id = ?`,
      [atMs, atMs, online ? 1 : 0, gatewayId, gatewayId, options.lastCommandSeq ?? null, options.clockOffsetMs ?? null, options.agentVersion ?? null, deviceId],
    );
    return updated.changes === 1;
  }

  /**
   * For a restored presence online (a session's lapsed key written again): true when the device's
   * row names `gatewayId` already and no alert is open under `offlineEpisodeKey`, so the full
   * online would change nothing that matters (the gateway on record, routing, the offline episode):
   * one read instead. undefined for an unknown device.
   */
  async holdsPresence(deviceId: string, gatewayId: string, offlineEpisodeKey: string): Promise<boolean | undefined> {
    const [row] = await this.#ctx.db.query<{ gateway_id: string | null; offline_open: number | string }>(
      'SELECT gateway_id, (SELECT COUNT(*) FROM alerts WHERE episode_key = ?) AS offline_open FROM devices WHERE id = ?',
      [offlineEpisodeKey, deviceId],
    );
    if (row === undefined) return undefined;
    return row.gateway_id === gatewayId && Number(row.offline_open) === 0;
  }

  /** The device clock's offset from a clock_skew alert (its AUTH was refused, so no presence carries it). */
  async recordClockOffset(deviceId: string, clockOffsetMs: number): Promise<void> {
    await this.#ctx.db.execute('UPDATE devices SET clock_offset_ms = ? WHERE id = ?', [clockOffsetMs, deviceId]);
  }

  /**
   * The device finished the command with `deviceSeq` (its signed result arrived): last_command_seq
   * moves up to it (never down: results may arrive out of order), and the device was seen then.
   */
  async recordCommandFinished(options: { deviceId: string; deviceSeq: number; atMs: number }): Promise<void> {
    // Written together with the other results that arrive while a write is in flight (command-finished-writes.ts).
    await this.#finishedWrites.record(options);
  }

  /**
   * The device was heard from at `atMs` (a telemetry sample). Written at most once per
   * deviceActivityLimits.lastSeenWriteIntervalMs per device: telemetry may come every 100 ms, and
   * each write takes the device row's lock.
   */
  recordSeen(deviceId: string, atMs: number): Promise<void> | undefined {
    // last_seen_at only moves up, so when this process wrote a value above atMs - interval the
    // statement below would match no row: skip it (most samples, at telemetry rates), with no
    // promise to await (undefined: nothing was sent).
    const written = this.#lastSeenWritten.get(deviceId);
    if (written !== undefined && written > atMs - deviceActivityLimits.lastSeenWriteIntervalMs) return undefined;
    return this.#writeSeen(deviceId, atMs);
  }

  async #writeSeen(deviceId: string, atMs: number): Promise<void> {
    const result = await this.#ctx.db.execute('UPDATE devices SET last_seen_at = ? WHERE id = ? AND (last_seen_at IS NULL OR last_seen_at <= ?)',
      [atMs, deviceId, atMs - deviceActivityLimits.lastSeenWriteIntervalMs]);
    if (result.changes === 1) {
      this.#lastSeenWritten.set(deviceId, atMs);
      return;
    }
    // Matched nothing: the row is fresh already (a presence or result wrote it) or absent. Keep the
    // value it holds (it only moves up), so the samples before it is an interval old skip the
    // UPDATE: a device that sent faster than one sample per interval after its AUTH otherwise had
    // every sample's UPDATE match nothing, about 0.1-0.2 statements per sample in the ingest bench (issue 17).
    const [row] = await this.#ctx.db.query<{ last_seen_at: number | null }>('SELECT last_seen_at FROM devices WHERE id = ?', [deviceId]);
    if (row !== undefined && row.last_seen_at !== null) this.#lastSeenWritten.set(deviceId, Number(row.last_seen_at));
  }
}
