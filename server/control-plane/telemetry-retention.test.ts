// Telemetry retention (docs/api.md, "Telemetry retention"): each device keeps its newest
// rowsPerDeviceMax samples; older rows go in passes that follow the rows stored, off the ingest
// path. On both SQL adapters (sql.js; MySQL/MariaDB with MYSQL_URL): the trim statement itself
// (ties, fewer rows than the bound, the cursor over more devices than one pass takes), and a
// control plane that stores telemetry from the bus: old rows go, new rows stay, the audit chain
// is untouched.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { streamNames } from '../bus-contract/streams.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { TelemetryTrimmer, resolveTelemetryRetention, telemetryRetentionDefaults, telemetryRetentionLimits } from './telemetry-retention.js';
import { deviceFrame, makeHarness, mysqlTarget, sqlJsTarget, type Harness, type SqlTarget } from './test-support.js';

const provider = createNodeEd25519Provider();

describe('resolveTelemetryRetention', () => {
  it('takes the default, and refuses a bound that is not a whole number of rows from 1 to the ceiling', () => {
    assert.deepEqual(resolveTelemetryRetention(undefined), telemetryRetentionDefaults);
    assert.deepEqual(resolveTelemetryRetention({ rowsPerDeviceMax: 1 }), { rowsPerDeviceMax: 1 });
    for (const bad of [0, -1, 1.5, Number.NaN, telemetryRetentionLimits.rowsPerDeviceCeiling + 1]) {
      assert.throws(() => resolveTelemetryRetention({ rowsPerDeviceMax: bad }), (error: unknown) => SdcError.is(error) && error.code === 'STORE_INVALID_ARGUMENT', String(bad));
    }
  });
});

function suite(target: SqlTarget): void {
  describe(`telemetry retention on ${target.name}`, () => {
    let h: Harness;
    const tag = randomBytes(3).toString('hex');
    before(async () => {
      h = await makeHarness(target, { controlPlane: { telemetryRetention: { rowsPerDeviceMax: 3 } } });
    });
    after(async () => {
      await h.close();
      await target.cleanup();
    });

    // Each row its own sample_digest (NOT NULL in MySQL's primary key since migration 021), so rows sharing a time are all kept.
    let digest = 0;
    const insertRows = async (deviceId: string, times: readonly number[]): Promise<void> => {
      for (const ts of times) {
        await h.db.execute('INSERT INTO telemetry (device_id, ts, metrics_json, risk_score, sample_digest) VALUES (?, ?, ?, ?, ?)', [deviceId, ts, '{}', 0, (digest += 1)]);
      }
    };
    const timesOf = async (deviceId: string): Promise<number[]> =>
      (await h.db.query<{ ts: number }>('SELECT ts FROM telemetry WHERE device_id = ? ORDER BY ts ASC', [deviceId])).map((row) => Number(row.ts));

    it('a pass keeps each device\'s newest rows (ties on the oldest kept time stay) and leaves a device under the bound alone', async () => {
      await h.db.execute('DELETE FROM telemetry');
      await insertRows(`a-${tag}`, [1, 2, 3, 4, 5, 6]);
      await insertRows(`b-${tag}`, [10, 20]);
      await insertRows(`c-${tag}`, [1, 2, 2, 3]);
      const trimmer = new TelemetryTrimmer({ db: h.db, retention: { rowsPerDeviceMax: 3 } });
      assert.deepEqual(await trimmer.trimNext(), { devices: 3, deleted: 4 });
      assert.deepEqual(await timesOf(`a-${tag}`), [4, 5, 6]);
      assert.deepEqual(await timesOf(`b-${tag}`), [10, 20]);
      assert.deepEqual(await timesOf(`c-${tag}`), [2, 2, 3]);
      assert.deepEqual(await trimmer.trimNext(), { devices: 3, deleted: 0 }, 'a second pass finds nothing more');
    });

    it('passes walk the devices in id order, devicesPerPass at a time, and wrap after the last', async () => {
      await h.db.execute('DELETE FROM telemetry');
      const perPass = telemetryRetentionLimits.devicesPerPass;
      const ids = Array.from({ length: perPass + 20 }, (_, i) => `w-${tag}-${String(i).padStart(4, '0')}`);
      for (const id of ids) await insertRows(id, [1, 2]);
      const trimmer = new TelemetryTrimmer({ db: h.db, retention: { rowsPerDeviceMax: 1 } });
      assert.deepEqual(await trimmer.trimNext(), { devices: perPass, deleted: perPass });
      assert.deepEqual(await timesOf(ids[perPass - 1]!), [2]);
      assert.deepEqual(await timesOf(ids[perPass]!), [1, 2], 'not reached yet');
      assert.deepEqual(await trimmer.trimNext(), { devices: 20, deleted: 20 });
      await insertRows(ids[0]!, [3]);
      assert.deepEqual(await trimmer.trimNext(), { devices: perPass, deleted: 1 }, 'back at the first device');
      assert.deepEqual(await timesOf(ids[0]!), [3]);
    });

    it('the control plane trims as telemetry arrives: old rows go, the newest stay, new rows are stored, the audit chain is untouched', async () => {
      await h.db.execute('DELETE FROM telemetry');
      const seed = new Uint8Array(randomBytes(32));
      const [busy, quiet] = [`busy-${tag}`, `quiet-${tag}`];
      for (const id of [busy, quiet]) {
        await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', ?, ?)",
          [id, h.clock.nowMs(), Buffer.from(provider.publicKeyFromSeed(seed)).toString('base64url')]);
      }
      const t0 = h.clock.nowMs();
      const send = async (deviceId: string, index: number): Promise<void> => {
        const atMs = t0 + index * 1_000;
        const frame = deviceFrame({ deviceId, seed, type: 'TELEMETRY', ts: atMs,
          body: { sampled_at: atMs, metrics: { cpu_pct: index % 100, mem_pct: 1, disk_pct: 1, net_rx_bytes_per_sec: 0, net_tx_bytes_per_sec: 0 } } });
        await h.bus.append(streamNames.telemetry, encodeBusEntry('telemetry', { device_id: deviceId, gateway_id: 'gw1', received_at_ms: atMs, frame }));
      };
      const auditBefore = (await h.cp.auditStore.scan(1, 10_000)).length;
      // A pass starts once devicesPerPass x max(1, 10 % of 3) = 100 rows were stored since the last.
      for (let i = 0; i < 5; i += 1) await send(quiet, i);
      for (let i = 0; i < 94; i += 1) await send(busy, i);
      await h.cp.telemetryConsumer.drain();
      await h.cp.telemetryTrimmer.idle();
      assert.equal((await timesOf(busy)).length, 94, '99 rows stored: no pass yet');
      await send(busy, 94);
      await h.cp.telemetryConsumer.drain();
      await h.cp.telemetryTrimmer.idle();
      assert.deepEqual(await timesOf(busy), [92, 93, 94].map((i) => t0 + i * 1_000), 'the 100th row started a pass: the newest 3 stay');
      assert.deepEqual(await timesOf(quiet), [2, 3, 4].map((i) => t0 + i * 1_000));
      assert.equal(h.cp.telemetryTrimmer.deletedTotal, 94);
      await send(busy, 95);
      await h.cp.telemetryConsumer.drain();
      assert.deepEqual((await h.cp.events.telemetry({ deviceId: busy })).map((row) => row.ts_ms), [95, 94, 93, 92].map((i) => t0 + i * 1_000), 'new rows are stored as before');
      assert.equal((await h.cp.auditStore.scan(1, 10_000)).length, auditBefore, 'no audit entry for telemetry or its trimming');
      assert.equal((await h.cp.context.audit.verify()).ok, true);
    });
  });
}

suite(sqlJsTarget);
const mysqlUrl = process.env.MYSQL_URL;
if (mysqlUrl !== undefined && mysqlUrl !== '') suite(mysqlTarget(mysqlUrl));
else describe('telemetry retention on mysql', { skip: 'MYSQL_URL is not set; the same suite runs on sql.js' }, () => undefined);
