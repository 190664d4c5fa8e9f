// Issue 12, alerts as rules: each rule's alert is raised once per episode (stored, audited and
// published once), clears when its condition ends, and is raised again by the next episode.
// Time is the harness's ManualClock and the sampling pass is called by hand (no timers).
// Runs on sql.js + embedded kv and, with MYSQL_URL and REDIS_URL, on MySQL + Redis.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { groups, liveChannel, streamNames } from '../bus-contract/streams.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { parseAlertRules } from './alert-rules.js';
import type { AlertView } from './alerts.js';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

const offlineAfterMs = 30_000;
const [binaryA, binaryB, configA, configB] = ['a', 'b', 'c', 'd'].map((c) => c.repeat(64)) as [string, string, string, string];
const rules = parseAlertRules({
  offlineAfterMs, riskScoreAbove: 70, updateFailures: 2, tamper: true, backpressure: { busPendingAbove: 2, deadLettersAbove: 0 }, sampleIntervalMs: 1_000,
});

function suite(pair: StorePair): void {
  describe(`alert rules on ${pair.name}`, () => {
    let h: Harness;
    const live: JsonObject[] = [];
    let unsubscribe: (() => Promise<void>) | undefined;

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }), controlPlane: { alertRules: rules, complianceRules: { binary_sha256_allowed: [binaryA] } } });
      // What LiveHub relays to SSE clients: everything published on the live channel.
      unsubscribe = await h.cp.context.kv.subscribe(liveChannel, (message) => live.push(JSON.parse(message) as JsonObject));
      for (const device of ['dev-away', 'dev-hot', 'dev-ota', 'dev-opened', 'dev-posture', 'dev-back']) {
        await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [device, h.clock.nowMs()]);
      }
    });
    after(async () => {
      await unsubscribe?.();
      await h.close();
      await pair.sql.cleanup();
    });

    const alertsOf = async (kind: string, deviceId?: string): Promise<AlertView[]> =>
      (await h.cp.alerts.list({ ...(deviceId === undefined ? {} : { deviceId }), limit: 100 })).items.filter((a) => a.kind === kind).reverse();
    const audited = async (kind: string) => (await h.cp.auditStore.scan(1, 10_000)).filter((e) => e.kind === 'alert.raised' && e.payload['kind'] === kind).length;
    const presence = async (deviceId: string, online: boolean) => {
      await h.bus.append(streamNames.events, encodeBusEntry('presence', {
        device_id: deviceId, gateway_id: 'gw1', session_id: `s_${h.clock.nowMs()}`, online, at_ms: h.clock.nowMs(),
      }));
      await h.cp.eventsConsumer.drain();
    };
    /** Lets the live publish (fire and forget) reach the subscriber. */
    const liveOf = async (type: string) => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      return live.filter((e) => e['type'] === type);
    };

    it('device_offline: once past offlineAfterMs, not again while offline, cleared when it comes back, raised again by the next episode', async () => {
      await presence('dev-away', true);
      await presence('dev-away', false);
      const wentAwayMs = h.clock.nowMs();
      h.clock.advance(offlineAfterMs - 1);
      await h.cp.events.alertMonitor.sample();
      assert.deepEqual(await alertsOf('device_offline'), [], 'not before offlineAfterMs');
      h.clock.advance(1);
      await h.cp.events.alertMonitor.sample();
      await h.cp.events.alertMonitor.sample();
      const [first, ...rest] = await alertsOf('device_offline');
      assert.deepEqual(rest, [], 'one alert for the episode');
      assert.equal(first!.device_id, 'dev-away');
      assert.equal(first!.detail!['last_seen_at_ms'], wentAwayMs);
      assert.equal(await audited('device_offline'), 1);
      assert.ok((await liveOf('alert')).some((e) => e['alert_id'] === first!.id), 'published live');
      h.clock.advance(1_000);
      await presence('dev-away', true);
      const [cleared] = await alertsOf('device_offline');
      assert.equal(cleared!.cleared_at_ms, h.clock.nowMs());
      assert.ok((await liveOf('alert_cleared')).some((e) => e['alert_id'] === first!.id));
      await presence('dev-away', false);
      h.clock.advance(offlineAfterMs);
      await h.cp.events.alertMonitor.sample();
      const episodes = await alertsOf('device_offline');
      assert.equal(episodes.length, 2, 'the next episode raises a new alert');
      assert.equal(episodes[1]!.cleared_at_ms, null);
      assert.equal(await audited('device_offline'), 2);
      assert.match(await h.cp.metrics.text(), /^sdc_alerts_raised_total\{kind="device_offline"\} 2$/m, 'counted once per alert on /metrics');
    });

    it('risk_score: once while samples stay at or over the threshold, cleared by the sampling pass after a calm sample', async () => {
      const sample = async (score: number) => {
        const atMs = h.clock.nowMs();
        // sample_digest is NOT NULL on MySQL (migration 021); each sample has its own time, so any digest will do.
        await h.db.execute('INSERT INTO telemetry (device_id, ts, metrics_json, risk_score, sample_digest) VALUES (?, ?, ?, ?, ?)', ['dev-hot', atMs, '{}', score, 0]);
        await h.cp.events.alertMonitor.onRiskScore({ deviceId: 'dev-hot', score, factors: ['cpu'], detail: { score }, atMs });
        h.clock.advance(1_000);
      };
      await sample(69.9);
      assert.deepEqual(await alertsOf('risk_score'), []);
      for (const score of [70, 90, 85]) await sample(score);
      await h.cp.events.alertMonitor.sample();
      assert.equal((await alertsOf('risk_score')).length, 1);
      await sample(20);
      await h.cp.events.alertMonitor.sample();
      assert.notEqual((await alertsOf('risk_score'))[0]!.cleared_at_ms, null);
      await sample(95);
      assert.equal((await alertsOf('risk_score')).length, 2);
      assert.equal(await audited('risk_score'), 2);
    });

    it('update_failed: after updateFailures failed update commands in a row, once; a successful update clears it', async () => {
      let n = 0;
      const finish = async (opcode: string, state: 'failed' | 'succeeded') => {
        n += 1;
        const id = `c_ota_${n}`;
        const atMs = h.clock.nowMs();
        await h.db.execute(
          'INSERT INTO commands (id, device_id, opcode, args_json, state, created_by, expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
          [id, 'dev-ota', opcode, '{}', state, 'op', atMs + 60_000, atMs, atMs],
        );
        await h.cp.events.alertMonitor.onUpdateOutcome({ deviceId: 'dev-ota', commandId: id, opcode, succeeded: state === 'succeeded', atMs });
        h.clock.advance(1_000);
      };
      await finish('EXEC_STAGE_UPDATE', 'failed');
      assert.deepEqual(await alertsOf('update_failed'), [], 'one failure is under the rule of 2');
      await finish('EXEC_STAGE_UPDATE', 'succeeded');
      await finish('EXEC_COMMIT_UPDATE', 'failed');
      assert.deepEqual(await alertsOf('update_failed'), [], 'not in a row');
      await finish('EXEC_COMMIT_UPDATE', 'failed');
      await finish('EXEC_ROLLBACK_UPDATE', 'failed');
      const [raised, ...more] = await alertsOf('update_failed');
      assert.deepEqual(more, []);
      assert.equal(raised!.severity, 'critical');
      await finish('EXEC_STAGE_UPDATE', 'succeeded');
      assert.notEqual((await alertsOf('update_failed'))[0]!.cleared_at_ms, null);
      assert.equal(await audited('update_failed'), 1);
    });

    it('tamper: a device ALERT of kind tamper raises one critical alert until acknowledged; after the ack the next signal is a new alert', async () => {
      const tamper = async () => {
        await h.bus.append(streamNames.events, encodeBusEntry('alert', {
          device_id: 'dev-opened', gateway_id: 'gw1', at_ms: h.clock.nowMs(), severity: 'warning', kind: 'tamper', message: 'case opened',
        }));
        await h.cp.eventsConsumer.drain();
      };
      for (let i = 0; i < 3; i += 1) await tamper();
      const [first, ...rest] = await alertsOf('tamper');
      assert.deepEqual(rest, []);
      assert.equal(first!.severity, 'critical');
      const acked = await h.cp.alerts.acknowledge({ alertId: first!.id, actor: 'op-1', note: 'seal checked' });
      assert.equal(acked.ack_note, 'seal checked');
      assert.notEqual(acked.cleared_at_ms, null, 'the ack ends the tamper episode');
      await tamper();
      assert.equal((await alertsOf('tamper')).length, 2);
      assert.equal(await audited('tamper'), 2);
    });

    it('tamper from compliance signals: a configured reason or a hash change newly in a posture report raises tamper; the same finding again does not; an upgrade is not tamper', async () => {
      const report = async (posture: JsonObject, agentVersion = '0.1.0') => {
        h.clock.advance(1_000);
        await h.bus.append(streamNames.events, encodeBusEntry('presence', {
          device_id: 'dev-posture', gateway_id: 'gw1', session_id: `s_${h.clock.nowMs()}`, online: true, at_ms: h.clock.nowMs(),
          agent_version: agentVersion, posture: posture as never,
        }));
        await h.cp.eventsConsumer.drain();
      };
      const tampers = () => alertsOf('tamper', 'dev-posture');
      const ackAll = async () => { for (const a of await tampers()) if (a.state === 'open') await h.cp.alerts.acknowledge({ alertId: a.id, actor: 'op' }); };
      await report({ binary_sha256: binaryA, config_sha256: configA, kernel_attestation: 'attested' });
      assert.deepEqual(await tampers(), [], 'an expected first report is no signal');

      await report({ binary_sha256: binaryA, config_sha256: configB, kernel_attestation: 'attested' });
      const [configChanged, ...none] = await tampers();
      assert.deepEqual(none, []);
      assert.equal(configChanged!.severity, 'critical');
      assert.deepEqual(configChanged!.detail, { source: 'compliance', signals: ['config_hash_changed'] });
      await report({ binary_sha256: binaryA, config_sha256: configB, kernel_attestation: 'attested' });
      assert.equal((await tampers()).length, 1, 'the same configuration again is not a new signal');

      await ackAll();
      await report({ binary_sha256: binaryB, config_sha256: configB, kernel_attestation: 'attested' });
      const second = (await tampers())[1];
      assert.deepEqual(second?.detail, { source: 'compliance', signals: ['binary_hash_mismatch', 'binary_hash_changed'] });
      await ackAll();
      await report({ binary_sha256: binaryB, config_sha256: configB, kernel_attestation: 'failed' });
      assert.deepEqual((await tampers())[2]?.detail, { source: 'compliance', signals: ['kernel_attestation_failed'] });
      await ackAll();
      await report({ binary_sha256: binaryB, config_sha256: configB, kernel_attestation: 'failed' });
      assert.equal((await tampers()).length, 3, 'a finding that persists is not raised again after its acknowledgement');
      // An upgrade: a new binary under a new version, and an allowed one.
      await report({ binary_sha256: binaryA, config_sha256: configB, kernel_attestation: 'attested' }, '0.2.0');
      assert.equal((await tampers()).length, 3, 'an upgrade is not a tamper signal');
      assert.equal(await audited('tamper'), (await alertsOf('tamper')).length, 'each raised and audited once');
    });

    it('a clear is audited once (alert.cleared), however often the end of its condition is seen', async () => {
      await presence('dev-back', true);
      await presence('dev-back', false);
      h.clock.advance(offlineAfterMs);
      await h.cp.events.alertMonitor.sample();
      const [alert] = await alertsOf('device_offline', 'dev-back');
      assert.ok(alert);
      const clearedEntries = async () => (await h.cp.auditStore.scan(1, 10_000)).filter((e) => e.kind === 'alert.cleared' && e.payload['alert_id'] === alert.id);
      assert.deepEqual(await clearedEntries(), []);
      h.clock.advance(1_000);
      const atMs = h.clock.nowMs();
      await Promise.all([1, 2, 3].map(() => h.cp.events.alertMonitor.onPresence('dev-back', true, atMs)));
      await presence('dev-back', true);
      const entries = await clearedEntries();
      assert.equal(entries.length, 1);
      assert.equal(entries[0]!.actor, 'system');
      assert.deepEqual(entries[0]!.payload, { alert_id: alert.id, kind: 'device_offline', episode_key: 'device_offline:dev-back', cleared_at_ms: atMs });
      assert.equal((await alertsOf('device_offline', 'dev-back'))[0]!.cleared_at_ms, atMs);
    });

    it('two raises of one episode at once store, audit and publish one alert: the UNIQUE episode_key decides', async () => {
      const raise = () => h.cp.events.raiseAlert({
        deviceId: null, kind: 'race', severity: 'info', message: 'same episode', atMs: h.clock.nowMs(), detail: {}, actor: 'system', episodeKey: 'race:one',
      });
      const outcomes = await Promise.all([raise(), raise(), raise()]);
      assert.equal(outcomes.filter((id) => id !== undefined).length, 1, `ids: ${JSON.stringify(outcomes)}`);
      assert.equal((await alertsOf('race')).length, 1);
      assert.equal(await audited('race'), 1);
    });

    it('backpressure: pending entries and dead letters above their thresholds, once each, cleared when the backlog drains', async () => {
      const stream = streamNames.telemetry;
      await h.bus.ensureGroup(stream, groups.telemetry, '0');
      for (let i = 0; i < 3; i += 1) await h.bus.append(stream, { data: `{"i":${i}}` });
      const read = await h.bus.readGroup(stream, groups.telemetry, 'stuck-consumer', { count: 10 });
      assert.equal(read.length, 3);
      await h.cp.events.alertMonitor.sample();
      await h.cp.events.alertMonitor.sample();
      const pending = (await alertsOf('backpressure')).filter((a) => a.detail!['measure'] === 'pending' && a.detail!['stream'] === stream);
      assert.equal(pending.length, 1);
      assert.equal(pending[0]!.detail!['value'], 3);
      assert.equal(pending[0]!.device_id, null);
      await h.bus.deadLetter(stream, groups.telemetry, read[0]!.id, 'poison');
      await h.bus.ack(stream, groups.telemetry, read.slice(1).map((e) => e.id));
      await h.cp.events.alertMonitor.sample();
      const after = await alertsOf('backpressure');
      const dead = after.filter((a) => a.detail!['measure'] === 'dead_letters');
      assert.equal(dead.length, 1);
      assert.equal(dead[0]!.detail!['value'], 1);
      assert.notEqual(after.find((a) => a.id === pending[0]!.id)!.cleared_at_ms, null, 'the pending backlog cleared');
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('alert rules on mysql + redis', { skip: skipped }, () => {});
