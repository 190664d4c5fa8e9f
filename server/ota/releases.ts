import { SdcError } from '../../core/errors/index.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { nextState } from '../../core/protocol/state-machine.js';
import { releaseTable, type ReleaseEvent, type ReleaseState } from '../../core/ota/release-machine.js';
import { parseReleaseTarget } from '../../core/ota/release-target.js';
import type { TufCrypto } from '../../core/tuf/crypto-port.js';
import { parseMetadata } from '../../core/tuf/metadata.js';
import { encodeCanonical, parseTufJson, type TufJsonObject } from '../../core/tuf/olpc-json.js';
import { verifyThreshold } from '../../core/tuf/roles.js';
import type { ServiceContext } from '../control-plane/context.js';
import type { SqlExecutor } from '../stores/sql/sql-port.js';
import type { ArtifactStore } from './artifact-store.js';
import type { ImageRepository } from './image-repository.js';
import { envelopeText, targetsSigned, type TargetEntry } from './tuf-documents.js';

/**
 * Releases (issue 10, "Signed releases"): created as drafts, their artifact uploaded and checked
 * against the uploader's declared digest, then a targets metadata proposal (every published
 * release plus this one, at the next targets version) signed OFFLINE by release signers, whose
 * signatures the server only verifies and collects; a threshold of them makes the release
 * `signed`, and publishing stores that targets file and signs a new snapshot and timestamp.
 * The server holds no targets key, so no operator (nor a compromised server) can publish alone.
 * States follow core/ota/release-machine.ts; every change is audited in its own transaction.
 */

export const releaseLimits = {
  /** Largest artifact an upload may be (through the API, or by presigned PUT to the blob store). */
  artifactBytesMax: 256 * 1024 * 1024,
  /** How long a targets file signed for a release is valid: a year, so the 30-day alarm has room. */
  targetsLifetimeMs: 365 * 86_400_000,
  /** Releases listed per request. */
  listMax: 500,
  /**
   * The targets file's canonical size at most (about 6,000 releases): every device downloads it
   * whole at each change, and python-tuf's default limit for a targets file is 5,000,000 bytes.
   */
  targetsBytesMax: 4 * 1024 * 1024,
  /**
   * Presigned upload URLs (distinct declared artifacts) one release may hold until they are swept:
   * each lets its holder write up to artifactBytesMax into the blob store, which for the embedded
   * store is the data directory the database lives in. Four retries with another declared digest
   * within a URL's lifetime are plenty; asking again for the same artifact takes no new one.
   */
  uploadUrlsPerReleaseMax: 4,
  /**
   * The same for one operator over every release (the `created_by` of the rows), so that one
   * operator cannot take every place of uploadUrlsMax: two releases' worth, and four operators fill it.
   */
  uploadUrlsPerActorMax: 8,
  /** The same over every release: otherwise creating releases would raise the total without end (32 × 256 MiB = 8 GiB at most). */
  uploadUrlsMax: 32,
  /**
   * How long past its URL's expiry a pending upload object is deleted: S3 checks the URL on its own
   * clock, which may run behind ours; a PUT it still accepted would leave an object nobody sweeps.
   */
  uploadSweepGraceMs: 5 * 60_000,
  /** Pending upload objects deleted per sweep pass (more than uploadUrlsMax: one pass clears them all). */
  uploadSweepBatchMax: 64,
  /**
   * How long a sweep pass holds a due row it claimed (by moving its expiry) while it deletes the
   * object: another pass skips it meanwhile, and takes it again after this if the first one died.
   */
  uploadSweepClaimMs: 60_000,
} as const;

const artifactNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const sha256Pattern = /^[0-9a-f]{64}$/;
const signaturePattern = /^[0-9a-f]{128}$/;

export interface CreateReleaseInput {
  readonly id: string;
  readonly version: string;
  readonly artifact_name: string;
  readonly platforms: readonly string[];
  readonly min_agent_version: string;
  readonly reboot_required: boolean;
  readonly health_check: { readonly timeout_ms: number; readonly probes: readonly string[] };
}

export interface ReleaseView {
  readonly id: string;
  readonly release_counter: number;
  readonly version: string;
  readonly state: ReleaseState;
  readonly target_path: string;
  readonly custom: JsonObject;
  readonly artifact: { readonly length: number; readonly sha256: string; readonly sha512: string } | null;
  readonly proposal_version: number | null;
  readonly signatures: readonly { readonly keyid: string; readonly signed_by: string }[];
  readonly created_by: string;
  readonly created_at_ms: number;
  readonly updated_at_ms: number;
}

export interface TargetsProposal {
  readonly release_id: string;
  readonly targets_version: number;
  /** The OLPC canonical text of the targets role's `signed` part: exactly what a signer signs (UTF-8). */
  readonly signed_canonical: string;
  readonly keyids: readonly string[];
  readonly threshold: number;
}

interface ReleaseRow {
  id: string; release_counter: number; version: string; state: ReleaseState; artifact_name: string; custom_json: string;
  artifact_length: number | null; artifact_sha256: string | null; artifact_sha512: string | null;
  proposal_body: string | null; proposal_version: number | null; created_by: string; created_at: number; updated_at: number;
}

const columns = 'id, release_counter, version, state, artifact_name, custom_json, artifact_length, artifact_sha256, artifact_sha512, proposal_body, proposal_version, created_by, created_at, updated_at';

export class ReleaseService {
  readonly #ctx: ServiceContext;
  readonly #repository: ImageRepository;
  readonly #artifacts: ArtifactStore;
  readonly #crypto: TufCrypto;
  readonly #artifactBytesMax: number;
  readonly #targetsBytesMax: number;

  constructor(options: { context: ServiceContext; repository: ImageRepository; artifacts: ArtifactStore; crypto: TufCrypto; artifactBytesMax?: number; targetsBytesMax?: number }) {
    this.#ctx = options.context;
    this.#repository = options.repository;
    this.#artifacts = options.artifacts;
    this.#crypto = options.crypto;
    this.#artifactBytesMax = options.artifactBytesMax ?? releaseLimits.artifactBytesMax;
    this.#targetsBytesMax = options.targetsBytesMax ?? releaseLimits.targetsBytesMax;
  }

  get artifactBytesMax(): number {
    return this.#artifactBytesMax;
  }

  /** A draft with the next release counter; its custom data is checked as devices will check it. */
  async create(input: CreateReleaseInput, actor: string): Promise<ReleaseView> {
    if (!artifactNamePattern.test(input.artifact_name)) throw new SdcError('API_VALIDATION', 'artifact_name must be 1-128 of A-Z a-z 0-9 . _ - (not starting with . _ -)');
    const nowMs = this.#ctx.clock.nowMs();
    await this.#ctx.db.transaction(async (tx) => {
      const [existing] = await tx.query<{ id: string }>('SELECT id FROM ota_releases WHERE id = ?', [input.id]);
      if (existing !== undefined) throw new SdcError('OTA_RELEASE_EXISTS', `release ${input.id} exists`, { releaseId: input.id });
      const [highest] = await tx.query<{ n: number | null }>('SELECT MAX(release_counter) AS n FROM ota_releases');
      const counter = Number(highest?.n ?? 0) + 1;
      const custom = customOf(input, counter);
      parseReleaseTarget(custom); // OTA_TARGET_CUSTOM_INVALID before anything is stored
      await tx.execute(`INSERT INTO ota_releases (id, release_counter, version, state, artifact_name, custom_json, created_by, created_at, updated_at)
        VALUES (?, ?, ?, 'draft', ?, ?, ?, ?, ?)`, [input.id, counter, input.version, input.artifact_name, encodeCanonical(custom), actor, nowMs, nowMs]);
      await this.#audit(tx, 'ota.release.created', actor, input.id, { release_counter: counter, version: input.version });
    }).catch((error: unknown) => {
      if (SdcError.is(error, 'STORE_UNIQUE_VIOLATION')) throw new SdcError('OTA_RELEASE_EXISTS', `release ${input.id} (or its counter) was created meanwhile; retry`, { releaseId: input.id });
      throw error;
    });
    await this.#ctx.settleAudit();
    return this.get(input.id);
  }

  async get(id: string): Promise<ReleaseView> {
    return this.#view(await this.#row(this.#ctx.db, id));
  }

  /** Newest (highest counter) first. */
  async list(limit: number = releaseLimits.listMax): Promise<ReleaseView[]> {
    const rows = await this.#ctx.db.query<ReleaseRow>(`SELECT ${columns} FROM ota_releases ORDER BY release_counter DESC LIMIT ?`, [Math.min(limit, releaseLimits.listMax)]);
    return Promise.all(rows.map((row) => this.#view(row)));
  }

  /**
   * Stores the artifact and checks it against the declared SHA-256 (and length, when given): a
   * match is `verified`; anything else leaves the release in `uploading` to try again
   * (OTA_UPLOAD_DIGEST_MISMATCH, OTA_UPLOAD_TOO_LARGE).
   */
  async upload(id: string, body: AsyncIterable<Uint8Array>, declared: { sha256: string; length?: number }, actor: string): Promise<ReleaseView> {
    if (!sha256Pattern.test(declared.sha256)) throw new SdcError('API_VALIDATION', 'the declared sha256 must be 64 lower-case hex digits');
    const row = await this.#row(this.#ctx.db, id);
    if (row.state === 'draft') await this.#move(this.#ctx.db, row, 'upload_start');
    else if (row.state !== 'uploading') refuseTransition(row.state, 'upload_start');
    let stored;
    try {
      stored = await this.#artifacts.put(body, { bytesMax: this.#artifactBytesMax });
    } catch (error) {
      await this.#uploadFailed(id, actor, error);
      throw error;
    }
    if (stored.sha256 !== declared.sha256 || (declared.length !== undefined && stored.length !== declared.length)) {
      const error = new SdcError('OTA_UPLOAD_DIGEST_MISMATCH', `received ${stored.length} bytes with sha256 ${stored.sha256}; declared ${declared.length ?? '(any length)'} bytes with sha256 ${declared.sha256}`,
        { received_sha256: stored.sha256, received_length: stored.length });
      await this.#uploadFailed(id, actor, error);
      throw error;
    }
    await this.#ctx.db.transaction(async (tx) => {
      const current = await this.#row(tx, id);
      await this.#move(tx, current, 'upload_verified', {
        sets: 'artifact_length = ?, artifact_sha256 = ?, artifact_sha512 = ?', params: [stored.length, stored.sha256, stored.sha512],
      });
      await this.#audit(tx, 'ota.release.uploaded', actor, id, { length: stored.length, sha256: stored.sha256 });
    });
    await this.#ctx.settleAudit();
    return this.get(id);
  }

  /**
   * A presigned PUT for the release's artifact, straight to the blob store (the bytes never pass
   * through the API): valid `expiresInSeconds`, for exactly `declared.length` bytes (the length is
   * in the signature, so the store refuses any other). The release moves draft → uploading; it
   * leaves `uploading` only through completeUpload, which checks what arrived.
   */
  async presignUpload(id: string, declared: { sha256: string; length: number }, actor: string, expiresInSeconds: number): Promise<PresignedUpload> {
    const pending = this.#artifacts.pendingUploads;
    if (pending === undefined) throw new SdcError('OTA_PRESIGN_INVALID', 'this control plane\'s artifact store takes no presigned uploads: PUT /v1/releases/{id}/artifact');
    checkDeclared(declared, this.#artifactBytesMax);
    const row = await this.#row(this.#ctx.db, id);
    if (row.state !== 'draft' && row.state !== 'uploading') refuseTransition(row.state, 'upload_start');
    // Expired URLs free their places before the caps count them (a failure leaves them counted until the periodic sweep).
    await this.sweepExpiredUploads().catch((error: unknown) => this.#ctx.logger.warn({ err: error }, 'sweeping expired release uploads failed'));
    const url = await pending.presignPut(pendingUploadName(id, declared), declared.length, expiresInSeconds);
    // Taken after signing, so the recorded expiry is never before the URL's own.
    const expiresAtMs = this.#ctx.clock.nowMs() + expiresInSeconds * 1000;
    await this.#ctx.db.transaction(async (tx) => {
      const current = await this.#row(tx, id, { lock: true });
      if (current.state !== 'draft' && current.state !== 'uploading') refuseTransition(current.state, 'upload_start');
      await this.#recordPendingUpload(tx, id, declared, expiresAtMs, actor);
      if (current.state === 'draft') await this.#move(tx, current, 'upload_start');
      await this.#audit(tx, 'ota.release.upload_url_issued', actor, id, { sha256: declared.sha256, length: declared.length, expires_in_seconds: expiresInSeconds });
    });
    await this.#ctx.settleAudit();
    return { method: 'PUT', url, headers: { 'content-length': String(declared.length) }, expires_at_ms: expiresAtMs };
  }

  /**
   * The periodic pass (and the first step of every presign): deletes each pending upload object
   * whose URL expired uploadSweepGraceMs ago, then its row. Completed or not: completion deletes
   * the object, but a PUT to the still valid URL writes it again, and only now can none follow.
   * Each row is claimed before its object is deleted (its expiry moved, on the value read): a row
   * asked for again since it was read (a fresh URL, perhaps a fresh upload already PUT) or claimed
   * by another pass is left alone. The row goes only if its expiry is still the claim's.
   * Returns how many were deleted; a failed deletion keeps its row, due again after the claim.
   */
  async sweepExpiredUploads(): Promise<number> {
    const pending = this.#artifacts.pendingUploads;
    if (pending === undefined) return 0;
    const nowMs = this.#ctx.clock.nowMs();
    const due = await this.#ctx.db.query<PendingUploadRow>(
      'SELECT release_id, artifact_sha256, artifact_length, expires_at FROM ota_release_uploads WHERE expires_at <= ? ORDER BY expires_at LIMIT ?',
      [nowMs - releaseLimits.uploadSweepGraceMs, releaseLimits.uploadSweepBatchMax]);
    // Due again uploadSweepClaimMs from now; still in the past (the claim is shorter than the
    // grace), so a presign of the same artifact meanwhile always moves it (to its new URL's expiry).
    const claimedExpiresAtMs = nowMs - releaseLimits.uploadSweepGraceMs + releaseLimits.uploadSweepClaimMs;
    let deleted = 0;
    let failure: unknown;
    for (const row of due) {
      const key = [row.release_id, row.artifact_sha256, Number(row.artifact_length)];
      try {
        const claim = await this.#ctx.db.execute('UPDATE ota_release_uploads SET expires_at = ? WHERE release_id = ? AND artifact_sha256 = ? AND artifact_length = ? AND expires_at = ?',
          [claimedExpiresAtMs, ...key, Number(row.expires_at)]);
        if (claim.changes !== 1) continue;
        await pending.delete(pendingUploadName(row.release_id, { sha256: row.artifact_sha256, length: Number(row.artifact_length) }));
        await this.#ctx.db.execute('DELETE FROM ota_release_uploads WHERE release_id = ? AND artifact_sha256 = ? AND artifact_length = ? AND expires_at = ?',
          [...key, claimedExpiresAtMs]);
        deleted += 1;
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
    return deleted;
  }

  /**
   * Inside the presign's transaction, with the release row locked (so one release's count is
   * exact across control planes; an operator's and the total can pass their caps by one per
   * control plane presigning at the same instant): the same declared artifact again only extends
   * its row's expiry, a new one needs a free place under the release's, the operator's and the
   * total cap (OTA_UPLOAD_URLS_LIMIT, with when the first one frees).
   */
  async #recordPendingUpload(tx: SqlExecutor, id: string, declared: { sha256: string; length: number }, expiresAtMs: number, actor: string): Promise<void> {
    const held = await tx.query<PendingUploadRow>(
      `SELECT release_id, artifact_sha256, artifact_length, expires_at FROM ota_release_uploads WHERE release_id = ?${tx.dialect === 'mysql' ? ' FOR UPDATE' : ''}`, [id]);
    const same = held.find((row) => row.artifact_sha256 === declared.sha256 && Number(row.artifact_length) === declared.length);
    if (same !== undefined) {
      await tx.execute('UPDATE ota_release_uploads SET expires_at = ? WHERE release_id = ? AND artifact_sha256 = ? AND artifact_length = ?',
        [Math.max(Number(same.expires_at), expiresAtMs), id, declared.sha256, declared.length]);
      return;
    }
    const perRelease = releaseLimits.uploadUrlsPerReleaseMax;
    const nowMs = this.#ctx.clock.nowMs();
    if (held.length >= perRelease) throw uploadUrlsLimit(`release ${id} holds ${held.length} upload URLs, the most one release may hold`, 'release', perRelease, held, nowMs);
    const [mine] = await tx.query<{ n: number; first: number | null }>('SELECT COUNT(*) AS n, MIN(expires_at) AS first FROM ota_release_uploads WHERE created_by = ?', [actor]);
    const perActor = releaseLimits.uploadUrlsPerActorMax;
    if (Number(mine?.n ?? 0) >= perActor) {
      throw uploadUrlsLimit(`${actor} holds ${Number(mine?.n)} upload URLs, the most one operator may hold`, 'actor', perActor, [{ expires_at: Number(mine?.first) }], nowMs);
    }
    const [all] = await tx.query<{ n: number; first: number | null }>('SELECT COUNT(*) AS n, MIN(expires_at) AS first FROM ota_release_uploads');
    const total = Number(all?.n ?? 0);
    if (total >= releaseLimits.uploadUrlsMax) {
      throw uploadUrlsLimit(`all releases together hold ${total} upload URLs, the most this control plane hands out`, 'all', releaseLimits.uploadUrlsMax, [{ expires_at: Number(all?.first) }], nowMs);
    }
    await tx.execute('INSERT INTO ota_release_uploads (release_id, artifact_sha256, artifact_length, expires_at, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      [id, declared.sha256, declared.length, expiresAtMs, actor, nowMs]);
  }

  /**
   * After the presigned PUT: the pending object is read and checked against the same declared
   * length and SHA-256 (upload: a match is `verified`, anything else stays `uploading` with
   * OTA_UPLOAD_DIGEST_MISMATCH), then removed either way.
   */
  async completeUpload(id: string, declared: { sha256: string; length: number }, actor: string): Promise<ReleaseView> {
    const pending = this.#artifacts.pendingUploads;
    if (pending === undefined) throw new SdcError('OTA_PRESIGN_INVALID', 'this control plane\'s artifact store takes no presigned uploads');
    checkDeclared(declared, this.#artifactBytesMax);
    const name = pendingUploadName(id, declared);
    const body = await pending.open(name);
    if (body === undefined) {
      throw new SdcError('OTA_UPLOAD_DIGEST_MISMATCH', `nothing was uploaded for release ${id} with ${declared.length} bytes and sha256 ${declared.sha256}: PUT it to the presigned URL first`, { releaseId: id });
    }
    try {
      return await this.upload(id, body, declared, actor);
    } finally {
      await pending.delete(name).catch(() => undefined);
    }
  }

  /**
   * The targets metadata release signers sign for this release: every published release plus
   * this one, at the next targets version. Built once and kept while it is current; targets
   * versions are signed one at a time (OTA_TARGETS_PROPOSAL_OPEN while another release's is open).
   * Revoked releases are left out, which is how a revocation reaches the targets role.
   */
  async proposal(id: string): Promise<TargetsProposal> {
    const root = await this.#repository.root();
    const proposal = await this.#ctx.db.transaction(async (tx) => {
      const row = await this.#row(tx, id);
      if (row.state !== 'verified' && row.state !== 'signed') refuseTransition(row.state, 'sign');
      const nextVersion = await this.#repository.nextTargetsVersion(tx);
      if (row.proposal_body !== null && Number(row.proposal_version) === nextVersion) return { body: row.proposal_body, version: nextVersion };
      // A signed release whose proposal was dropped by a revocation (see revoke) is signed again from a new proposal.
      if (row.state === 'signed' && row.proposal_body !== null) throw new SdcError('OTA_TARGETS_STALE', `release ${id} was signed as targets version ${row.proposal_version}; the next is ${nextVersion}: revoke it and create a new release`);
      const [open] = await tx.query<{ id: string }>(
        "SELECT id FROM ota_releases WHERE id <> ? AND proposal_body IS NOT NULL AND state IN ('verified', 'signed') LIMIT 1", [id]);
      if (open !== undefined) throw new SdcError('OTA_TARGETS_PROPOSAL_OPEN', `release ${open.id} is being signed; publish or revoke it first`, { releaseId: open.id });
      const published = await tx.query<ReleaseRow>(`SELECT ${columns} FROM ota_releases WHERE state = 'published' ORDER BY release_counter ASC`);
      const signed = targetsSigned({
        version: nextVersion, expiresMs: this.#ctx.clock.nowMs() + releaseLimits.targetsLifetimeMs, targets: [...published, row].map(targetEntry),
      });
      const body = encodeCanonical(signed);
      if (body.length > this.#targetsBytesMax) {
        throw new SdcError('OTA_TARGETS_TOO_LARGE', `targets version ${nextVersion} would be ${body.length} characters, over ${this.#targetsBytesMax}: revoke old releases first`, { published: published.length });
      }
      await tx.execute('DELETE FROM ota_release_signatures WHERE release_id = ?', [id]);
      if (row.state === 'signed') await this.#move(tx, row, 'resign');
      await tx.execute('UPDATE ota_releases SET proposal_body = ?, proposal_version = ?, updated_at = ? WHERE id = ? AND state = ?', [body, nextVersion, this.#ctx.clock.nowMs(), id, 'verified']);
      return { body, version: nextVersion };
    });
    return { release_id: id, targets_version: proposal.version, signed_canonical: proposal.body, keyids: root.roles.targets.keyids, threshold: root.roles.targets.threshold };
  }

  /**
   * One release signer's signature over the current proposal: it must be a valid Ed25519
   * signature by a targets key of the current root (OTA_RELEASE_SIGNATURE_INVALID otherwise).
   * The same key again replaces its earlier signature; a threshold of keys makes the release `signed`.
   */
  async addSignature(id: string, signature: { keyid: string; sig: string }, actor: string): Promise<ReleaseView> {
    const root = await this.#repository.root();
    const keyids = root.roles.targets.keyids;
    await this.#ctx.db.transaction(async (tx) => {
      const row = await this.#row(tx, id);
      if (row.state !== 'verified' && row.state !== 'signed') refuseTransition(row.state, 'sign');
      if (row.proposal_body === null || Number(row.proposal_version) !== await this.#repository.nextTargetsVersion(tx)) {
        throw new SdcError('OTA_TARGETS_STALE', `release ${id} has no current targets proposal: fetch it again (GET /v1/releases/${id}/targets-proposal) and sign that`);
      }
      const key = root.keys.get(signature.keyid);
      const valid = key !== undefined && keyids.includes(signature.keyid) && signaturePattern.test(signature.sig)
        && this.#crypto.verify(key, new TextEncoder().encode(row.proposal_body), Buffer.from(signature.sig, 'hex'));
      if (!valid) throw new SdcError('OTA_RELEASE_SIGNATURE_INVALID', `not a valid signature of targets version ${row.proposal_version} by a targets key of root version ${root.version}`, { keyid: signature.keyid });
      const nowMs = this.#ctx.clock.nowMs();
      await tx.execute('DELETE FROM ota_release_signatures WHERE release_id = ? AND keyid = ?', [id, signature.keyid]);
      await tx.execute('INSERT INTO ota_release_signatures (release_id, keyid, sig, signed_by, created_at) VALUES (?, ?, ?, ?, ?)', [id, signature.keyid, signature.sig, actor, nowMs]);
      const { keys: count, people } = signerCounts(await this.#signatures(tx, id), keyids);
      await this.#audit(tx, 'ota.release.signature_added', actor, id, {
        keyid: signature.keyid, targets_version: Number(row.proposal_version), valid_signatures: count, signers: people, threshold: root.roles.targets.threshold,
      });
      if (row.state === 'verified' && Math.min(count, people) >= root.roles.targets.threshold) await this.#move(tx, row, 'sign');
    });
    await this.#ctx.settleAudit();
    return this.get(id);
  }

  /**
   * Publishes a signed release: its targets file (with the collected signatures, checked against
   * the threshold once more), a new snapshot and a new timestamp, and the state, in one transaction.
   */
  async publish(id: string, actor: string): Promise<ReleaseView> {
    const root = await this.#repository.root();
    const marks = await this.#ctx.db.transaction(async (tx) => {
      const row = await this.#row(tx, id);
      if (row.state === 'verified') {
        const { keys: count, people } = signerCounts(await this.#signatures(tx, id), root.roles.targets.keyids);
        throw new SdcError('OTA_RELEASE_UNDER_THRESHOLD',
          `release ${id} has ${count} release-signer signature(s) sent by ${people} user(s); the threshold is ${root.roles.targets.threshold} keys sent by as many users`,
          { valid: count, signers: people, threshold: root.roles.targets.threshold });
      }
      if (row.state !== 'signed') refuseTransition(row.state, 'publish');
      await this.#checkProposalCurrent(tx, row);
      // Checked at create too; again here so no release the kernel cannot label is ever published (a row from an older control plane).
      parseReleaseTarget(parseTufJson(new TextEncoder().encode(row.custom_json)));
      const body = envelopeText(parseTufJson(new TextEncoder().encode(row.proposal_body ?? '')) as TufJsonObject, await this.#signatures(tx, id));
      const envelope = parseMetadata(new TextEncoder().encode(body), 'targets');
      try {
        verifyThreshold({ roleName: 'targets', role: root.roles.targets, keys: root.keys, envelope, crypto: this.#crypto });
      } catch (error) {
        if (SdcError.is(error, 'TUF_SIGNATURE_THRESHOLD')) throw new SdcError('OTA_RELEASE_UNDER_THRESHOLD', error.message, error.details);
        throw error;
      }
      // The state changes only if the proposal checked above is still the row's (a locking write, so
      // on MySQL it sees a revocation committed since this transaction's snapshot, which dropped the
      // proposal: the reads above would still show it). First, so nothing is written for a stale one.
      await this.#move(tx, row, 'publish', undefined, {
        where: 'proposal_version = ? AND proposal_body = ?', params: [Number(row.proposal_version), row.proposal_body ?? ''],
        refusal: () => new SdcError('OTA_TARGETS_STALE',
          `release ${id} changed while it was being published (its signed targets proposal was dropped by a revocation, or replaced): read it again and, if it is still signed, fetch its proposal (GET /v1/releases/${id}/targets-proposal) and sign that`,
          { releaseId: id }),
      });
      await this.#repository.insertTargets(tx, { version: envelope.signed.version, body, expiresAtMs: envelope.signed.expiresMs });
      const published = await this.#repository.signSnapshotAndTimestamp(tx);
      await this.#audit(tx, 'ota.release.published', actor, id, { targets_version: envelope.signed.version, snapshot_version: published.snapshot ?? null, timestamp_version: published.timestamp ?? null });
      return published;
    });
    await this.#repository.published(marks);
    await this.#ctx.settleAudit();
    return this.get(id);
  }

  /**
   * Withdraws a release from any state but revoked. No rollout may use it from now on, its
   * artifact is no longer served, and the next targets version leaves it out; an open proposal
   * of its own is dropped.
   */
  async revoke(id: string, actor: string, reason: string): Promise<ReleaseView> {
    await this.#ctx.db.transaction(async (tx) => {
      const row = await this.#row(tx, id);
      await this.#move(tx, row, 'revoke', { sets: 'proposal_body = NULL, proposal_version = NULL', params: [] });
      await tx.execute('DELETE FROM ota_release_signatures WHERE release_id = ?', [id]);
      await this.#audit(tx, 'ota.release.revoked', actor, id, { from: row.state, reason });
      // Another release's open proposal lists every published release, this one too: signed as it
      // is, it would bring the revoked release back. Drop it and its signatures; publishing it is
      // refused (OTA_TARGETS_STALE) until signers sign a new proposal.
      if (row.state === 'published') {
        const open = await tx.query<{ id: string; state: ReleaseState; proposal_version: number }>(
          "SELECT id, state, proposal_version FROM ota_releases WHERE id <> ? AND proposal_body IS NOT NULL AND state IN ('verified', 'signed')", [id]);
        for (const other of open) {
          const dropped = await tx.execute('UPDATE ota_releases SET proposal_body = NULL, proposal_version = NULL, updated_at = ? WHERE id = ? AND state = ?', [this.#ctx.clock.nowMs(), other.id, other.state]);
          // Published meanwhile (MySQL: after this transaction's snapshot): that targets version was out before this revocation.
          if (dropped.changes !== 1) continue;
          await tx.execute('DELETE FROM ota_release_signatures WHERE release_id = ?', [other.id]);
          await this.#audit(tx, 'ota.release.proposal_dropped', actor, other.id, { revoked: id, state: other.state, targets_version: Number(other.proposal_version) });
        }
      }
    });
    await this.#ctx.settleAudit();
    return this.get(id);
  }

  /** A published release's artifact by its consistent-snapshot file name `<sha256>.<artifact name>`; undefined otherwise. */
  async publishedArtifact(id: string, fileName: string): Promise<{ stream: AsyncIterable<Uint8Array> & NodeJS.ReadableStream; length: number } | undefined> {
    const [row] = await this.#ctx.db.query<ReleaseRow>(`SELECT ${columns} FROM ota_releases WHERE id = ?`, [id]);
    if (row === undefined || row.state !== 'published' || row.artifact_sha256 === null) return undefined;
    if (fileName !== `${row.artifact_sha256}.${row.artifact_name}`) return undefined;
    return this.#artifacts.open(row.artifact_sha256);
  }

  /**
   * A presigned GET URL of a stored artifact by its SHA-256, for a device's OTA notice: bound to
   * GET and this one object, living `expiresInSeconds` (60..3600). Undefined when the artifact
   * store cannot presign (the file adapter of tests) or holds no such artifact.
   */
  async presignArtifact(sha256: string, expiresInSeconds: number): Promise<string | undefined> {
    return this.#artifacts.presignGet?.(sha256, expiresInSeconds);
  }

  async #uploadFailed(id: string, actor: string, error: unknown): Promise<void> {
    const code = SdcError.is(error) ? error.code : 'upload_interrupted';
    await this.#ctx.db.transaction(async (tx) => {
      const row = await this.#row(tx, id);
      if (row.state === 'uploading') await this.#move(tx, row, 'upload_failed');
      await this.#audit(tx, 'ota.release.upload_failed', actor, id, { code });
    });
    await this.#ctx.settleAudit();
  }

  /**
   * Publishing signs nothing new, so the signed proposal must still be exactly the next targets
   * version listing every published release plus this one (OTA_TARGETS_STALE otherwise): a
   * proposal built before a revocation would otherwise bring the revoked release back.
   */
  async #checkProposalCurrent(tx: SqlExecutor, row: ReleaseRow): Promise<void> {
    const nextVersion = await this.#repository.nextTargetsVersion(tx);
    const refuse = (why: string): never => {
      throw new SdcError('OTA_TARGETS_STALE', `release ${row.id}'s signed targets proposal ${why}: fetch it again (GET /v1/releases/${row.id}/targets-proposal) and sign that`, { releaseId: row.id });
    };
    if (row.proposal_body === null) refuse('was dropped (a published release was revoked)');
    if (Number(row.proposal_version) !== nextVersion) refuse(`is targets version ${row.proposal_version}, the next is ${nextVersion}`);
    const signed = parseTufJson(new TextEncoder().encode(row.proposal_body ?? '')) as TufJsonObject;
    const listed = Object.keys((signed['targets'] ?? {}) as TufJsonObject).sort();
    const published = await tx.query<ReleaseRow>(`SELECT ${columns} FROM ota_releases WHERE state = 'published'`);
    const expected = [...published, row].map((release) => `${release.id}/${release.artifact_name}`).sort();
    if (listed.length !== expected.length || listed.some((path, index) => path !== expected[index])) refuse('does not list exactly the published releases and this one');
  }

  /** `lock`: a locking read on MySQL (SQLite runs one transaction at a time). */
  async #row(executor: SqlExecutor, id: string, options: { lock?: boolean } = {}): Promise<ReleaseRow> {
    const locking = options.lock === true && executor.dialect === 'mysql' ? ' FOR UPDATE' : '';
    const [row] = await executor.query<ReleaseRow>(`SELECT ${columns} FROM ota_releases WHERE id = ?${locking}`, [id]);
    if (row === undefined) throw new SdcError('OTA_RELEASE_NOT_FOUND', `no release ${id}`, { releaseId: id });
    return row;
  }

  async #signatures(executor: SqlExecutor, id: string): Promise<Array<{ keyid: string; sig: string; signed_by: string }>> {
    return executor.query('SELECT keyid, sig, signed_by FROM ota_release_signatures WHERE release_id = ? ORDER BY keyid ASC', [id]);
  }

  /**
   * The release machine's transition, stored only if nobody changed the state meanwhile (and, with
   * `guard`, its further conditions still hold; its `refusal` then, OTA_RELEASE_STATE otherwise).
   */
  async #move(executor: SqlExecutor, row: ReleaseRow, event: ReleaseEvent, extra?: { sets: string; params: ReadonlyArray<string | number | null> },
    guard?: { where: string; params: ReadonlyArray<string | number>; refusal: () => SdcError }): Promise<void> {
    const next = nextState(releaseTable, row.state, event) ?? refuseTransition(row.state, event);
    const sets = extra === undefined ? '' : `, ${extra.sets}`;
    const where = guard === undefined ? '' : ` AND ${guard.where}`;
    const result = await executor.execute(`UPDATE ota_releases SET state = ?, updated_at = ?${sets} WHERE id = ? AND state = ?${where}`,
      [next, this.#ctx.clock.nowMs(), ...(extra?.params ?? []), row.id, row.state, ...(guard?.params ?? [])]);
    if (result.changes !== 1) throw guard?.refusal() ?? new SdcError('OTA_RELEASE_STATE', `release ${row.id} changed meanwhile; read it again`, { releaseId: row.id });
  }

  async #audit(tx: SqlExecutor, kind: string, actor: string, id: string, payload: JsonObject): Promise<void> {
    await this.#ctx.audit.record(tx, { kind, actor, subject: `release:${id}`, payload });
  }

  async #view(row: ReleaseRow): Promise<ReleaseView> {
    const signatures = await this.#signatures(this.#ctx.db, row.id);
    return {
      id: row.id, release_counter: Number(row.release_counter), version: row.version, state: row.state, target_path: `${row.id}/${row.artifact_name}`,
      custom: JSON.parse(row.custom_json) as JsonObject,
      artifact: row.artifact_sha256 === null ? null : { length: Number(row.artifact_length), sha256: row.artifact_sha256, sha512: row.artifact_sha512 ?? '' },
      proposal_version: row.proposal_version === null ? null : Number(row.proposal_version),
      signatures: signatures.map(({ keyid, signed_by }) => ({ keyid, signed_by })),
      created_by: row.created_by, created_at_ms: Number(row.created_at), updated_at_ms: Number(row.updated_at),
    };
  }
}

export interface PresignedUpload {
  readonly method: 'PUT';
  readonly url: string;
  /** Send exactly these (the length is signed). */
  readonly headers: { readonly 'content-length': string };
  readonly expires_at_ms: number;
}

function checkDeclared(declared: { sha256: string; length: number }, bytesMax: number): void {
  if (!sha256Pattern.test(declared.sha256)) throw new SdcError('API_VALIDATION', 'the declared sha256 must be 64 lower-case hex digits');
  if (!Number.isSafeInteger(declared.length) || declared.length < 1) throw new SdcError('API_VALIDATION', 'the declared length must be a positive integer');
  if (declared.length > bytesMax) throw new SdcError('OTA_UPLOAD_TOO_LARGE', `the artifact exceeds ${bytesMax} bytes`, { bytesMax });
}

interface PendingUploadRow { release_id: string; artifact_sha256: string; artifact_length: number; expires_at: number }

/** OTA_UPLOAD_URLS_LIMIT: the earliest held URL's object is swept and its place freed at `retryAtMs` (the answer's Retry-After). */
function uploadUrlsLimit(why: string, scope: 'release' | 'actor' | 'all', max: number, held: ReadonlyArray<{ expires_at: number }>, nowMs: number): SdcError {
  const retryAtMs = Math.min(...held.map((row) => Number(row.expires_at))) + releaseLimits.uploadSweepGraceMs;
  return new SdcError('OTA_UPLOAD_URLS_LIMIT',
    `${why} (${max}); each place frees ${releaseLimits.uploadSweepGraceMs / 60_000} minutes after its URL expires: retry after ${new Date(retryAtMs).toISOString()}`,
    { scope, max, retryAtMs, retryAfterS: Math.max(1, Math.ceil((retryAtMs - nowMs) / 1000)) });
}

/** One pending object per release and declared artifact: asking again for the same upload overwrites it, never another's. */
function pendingUploadName(id: string, declared: { sha256: string; length: number }): string {
  return `${id}/${declared.sha256}-${declared.length}`;
}

/**
 * Valid keys and the distinct users who sent them. The threshold counts both: a threshold of keys
 * sent by one account is still one person, so an operator holding two key files cannot publish alone.
 */
function signerCounts(signatures: ReadonlyArray<{ keyid: string; signed_by: string }>, keyids: readonly string[]): { keys: number; people: number } {
  const valid = signatures.filter((stored) => keyids.includes(stored.keyid));
  return { keys: valid.length, people: new Set(valid.map((stored) => stored.signed_by)).size };
}

function refuseTransition(state: ReleaseState, event: ReleaseEvent): never {
  if (state === 'revoked') throw new SdcError('OTA_RELEASE_REVOKED', 'the release was revoked');
  throw new SdcError('OTA_RELEASE_STATE', `a release in state ${state} cannot ${event.replace('_', ' ')}`, { state, event });
}

function customOf(input: CreateReleaseInput, counter: number): TufJsonObject {
  return {
    sdc: {
      release_id: input.id, version: input.version, release_counter: counter, platforms: [...input.platforms],
      min_agent_version: input.min_agent_version, reboot_required: input.reboot_required,
      health_check: { timeout_ms: input.health_check.timeout_ms, probes: [...input.health_check.probes] },
    },
  };
}

function targetEntry(row: ReleaseRow): TargetEntry {
  if (row.artifact_sha256 === null || row.artifact_sha512 === null || row.artifact_length === null) {
    throw new SdcError('OTA_RELEASE_STATE', `release ${row.id} has no verified artifact`);
  }
  return {
    path: `${row.id}/${row.artifact_name}`, length: Number(row.artifact_length), sha256: row.artifact_sha256, sha512: row.artifact_sha512,
    custom: parseTufJson(new TextEncoder().encode(row.custom_json)) as TufJsonObject,
  };
}
