// An update rollout through the real system (issue 10): a control plane with an image
// repository publishes a release signed by two release signers; a rollout in two waves reaches
// real agents (runAgent, mock kernels) over a real gateway. Each agent refreshes its TUF
// metadata from the control plane, checks the director's document against it, downloads the
// artifact from the blob store by the presigned URL of its notice (resumable) and verifies it, STAGEs and COMMITs it with the control plane's signed kernel commands,
// runs its health check and sends its signed version report with the health nonce. Every device
// succeeds but one whose health check fails, which rolls back (kernel ROLLBACK). A second rollout
// whose first wave crosses its error threshold pauses, and no device of its second wave is told.
// On the embedded stores always, and on Redis + MySQL when REDIS_URL and MYSQL_URL are set.
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { RunningAgent } from '../../agent/agent-runtime.js';
import { generateRepositoryKeys, initialMetadata, writeRepositoryFiles, type RepositoryKeys } from '../../server/ota/repository-init.js';
import { publishTestRelease } from '../../server/ota/test-support.js';
import type { RolloutView } from '../../server/ota/rollouts.js';
import { systemClock } from '../../runtime/system.js';
import { mysqlTarget } from '../../server/control-plane/test-support.js';
import { e2eWaitMsMin, eventually, startE2e, startOtaAgent, storeTargets, waitOnline, type AgentLogLine, type E2eSystem } from './support/e2e-harness.js';

const factoryVersion = '1.0.0';
const terminal = new Set(['succeeded', 'rejected', 'failed', 'rolled_back', 'rollback_failed', 'timed_out', 'canceled']);

/**
 * Waits until the rollout reaches `status`, failing at once if it settles elsewhere (a paused
 * rollout moves only when an operator acts), and failing when it stops moving: no new status,
 * wave or execution state for e2eWaitMsMin. Not one wait for the whole rollout: it is some thirty
 * steps in sequence (device reports, notices, ticks) through one process that hosts every party,
 * and all the system promises is that each step is taken; at load (four busy loops beside it) a
 * whole rollout took 99 s while every step was taken within seconds. Bounded all the same: the
 * execution and rollout states only move forward, so the view changes a bounded number of times.
 */
async function untilRollout(view: () => Promise<RolloutView>, status: RolloutView['status']): Promise<RolloutView> {
  let progress = '';
  let progressAtMs = systemClock.nowMs();
  let lastError: unknown;
  for (;;) {
    const current = await view().catch((error: unknown) => { lastError = error; return undefined; });
    if (current?.status === status) return current;
    const now = current === undefined ? progress : JSON.stringify([current.status, current.pause_reason, current.wave_index, current.executions.map((e) => [e.device_id, e.state])]);
    if (current !== undefined && current.status !== 'running') throw new Error(`the rollout settled ${now}, not ${status}`);
    if (now !== progress) {
      progress = now;
      progressAtMs = systemClock.nowMs();
    } else if (systemClock.nowMs() - progressAtMs > e2eWaitMsMin) {
      throw new Error(`waiting for the rollout to be ${status}: it stood still for ${e2eWaitMsMin} ms at ${now}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    }
    await delay(50);
  }
}

for (const target of storeTargets()) {
  describe(`OTA rollout end to end on ${target.name} stores`, () => {
    let system: E2eSystem;
    let keys: RepositoryKeys;
    const unhealthy = new Set<string>();
    const devices: string[] = [];
    const agents = new Map<string, RunningAgent>();
    /** What each agent logged (its update runner says how it downloaded). */
    const logs = new Map<string, AgentLogLine[]>();

    // A database of its own on MySQL: the image repository's versions are durable and never go
    // backwards, so a shared database would hold another run's root, signed by other keys.
    const mysql = target.mysqlUrl === undefined ? undefined : mysqlTarget(target.mysqlUrl) as ReturnType<typeof mysqlTarget> & { url: string };

    before(async () => {
      keys = generateRepositoryKeys();
      if (mysql !== undefined) await (await mysql.open('')).close();
      system = await startE2e({
        target: mysql === undefined ? target : { ...target, mysqlUrl: mysql.url },
        beforeStart: async (dataDir) => writeRepositoryFiles(dataDir, keys, initialMetadata(keys, systemClock.nowMs())),
      });
      for (let i = 0; i < 4; i++) devices.push(`e2e-ota-${system.tag}-${i}`);
      for (const deviceId of devices) {
        const lines: AgentLogLine[] = [];
        logs.set(deviceId, lines);
        const agent = await startOtaAgent(system, deviceId, { installedVersion: factoryVersion, healthProbe: async () => !unhealthy.has(deviceId), lines });
        agents.set(deviceId, agent);
      }
      await waitOnline(system, devices);
    });
    after(async () => {
      await system?.stop();
      await mysql?.cleanup();
    });

    const ota = () => system.deployment.controlPlane!.ota!;
    const rolloutOf = (id: string) => system.api<RolloutView>('GET', `/v1/rollouts/${id}`);
    const wave = (deviceIds: string[], failedPercentMax: number, executedMin: number) => ({
      device_ids: deviceIds, success_threshold: { succeeded_min: 0, succeeded_percent_min: 0, soak_ms: 0 }, error_threshold: { executed_min: executedMin, failed_percent_max: failedPercentMax },
    });

    it('every device installs the release and reports it healthy; the one whose health check fails rolls back', async () => {
      const [a, b, c, d] = devices as [string, string, string, string];
      await publishTestRelease(ota(), keys, { id: `e2e-${system.tag}-2-0-0`, version: '2.0.0', artifact: Buffer.from('sdc e2e firmware 2.0.0\n'.repeat(256)) });
      unhealthy.add(b);
      const started = await system.api<RolloutView>('POST', '/v1/rollouts', {
        release_id: `e2e-${system.tag}-2-0-0`, platform: 'linux-x64', device_ids: devices, devices_per_minute_max: 100,
        // executed_min 2: the first wave's failure rate is judged once both a and b ended (1 of 2,
        // not over 50 %). Judged after the first (executed_min 1), it paused the rollout whenever
        // b's rollback was reported before a's success, which load decides.
        waves: [wave([a, b], 50, 2), wave([c, d], 50, 1)],
      });
      assert.equal(started.status, 'running');
      assert.deepEqual(started.executions.map((e) => e.device_id).sort(), [a, b].sort(), 'only the first wave is notified');
      const done = await untilRollout(() => rolloutOf(started.id), 'completed');
      const states = Object.fromEntries(done.executions.map((e) => [e.device_id, e.state]));
      assert.deepEqual(states, { [a]: 'succeeded', [b]: 'rolled_back', [c]: 'succeeded', [d]: 'succeeded' });
      for (const id of [a, c, d]) {
        const status = await agents.get(id)!.kernel.getStatus();
        assert.deepEqual([status.currentVersion, status.previousVersion, status.commits, status.rollbacks], ['2.0.0', factoryVersion, 1, 0], id);
        assert.equal(agents.get(id)!.updates.installedReleaseCounter, 1);
      }
      // Every device took the artifact over HTTPS from the embedded blob store, by the presigned GET of its notice.
      for (const id of devices) {
        assert.ok(logs.get(id)!.some((line) => line.message === 'artifact downloaded from its presigned URL'), `${id}: ${JSON.stringify(logs.get(id)!.map((line) => line.message))}`);
        assert.match(agents.get(id)!.updates.current?.notice.artifact_url ?? '', /^https:\/\/127\.0\.0\.1:\d+\/v1\/blobs\/sdc\/ota\/artifacts\/[0-9a-f]{64}\?X-Amz-Algorithm=AWS4-HMAC-SHA256&/, id);
      }
      const bStatus = await agents.get(b)!.kernel.getStatus();
      assert.deepEqual([bStatus.currentVersion, bStatus.commits, bStatus.rollbacks], [factoryVersion, 1, 1], 'the kernel rolled the failed update back');
      assert.equal(done.waves[0]!.failed, 1);
      // Success came from each device's signed version report: the audit chain says so, device by device.
      // (Chained from the outbox after each commit, so the last one may still be on its way.)
      const successes = await eventually('three successes in the audit chain', async () => {
        const rows = await system.deployment.controlPlane!.context.db.query<{ actor: string; payload_json: string }>(
          "SELECT actor, payload_json FROM audit_log WHERE kind = 'ota.execution.transition' AND subject LIKE ?", [`device:e2e-ota-${system.tag}-%`]);
        const found = rows.map((row) => ({ actor: row.actor, payload: JSON.parse(row.payload_json) as { to: string; event: string; rollout_id: string } }))
          .filter((entry) => entry.payload.to === 'succeeded' && entry.payload.rollout_id === started.id);
        return found.length >= 3 ? found : undefined;
      });
      assert.deepEqual(successes.map((entry) => entry.actor).sort(), [a, c, d].map((id) => `device:${id}`).sort());
      assert.ok(successes.every((entry) => entry.payload.event === 'health_check_pass'));
      // The metrics hook counted the finished executions by state. Eventually: it runs in the
      // transition's continuation after its COMMIT, and a reader can see the committed state first
      // (the API, or the audit chain drained by another transition's settleAudit meanwhile).
      const counts = async () => {
        const counted = new Map((await system.deployment.controlPlane!.metrics.otaExecutions.get()).values.map((v) => [v.labels['state'], v.value]));
        return [counted.get('succeeded'), counted.get('rolled_back')];
      };
      await eventually('the metrics hook to count the finished executions', async () => (isDeepStrictEqual(await counts(), [3, 1]) ? true : undefined)).catch(async (error: unknown) => {
        assert.deepEqual(await counts(), [3, 1], (error as Error).message);
      });
    });

    it('a first wave over its error threshold pauses the rollout, and no device of the second wave is notified', async () => {
      const [a, b, c, d] = devices as [string, string, string, string];
      await publishTestRelease(ota(), keys, { id: `e2e-${system.tag}-2-1-0`, version: '2.1.0', artifact: Buffer.from('sdc e2e firmware 2.1.0\n'.repeat(256)) });
      unhealthy.add(a);
      const before = new Map([c, d].map((id) => [id, agents.get(id)!.updates.current?.executionId]));
      // What wave 2 runs now (2.0.0 after the first test): untouched by this rollout, whatever the first test left.
      const versionsBefore = new Map(await Promise.all([c, d].map(async (id) => [id, (await agents.get(id)!.kernel.getStatus()).currentVersion] as const)));
      const started = await system.api<RolloutView>('POST', '/v1/rollouts', {
        release_id: `e2e-${system.tag}-2-1-0`, platform: 'linux-x64', device_ids: devices, devices_per_minute_max: 100,
        waves: [wave([a, b], 50, 2), wave([c, d], 50, 1)],
      });
      const paused = await untilRollout(() => rolloutOf(started.id), 'paused');
      assert.equal(paused.pause_reason, 'error_threshold');
      assert.deepEqual(paused.executions.map((e) => [e.device_id, e.state]).sort(), [[a, 'rolled_back'], [b, 'rolled_back']].sort());
      // The pause is final for wave 2 until an operator acts: a few sweeps later still nobody there was told.
      const sweepsLater = systemClock.nowMs() + 3_000;
      await eventually('three rollout sweeps', () => (systemClock.nowMs() >= sweepsLater ? true : undefined));
      const still = await rolloutOf(started.id);
      assert.equal(still.executions.length, 2);
      for (const id of [c, d]) {
        assert.equal(agents.get(id)!.updates.current?.executionId, before.get(id), `${id} got no notice`);
        assert.equal((await agents.get(id)!.kernel.getStatus()).currentVersion, versionsBefore.get(id), `${id} runs what it ran`);
      }
      const aborted = await system.api<RolloutView>('POST', `/v1/rollouts/${started.id}/abort`, {});
      assert.equal(aborted.status, 'aborted');
      assert.ok(aborted.executions.every((e) => terminal.has(e.state)));
    });
  });
}
