import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { parseMetadata, type Root } from '../../core/tuf/metadata.js';
import { verifyThreshold } from '../../core/tuf/roles.js';
import { createNodeTufCrypto } from '../../runtime/tuf-crypto-node.js';
import { ManualClock } from '../control-plane/test-support.js';
import { controlPlaneMigration013 } from '../stores/sql/control-plane-migrations-013.js';
import { migrate } from '../stores/sql/migrate.js';
import { openSqlJsDatabase } from '../stores/sql/sqljs-database.js';
import type { SqlDatabase } from '../stores/sql/sql-port.js';
import { FileHighWaterStore, MemoryHighWaterStore, type HighWaterStore } from './high-water.js';
import { ImageRepository, type RepositoryAlarm } from './image-repository.js';
import { generateRepositoryKeys, initialMetadata, type RepositoryKeys } from './repository-init.js';
import { signEnvelope } from './tuf-documents.js';
import { createHash } from 'node:crypto';

const dayMs = 86_400_000;
const crypto = createNodeTufCrypto();
const keys = generateRepositoryKeys();
const directories: string[] = [];
const databases: SqlDatabase[] = [];

after(async () => {
  for (const db of databases) await db.close().catch(() => undefined);
  for (const dir of directories) await rm(dir, { recursive: true, force: true });
});

async function database(dir?: string): Promise<{ db: SqlDatabase; dir: string }> {
  const where = dir ?? await mkdtemp(join(tmpdir(), 'sdc-tuf-repo-'));
  if (dir === undefined) directories.push(where);
  const db = await openSqlJsDatabase({ dataDir: join(where, 'db'), fileName: 'sdc.sqlite' });
  databases.push(db);
  await migrate(db, [controlPlaneMigration013]);
  return { db, dir: where };
}

function repository(db: SqlDatabase, clock: ManualClock, highWater: HighWaterStore, alarms: RepositoryAlarm[] = [], repositoryKeys: RepositoryKeys = keys): ImageRepository {
  return new ImageRepository({
    db, clock, logger: pino({ level: 'silent' }), crypto, highWater,
    onlineKeys: { snapshot: repositoryKeys.snapshot.key, timestamp: repositoryKeys.timestamp.key },
    raiseAlarm: async (alarm) => { alarms.push(alarm); },
  });
}

const utf8 = (text: string) => new TextEncoder().encode(text);

/** Verifies a served file as a client would: parsed, and signed by a threshold of root's keys for its role. */
function verifyFile<R extends 'snapshot' | 'timestamp' | 'targets'>(root: Root, role: R, body: string) {
  const envelope = parseMetadata(utf8(body), role);
  verifyThreshold({ roleName: role, role: root.roles[role], keys: root.keys, envelope, crypto });
  return envelope.signed;
}

describe('ImageRepository', () => {
  it('imports root and targets only when signed by a threshold of their keys (2 of 3)', async () => {
    const { db } = await database();
    const clock = new ManualClock();
    const repo = repository(db, clock, new MemoryHighWaterStore());
    const metadata = initialMetadata(keys, clock.nowMs());
    const rootSignedOnce = JSON.parse(metadata.root) as { signed: never; signatures: unknown[] };
    const underThreshold = signEnvelope(rootSignedOnce.signed, [keys.root[0]!.key]);
    await assert.rejects(repo.importInitial({ root: underThreshold, targets: metadata.targets }), (error) => SdcError.is(error, 'TUF_SIGNATURE_THRESHOLD'));
    const targetsOnce = signEnvelope((JSON.parse(metadata.targets) as { signed: never }).signed, [keys.targets[2]!.key]);
    await assert.rejects(repo.importInitial({ root: metadata.root, targets: targetsOnce }), (error) => SdcError.is(error, 'TUF_SIGNATURE_THRESHOLD'));
    // Two of three root keys are enough.
    const rootTwice = signEnvelope(rootSignedOnce.signed, [keys.root[0]!.key, keys.root[2]!.key]);
    assert.equal(await repo.importInitial({ root: rootTwice, targets: metadata.targets }), true);
    assert.equal(await repo.importInitial({ root: metadata.root, targets: metadata.targets }), false, 'a second import changes nothing');
    const root = await repo.root();
    assert.equal(root.roles.root.threshold, 2);
    assert.equal(root.roles.targets.threshold, 2);
    assert.equal(root.roles.root.keyids.length, 3);
    assert.equal(root.consistentSnapshot, true);
  });

  it('signs snapshot and timestamp with the online keys, consistent: each names the exact version, length and hash of the file below it', async () => {
    const { db } = await database();
    const clock = new ManualClock();
    const repo = repository(db, clock, new MemoryHighWaterStore());
    await repo.importInitial(initialMetadata(keys, clock.nowMs()));
    await repo.checkOnlineKeys();
    assert.deepEqual(await repo.resignDue(), ['snapshot', 'timestamp']);
    const root = await repo.root();
    const timestamp = await repo.file('timestamp');
    const snapshotMeta = verifyFile(root, 'timestamp', timestamp.body).snapshotMeta;
    const snapshot = await repo.file('snapshot', snapshotMeta.version);
    assert.equal(snapshotMeta.length, utf8(snapshot.body).length);
    assert.equal(snapshotMeta.hashes?.['sha256'], createHash('sha256').update(snapshot.body).digest('hex'));
    const targetsMeta = verifyFile(root, 'snapshot', snapshot.body).meta.get('targets.json')!;
    const targets = await repo.file('targets', targetsMeta.version);
    assert.equal(targetsMeta.hashes?.['sha256'], createHash('sha256').update(targets.body).digest('hex'));
    verifyFile(root, 'targets', targets.body);
    await assert.rejects(repo.file('snapshot', 99), (error) => SdcError.is(error, 'OTA_REPOSITORY_NOT_FOUND'));
  });

  it('re-signs the timestamp daily and the snapshot weekly, on a virtual clock', async () => {
    const { db } = await database();
    const clock = new ManualClock();
    const repo = repository(db, clock, new MemoryHighWaterStore());
    await repo.importInitial(initialMetadata(keys, clock.nowMs()));
    await repo.resignDue();
    clock.advance(dayMs / 2);
    assert.deepEqual(await repo.resignDue(), [], 'the timestamp still has 1.5 of its 2 days');
    clock.advance(dayMs / 2 + 1000);
    assert.deepEqual(await repo.resignDue(), ['timestamp']);
    assert.equal((await repo.file('timestamp')).version, 2);
    assert.equal((await repo.current('snapshot'))?.version, 1);
    for (let day = 2; day <= 7; day++) {
      clock.advance(dayMs);
      await repo.resignDue();
    }
    assert.equal((await repo.current('snapshot'))?.version, 2, 'a week on, less than 7 of its 14 days left: re-signed');
    const timestamp = await repo.file('timestamp');
    assert.ok(timestamp.expiresAtMs > clock.nowMs() + dayMs, 'the timestamp served is always valid for more than a day');
    const root = await repo.root();
    assert.equal(verifyFile(root, 'timestamp', timestamp.body).snapshotMeta.version, 2);
  });

  it('keeps versions going up across a restart, and refuses to sign one a peer already took', async () => {
    const { db } = await database();
    const clock = new ManualClock();
    const highWater = new MemoryHighWaterStore();
    await repository(db, clock, highWater).importInitial(initialMetadata(keys, clock.nowMs()));
    await repository(db, clock, highWater).resignDue();
    clock.advance(2 * dayMs);
    const restarted = repository(db, clock, highWater);
    assert.deepEqual(await restarted.resignDue(), ['timestamp']);
    assert.equal((await restarted.file('timestamp')).version, 2);
    assert.equal((await highWater.read()).timestamp, 2);
    await assert.rejects(db.transaction((tx) => tx.execute("INSERT INTO tuf_metadata (role, version, body, expires_at, created_at) VALUES ('timestamp', 2, 'x', 0, 0)")),
      (error) => SdcError.is(error, 'STORE_UNIQUE_VIOLATION'));
  });

  it('detects a restored backup by the high-water mark in the data directory: never serves the old version, alarms, and signs past the mark', async () => {
    const { db, dir } = await database();
    const clock = new ManualClock();
    const highWater = new FileHighWaterStore(join(dir, 'tuf', 'high-water.json'));
    const repo = repository(db, clock, highWater);
    await repo.importInitial(initialMetadata(keys, clock.nowMs()));
    await repo.resignDue();
    // The backup: the database as it is now (timestamp 1).
    const backup = await mkdtemp(join(tmpdir(), 'sdc-tuf-backup-'));
    directories.push(backup);
    await mkdir(join(backup, 'db'));
    // The embedded database's files as they are now: the snapshot (if one was written yet) and its journal.
    for (const name of ['sdc.sqlite', 'sdc.sqlite.journal']) await copyFile(join(dir, 'db', name), join(backup, 'db', name)).catch(() => undefined);
    for (let day = 0; day < 3; day++) {
      clock.advance(dayMs + 1000);
      await repo.resignDue();
    }
    assert.equal((await repo.file('timestamp')).version, 4);
    // The restore: the old database with this data directory's mark.
    const { db: restored } = await database(backup);
    const alarms: RepositoryAlarm[] = [];
    const afterRestore = repository(restored, clock, new FileHighWaterStore(join(dir, 'tuf', 'high-water.json')), alarms);
    assert.equal((await afterRestore.current('timestamp'))?.version, 1);
    await assert.rejects(afterRestore.file('timestamp'), (error) => SdcError.is(error, 'OTA_REPOSITORY_VERSION_ROLLBACK'));
    // The re-sign pass alarms before it signs past the mark (afterwards the database no longer shows the restore).
    assert.deepEqual(await afterRestore.resignDue(), ['timestamp']);
    assert.deepEqual(alarms.filter((alarm) => alarm.kind === 'tuf_restored_backup').map((alarm) => [alarm.role, alarm.version, alarm.highWater]).sort(),
      [['timestamp', 1, 4]], 'the snapshot (version 1, mark 1) was not lost; the timestamp was');
    assert.equal((await afterRestore.file('timestamp')).version, 5, 'the next timestamp skips past everything devices may have seen');
  });

  it('alarms 30 days before root or targets expires (once per version), not at 31', async () => {
    const { db } = await database();
    const clock = new ManualClock();
    const alarms: RepositoryAlarm[] = [];
    const repo = repository(db, clock, new MemoryHighWaterStore(), alarms);
    await repo.importInitial(initialMetadata(keys, clock.nowMs()));
    await repo.resignDue();
    const rootExpiresMs = (await repo.current('root'))!.expiresAtMs;
    const stepTo = async (atMs: number) => {
      // Keep the online roles fresh on the way, as the periodic pass does.
      while (clock.nowMs() < atMs) {
        clock.advance(Math.min(dayMs, atMs - clock.nowMs()));
        await repo.resignDue();
      }
    };
    await stepTo(rootExpiresMs - 31 * dayMs);
    assert.deepEqual(await repo.checkAlarms(), []);
    await stepTo(rootExpiresMs - 30 * dayMs);
    const fired = await repo.checkAlarms();
    assert.deepEqual(fired.map((alarm) => [alarm.kind, alarm.role]).sort(), [['tuf_role_expiring', 'root'], ['tuf_role_expiring', 'targets']]);
    assert.match(fired[0]!.message, /expires in 30 day/);
    assert.deepEqual(await repo.checkAlarms(), [], 'each alarm once per role version');
    assert.equal(alarms.length, 2);
  });

  it('alarms when the online roles are not re-signed (a failing re-sign), halfway through their margin', async () => {
    const { db } = await database();
    const clock = new ManualClock();
    const repo = repository(db, clock, new MemoryHighWaterStore());
    await repo.importInitial(initialMetadata(keys, clock.nowMs()));
    await repo.resignDue();
    clock.advance(dayMs + dayMs / 2 - 1000);
    assert.deepEqual(await repo.checkAlarms(), []);
    clock.advance(2000);
    assert.deepEqual((await repo.checkAlarms()).map((alarm) => [alarm.kind, alarm.role]), [['tuf_resign_overdue', 'timestamp']]);
  });

  it('refuses online keys that root does not list', async () => {
    const { db } = await database();
    const clock = new ManualClock();
    const other = generateRepositoryKeys();
    await repository(db, clock, new MemoryHighWaterStore()).importInitial(initialMetadata(keys, clock.nowMs()));
    await assert.rejects(repository(db, clock, new MemoryHighWaterStore(), [], other).checkOnlineKeys(), (error) => SdcError.is(error, 'OTA_REPOSITORY_KEYS'));
  });
});
