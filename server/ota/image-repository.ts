import type { Logger } from 'pino';
import { SdcError } from '../../core/errors/index.js';
import type { Clock } from '../../core/ports/ports.js';
import type { TufCrypto } from '../../core/tuf/crypto-port.js';
import { parseMetadata, topLevelRoles, type Root, type TopLevelRole } from '../../core/tuf/metadata.js';
import { verifyThreshold } from '../../core/tuf/roles.js';
import type { SqlDatabase, SqlExecutor } from '../stores/sql/sql-port.js';
import type { HighWaterMarks, HighWaterStore } from './high-water.js';
import type { TufSigningKey } from './tuf-keys.js';
import { signEnvelope, snapshotSigned, timestampSigned } from './tuf-documents.js';

const dayMs = 86_400_000;

/**
 * How long the online roles' files are valid and when they are re-signed. Timestamp: valid two
 * days, re-signed once less than one is left (daily); snapshot: valid fourteen days, re-signed
 * once less than seven are left (weekly). A re-sign that keeps failing has a whole period left
 * before devices see expired metadata, and the alarm fires halfway through it.
 */
export interface OnlineRoleSchedule {
  readonly lifetimeMs: number;
  readonly resignBeforeMs: number;
}

export const defaultOnlineSchedules: Readonly<Record<'snapshot' | 'timestamp', OnlineRoleSchedule>> = {
  timestamp: { lifetimeMs: 2 * dayMs, resignBeforeMs: dayMs },
  snapshot: { lifetimeMs: 14 * dayMs, resignBeforeMs: 7 * dayMs },
};

/** People must act before an offline role (root, targets) expires: they are warned this long before. */
export const offlineExpiryWarningMs = 30 * dayMs;

export type RepositoryAlarmKind = 'tuf_role_expiring' | 'tuf_restored_backup' | 'tuf_resign_overdue';

export interface RepositoryAlarm {
  readonly kind: RepositoryAlarmKind;
  readonly role: TopLevelRole;
  readonly version: number;
  readonly message: string;
  readonly expiresAtMs?: number;
  readonly highWater?: number;
}

export interface StoredMetadata {
  readonly role: TopLevelRole;
  readonly version: number;
  readonly body: string;
  readonly expiresAtMs: number;
}

export interface ImageRepositoryOptions {
  readonly db: SqlDatabase;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly crypto: TufCrypto;
  readonly highWater: HighWaterStore;
  readonly onlineKeys: { readonly snapshot: TufSigningKey; readonly timestamp: TufSigningKey };
  /** Raises an alert and an audit entry (the control plane's alert service); the log line is written here. */
  readonly raiseAlarm: (alarm: RepositoryAlarm) => Promise<void>;
  readonly schedules?: Partial<typeof defaultOnlineSchedules>;
}

interface MetadataRow { role: string; version: number; body: string; expires_at: number }

/** The alarms raised, so each fires once per role version and process; bounded (four roles, a few versions). */
const alarmMemoryMax = 256;

/**
 * The image repository (TUF, specification section 4): root and targets are signed offline by
 * people (imported or collected by the release service), snapshot and timestamp online by this
 * control plane with keys from its data directory. Every file ever published is a row of
 * `tuf_metadata` keyed by role and version; consistent snapshots, so clients fetch
 * `N.snapshot.json` and `N.targets.json` by version and only `timestamp.json` by name.
 *
 * Versions never go backwards: each new file takes max(highest in SQL, high-water mark) + 1, a
 * unique key refuses two files of one version, and the high-water mark outside the database
 * (high-water.ts) is raised after each commit, so a restored database is detected and never served.
 */
export class ImageRepository {
  readonly #options: ImageRepositoryOptions;
  readonly #schedules: typeof defaultOnlineSchedules;
  readonly #alarmed = new Set<string>();

  constructor(options: ImageRepositoryOptions) {
    this.#options = options;
    this.#schedules = { ...defaultOnlineSchedules, ...options.schedules };
  }

  /**
   * Stores the first root and targets (from `sdc ota init`) when the database holds no root yet.
   * Each must be signed by a threshold of the keys root gives its role. Returns false when a root
   * was already stored (nothing is changed: the files are only a bootstrap).
   */
  async importInitial(files: { root: string; targets: string }): Promise<boolean> {
    const encoder = new TextEncoder();
    const root = parseMetadata(encoder.encode(files.root), 'root');
    verifyThreshold({ roleName: 'root', role: root.signed.roles.root, keys: root.signed.keys, envelope: root, crypto: this.#options.crypto });
    const targets = parseMetadata(encoder.encode(files.targets), 'targets');
    verifyThreshold({ roleName: 'targets', role: root.signed.roles.targets, keys: root.signed.keys, envelope: targets, crypto: this.#options.crypto });
    if (!root.signed.consistentSnapshot) throw new SdcError('TUF_METADATA_INVALID', 'the repository serves consistent snapshots: root must set consistent_snapshot');
    return this.#options.db.transaction(async (tx) => {
      if (await this.#highest(tx, 'root') !== undefined) return false;
      await this.#insert(tx, { role: 'root', version: root.signed.version, body: files.root, expiresAtMs: root.signed.expiresMs });
      await this.#insert(tx, { role: 'targets', version: targets.signed.version, body: files.targets, expiresAtMs: targets.signed.expiresMs });
      return true;
    }).then(async (imported) => {
      if (imported) await this.#options.highWater.raise({ root: root.signed.version, targets: targets.signed.version });
      return imported;
    });
  }

  /** The current root, parsed; OTA_REPOSITORY_NOT_INITIALISED before `importInitial`. */
  async root(executor: SqlExecutor = this.#options.db): Promise<Root> {
    const row = await this.#highest(executor, 'root');
    if (row === undefined) throw new SdcError('OTA_REPOSITORY_NOT_INITIALISED', 'no root metadata stored: run sdc ota init and restart the control plane');
    return parseMetadata(new TextEncoder().encode(row.body), 'root').signed;
  }

  /** Refuses to start signing with keys root does not list for their roles (a key file from another repository). */
  async checkOnlineKeys(): Promise<void> {
    const root = await this.root();
    for (const role of ['snapshot', 'timestamp'] as const) {
      const { keyid } = this.#options.onlineKeys[role];
      if (!root.roles[role].keyids.includes(keyid)) throw new SdcError('OTA_REPOSITORY_KEYS', `the ${role} key ${keyid} is not a ${role} key of root version ${root.version}`, { role, keyid });
      if (root.roles[role].threshold !== 1) throw new SdcError('OTA_REPOSITORY_KEYS', `root gives ${role} a threshold of ${root.roles[role].threshold}; the repository signs it with one online key`);
    }
  }

  /** The highest stored file of a role, or undefined. */
  async current(role: TopLevelRole, executor: SqlExecutor = this.#options.db): Promise<StoredMetadata | undefined> {
    return this.#highest(executor, role);
  }

  /**
   * The file a client asked for: `timestamp` by name (the current one), the others by version.
   * A file at or below the high-water mark of a role whose current version fell below it (a
   * restored backup) is never served: OTA_REPOSITORY_VERSION_ROLLBACK until it is re-signed.
   */
  async file(role: TopLevelRole, version?: number): Promise<StoredMetadata> {
    const marks = await this.#options.highWater.read();
    const row = version === undefined ? await this.#highest(this.#options.db, role) : await this.#at(role, version);
    if (row === undefined) throw new SdcError('OTA_REPOSITORY_NOT_FOUND', `no ${version === undefined ? '' : `${version}.`}${role}.json`, { role });
    if (version === undefined && row.version < marks[role]) {
      throw new SdcError('OTA_REPOSITORY_VERSION_ROLLBACK', `${role} version ${row.version} is below the highest ever published (${marks[role]}): the database was restored from a backup`, { role });
    }
    return row;
  }

  /** Inserts an offline-signed targets file at the next version inside the caller's transaction (release publishing). */
  async insertTargets(tx: SqlExecutor, file: { version: number; body: string; expiresAtMs: number }): Promise<void> {
    const next = await this.#nextVersion(tx, 'targets');
    if (file.version !== next) {
      throw new SdcError('OTA_TARGETS_STALE', `the signed targets is version ${file.version}, the next one is ${next}`, { version: file.version, next });
    }
    await this.#insert(tx, { role: 'targets', ...file });
  }

  /** The version the next targets file must have: above everything stored and ever published. */
  async nextTargetsVersion(executor: SqlExecutor = this.#options.db): Promise<number> {
    return this.#nextVersion(executor, 'targets');
  }

  /**
   * Signs a new snapshot (naming the current targets) and a new timestamp (naming it) in the
   * caller's transaction. Refuses (OTA_REPOSITORY_VERSION_ROLLBACK) when the current targets is
   * below the targets high-water mark: devices have seen a newer one, and only release signers
   * can sign a newer targets. Returns the versions written, for the high-water mark after commit.
   */
  async signSnapshotAndTimestamp(tx: SqlExecutor): Promise<Partial<HighWaterMarks>> {
    const marks = await this.#options.highWater.read();
    const targets = await this.#highest(tx, 'targets');
    if (targets === undefined) throw new SdcError('OTA_REPOSITORY_NOT_INITIALISED', 'no targets metadata stored: run sdc ota init');
    if (targets.version < marks.targets) {
      throw new SdcError('OTA_REPOSITORY_VERSION_ROLLBACK', `targets version ${targets.version} is below the highest ever published (${marks.targets}): release signers must sign a newer targets`, { role: 'targets' });
    }
    const nowMs = this.#options.clock.nowMs();
    const snapshotVersion = await this.#nextVersion(tx, 'snapshot');
    const snapshot = snapshotSigned({
      version: snapshotVersion, expiresMs: nowMs + this.#schedules.snapshot.lifetimeMs, targetsVersion: targets.version, targetsBytes: utf8(targets.body),
    });
    const snapshotBody = signEnvelope(snapshot, [this.#options.onlineKeys.snapshot]);
    await this.#insert(tx, { role: 'snapshot', version: snapshotVersion, body: snapshotBody, expiresAtMs: nowMs + this.#schedules.snapshot.lifetimeMs });
    const timestampVersion = await this.#signTimestamp(tx, { version: snapshotVersion, body: snapshotBody });
    return { targets: targets.version, snapshot: snapshotVersion, timestamp: timestampVersion };
  }

  /** Raises the high-water mark after a commit that published these versions. */
  async published(versions: Partial<HighWaterMarks>): Promise<void> {
    await this.#options.highWater.raise(versions);
  }

  /**
   * The periodic pass: a new snapshot when none exists, when it names an older targets, or when
   * less than its re-sign margin is left; otherwise a new timestamp when it is due or names an
   * older snapshot. Another control plane signing the same version first wins (the unique key);
   * this one then has nothing left to do. Returns the roles it signed.
   */
  async resignDue(): Promise<TopLevelRole[]> {
    // A restore is alarmed before the re-sign below skips past it (afterwards nothing would show it).
    if (await this.#belowHighWater()) await this.checkAlarms();
    const nowMs = this.#options.clock.nowMs();
    try {
      const result = await this.#options.db.transaction(async (tx) => {
        const [targets, snapshot, timestamp] = await Promise.all([this.#highest(tx, 'targets'), this.#highest(tx, 'snapshot'), this.#highest(tx, 'timestamp')]);
        if (targets === undefined) return { signed: [] as TopLevelRole[], marks: {} };
        const marks = await this.#options.highWater.read();
        const snapshotDue = snapshot === undefined || snapshot.version < marks.snapshot
          || snapshot.expiresAtMs - nowMs < this.#schedules.snapshot.resignBeforeMs || snapshotTargetsVersion(snapshot) !== targets.version;
        if (snapshotDue) return { signed: ['snapshot', 'timestamp'] as TopLevelRole[], marks: await this.signSnapshotAndTimestamp(tx) };
        const timestampDue = timestamp === undefined || timestamp.version < marks.timestamp
          || timestamp.expiresAtMs - nowMs < this.#schedules.timestamp.resignBeforeMs || timestampSnapshotVersion(timestamp) !== snapshot.version;
        if (!timestampDue) return { signed: [] as TopLevelRole[], marks: {} };
        return { signed: ['timestamp'] as TopLevelRole[], marks: { timestamp: await this.#signTimestamp(tx, snapshot) } };
      });
      await this.published(result.marks);
      if (result.signed.length > 0) this.#options.logger.info({ roles: result.signed, versions: result.marks }, 'TUF online roles re-signed');
      return result.signed;
    } catch (error) {
      if (SdcError.is(error, 'STORE_UNIQUE_VIOLATION')) {
        this.#options.logger.info('another control plane re-signed the TUF online roles first');
        return [];
      }
      throw error;
    }
  }

  /**
   * Alarms, each once per role version (and process): an offline role 30 days before it expires,
   * an online role whose re-signing is overdue (less than half its re-sign margin left), and a
   * role whose stored version is below its high-water mark (a restored backup). Each is logged
   * here and raised through `raiseAlarm` (an alert and its audit entry).
   */
  async checkAlarms(): Promise<RepositoryAlarm[]> {
    const nowMs = this.#options.clock.nowMs();
    const marks = await this.#options.highWater.read();
    const alarms: RepositoryAlarm[] = [];
    for (const role of topLevelRoles) {
      const row = await this.#highest(this.#options.db, role);
      if (row === undefined) continue;
      if (row.version < marks[role]) {
        alarms.push({
          kind: 'tuf_restored_backup', role, version: row.version, highWater: marks[role],
          message: `TUF ${role} version ${row.version} in the database is below the highest ever published (${marks[role]}): the database was restored from a backup; ${role === 'snapshot' || role === 'timestamp' ? 'the next re-sign skips past it' : 'release signers must sign a newer version'}`,
        });
      }
      const warnBeforeMs = role === 'snapshot' || role === 'timestamp' ? this.#schedules[role].resignBeforeMs / 2 : offlineExpiryWarningMs;
      if (row.expiresAtMs - nowMs <= warnBeforeMs) {
        const days = Math.floor((row.expiresAtMs - nowMs) / dayMs);
        alarms.push({
          kind: role === 'snapshot' || role === 'timestamp' ? 'tuf_resign_overdue' : 'tuf_role_expiring', role, version: row.version, expiresAtMs: row.expiresAtMs,
          message: row.expiresAtMs <= nowMs ? `TUF ${role} version ${row.version} has expired: devices refuse updates until it is re-signed`
            : `TUF ${role} version ${row.version} expires in ${days} day(s) (${new Date(row.expiresAtMs).toISOString()}); ${role === 'root' || role === 'targets' ? 'its key holders must sign a new version' : 'its automatic re-signing is failing'}`,
        });
      }
    }
    const fresh = alarms.filter((alarm) => this.#firstTime(`${alarm.kind}:${alarm.role}:${alarm.version}`));
    for (const alarm of fresh) {
      this.#options.logger.warn({ alarm: alarm.kind, role: alarm.role, version: alarm.version }, alarm.message);
      await this.#options.raiseAlarm(alarm);
    }
    return fresh;
  }

  async #belowHighWater(): Promise<boolean> {
    const marks = await this.#options.highWater.read();
    for (const role of topLevelRoles) {
      const row = await this.#highest(this.#options.db, role);
      if (row !== undefined && row.version < marks[role]) return true;
    }
    return false;
  }

  #firstTime(key: string): boolean {
    if (this.#alarmed.has(key)) return false;
    if (this.#alarmed.size >= alarmMemoryMax) this.#alarmed.clear();
    this.#alarmed.add(key);
    return true;
  }

  async #signTimestamp(tx: SqlExecutor, snapshot: { version: number; body: string }): Promise<number> {
    const nowMs = this.#options.clock.nowMs();
    const version = await this.#nextVersion(tx, 'timestamp');
    const expiresMs = nowMs + this.#schedules.timestamp.lifetimeMs;
    const body = signEnvelope(timestampSigned({ version, expiresMs, snapshotVersion: snapshot.version, snapshotBytes: utf8(snapshot.body) }), [this.#options.onlineKeys.timestamp]);
    await this.#insert(tx, { role: 'timestamp', version, body, expiresAtMs: expiresMs });
    return version;
  }

  async #nextVersion(executor: SqlExecutor, role: TopLevelRole): Promise<number> {
    const marks = await this.#options.highWater.read();
    const row = await this.#highest(executor, role);
    return Math.max(row?.version ?? 0, marks[role]) + 1;
  }

  async #highest(executor: SqlExecutor, role: TopLevelRole): Promise<StoredMetadata | undefined> {
    const [row] = await executor.query<MetadataRow>('SELECT role, version, body, expires_at FROM tuf_metadata WHERE role = ? ORDER BY version DESC LIMIT 1', [role]);
    return row === undefined ? undefined : stored(row);
  }

  async #at(role: TopLevelRole, version: number): Promise<StoredMetadata | undefined> {
    const [row] = await this.#options.db.query<MetadataRow>('SELECT role, version, body, expires_at FROM tuf_metadata WHERE role = ? AND version = ?', [role, version]);
    return row === undefined ? undefined : stored(row);
  }

  async #insert(tx: SqlExecutor, file: StoredMetadata): Promise<void> {
    const marks = await this.#options.highWater.read();
    if (file.version <= marks[file.role] && file.role !== 'root' && file.role !== 'targets') {
      throw new SdcError('OTA_REPOSITORY_VERSION_ROLLBACK', `refusing to sign ${file.role} version ${file.version}: version ${marks[file.role]} was already published`, { role: file.role });
    }
    await tx.execute('INSERT INTO tuf_metadata (role, version, body, expires_at, created_at) VALUES (?, ?, ?, ?, ?)',
      [file.role, file.version, file.body, file.expiresAtMs, this.#options.clock.nowMs()]);
  }
}

function stored(row: MetadataRow): StoredMetadata {
  return { role: row.role as TopLevelRole, version: Number(row.version), body: row.body, expiresAtMs: Number(row.expires_at) };
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function snapshotTargetsVersion(snapshot: StoredMetadata): number {
  return parseMetadata(utf8(snapshot.body), 'snapshot').signed.meta.get('targets.json')?.version ?? 0;
}

function timestampSnapshotVersion(timestamp: StoredMetadata): number {
  return parseMetadata(utf8(timestamp.body), 'timestamp').signed.snapshotMeta.version;
}
