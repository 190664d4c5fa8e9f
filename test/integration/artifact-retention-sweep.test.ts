// The control plane's periodic artifact retention sweep (docs/artifacts.md, "Retention and
// deletion"): with no upload grant to trigger it, the sweep alone deletes artifacts past the byte
// budget (oldest first) and past the age limit, each deletion audited by the system with its
// reason, and nothing before the sweep falls due. A real control plane (sql.js, embedded blob
// store) on virtual time: its timers fire only when the test moves time, and each pass runs to its
// end before time moves on (sweepsSettled).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { systemRandom } from '../../runtime/system.js';
import { createControlPlane, type ControlPlane } from '../../server/control-plane/control-plane.js';
import { makeDeviceKey, sqlJsTarget } from '../../server/control-plane/test-support.js';
import { initDeployment } from '../../server/materials/materials.js';
import { uploadKey } from '../../server/ota/encrypted-artifacts.js';
import { MemoryStreamBus } from '../../server/stores/bus/memory-stream-bus.js';
import { createEmbeddedKeyValueStore } from '../../server/stores/kv/redis-key-value-store.js';
import type { KeyValueStore } from '../../server/stores/kv/kv-port.js';
import type { SqlDatabase } from '../../server/stores/sql/sql-port.js';

const minuteMs = 60_000;
const sweepIntervalMs = 30 * minuteMs;
const ageMsMax = 2 * 60 * minuteMs;
const bytesMax = 10_000;
const consumerBlockMs = minuteMs;
const device = 'sweep-dev-1';

describe('the periodic artifact retention sweep (virtual time)', () => {
  const time = new VirtualTime(Date.now());
  let dir: string;
  let db: SqlDatabase;
  let bus: MemoryStreamBus;
  let kv: KeyValueStore;
  let cp: ControlPlane;

  /** Moves virtual time to `untilMs`; every pass a fired timer started finishes before time moves on. */
  const runTo = async (untilMs: number): Promise<void> => {
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 3; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
      await cp.sweepsSettled();
    };
    while (time.nowMs() < untilMs) {
      await time.runUntil(Math.min(untilMs, time.nowMs() + 5 * minuteMs), settle);
      await settle();
    }
  };
  /** An EXEC_COLLECT_ARTIFACT command created now, with a stored (sealed) object of `length` bytes. */
  const artifact = async (length: number): Promise<string> => {
    const { command } = await cp.commands.create({ actor: { name: 'olga', role: 'operator' }, deviceId: device, opcode: 'EXEC_COLLECT_ARTIFACT', args: { kind: 'logs' } });
    await cp.blobStore.put(uploadKey({ deviceId: device, commandId: command.id }), [Buffer.alloc(length, 7)], { bytesMax: 1 << 20 });
    return command.id;
  };
  const inStore = async (id: string) => (await cp.blobStore.head(uploadKey({ deviceId: device, commandId: id }))) !== undefined;
  const deletions = async () => {
    await cp.context.settleAudit();
    const rows = await db.query<{ actor: string; subject: string; payload_json: string }>("SELECT actor, subject, payload_json FROM audit_log WHERE kind = 'artifact.deleted' ORDER BY seq");
    return rows.map((row) => [row.actor, row.subject, (JSON.parse(row.payload_json) as { reason: string }).reason]);
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sdc-artifact-sweep-'));
    const materials = await initDeployment({ dataDir: dir, clock: time, random: systemRandom });
    db = await sqlJsTarget.open(dir);
    bus = new MemoryStreamBus({ clock: time, scheduler: time });
    kv = createEmbeddedKeyValueStore({ keyPrefix: `artifact-sweep-${randomBytes(4).toString('hex')}:` });
    cp = await createControlPlane({
      materials, stores: { sql: db, bus, kv }, clock: time, random: systemRandom, scheduler: time,
      gatewayUrls: ['wss://127.0.0.1:9443/v1/agent'], scryptParams: { N: 1024, r: 8, p: 1 },
      artifactRetention: { ageMsMax, bytesMax }, artifactRetentionSweepIntervalMs: sweepIntervalMs,
      // The other sweeps rarely: they play no part here.
      consumerBlockMs, auditDrainIntervalMs: 60 * minuteMs, expirySweepIntervalMs: 60 * minuteMs, redeliverySweepIntervalMs: 60 * minuteMs,
      enrolledDevicesPublishIntervalMs: 60 * minuteMs, trustWipeCheckIntervalMs: 60 * minuteMs, crlRepublishIntervalMs: 60 * minuteMs,
      jwtRotationCheckIntervalMs: 60 * minuteMs, complianceSweepIntervalMs: 60 * minuteMs, policyRevisionCheckIntervalMs: 60 * minuteMs,
    });
    const key = await makeDeviceKey(device);
    const { token } = await cp.devices.createPairingToken({ actor: 'root', deviceId: device });
    await cp.devices.enroll({ deviceId: device, token, csrPem: key.csrPem });
    await cp.start();
  });
  after(async () => {
    const stopped = cp.stop();
    await time.runUntil(time.nowMs() + consumerBlockMs + 1);
    await stopped;
    await bus.close();
    await kv.close();
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('deletes past the byte budget at the next sweep, oldest first, then past the age limit; each audited by the system, nothing earlier', async () => {
    const t0 = time.nowMs();
    const oldest = await artifact(4_000);
    await runTo(t0 + 40 * minuteMs);
    const middle = await artifact(4_000);
    // A minute apart: the pass orders by creation time, and two commands of one instant by their random ids.
    await runTo(t0 + 41 * minuteMs);
    const newest = await artifact(4_000);
    // 12,000 bytes stored against a budget of 10,000, but no sweep has fallen due since: all kept.
    await runTo(t0 + 2 * sweepIntervalMs - 1);
    assert.deepEqual(await Promise.all([oldest, middle, newest].map(inStore)), [true, true, true]);
    assert.deepEqual(await deletions(), []);

    await runTo(t0 + 2 * sweepIntervalMs + 1);
    assert.deepEqual(await Promise.all([oldest, middle, newest].map(inStore)), [false, true, true]);
    assert.deepEqual(await deletions(), [['system', `artifact:${oldest}`, 'retention_bytes']]);

    // The two others turn 2 h old at t0 + 2 h 40/41 min: the sweep at t0 + 3 h deletes them, newest first, and not the one before.
    await runTo(t0 + 41 * minuteMs + ageMsMax + 1);
    assert.deepEqual(await Promise.all([middle, newest].map(inStore)), [true, true]);
    await runTo(t0 + 6 * sweepIntervalMs + 1);
    assert.deepEqual(await Promise.all([middle, newest].map(inStore)), [false, false]);
    assert.deepEqual(await deletions(), [
      ['system', `artifact:${oldest}`, 'retention_bytes'], ['system', `artifact:${newest}`, 'retention_age'], ['system', `artifact:${middle}`, 'retention_age'],
    ]);
  });
});
