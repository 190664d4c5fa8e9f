import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CommandState } from '../../core/protocol/command-machine.js';
import { SeededRandom } from '../../core/random/prng.js';
import { builtinScenarioPath, loadScenario } from '../scenario.js';
import { AcceptedCommands, drainCommands } from './command-schedule.js';
import { planFleet } from './fleet.js';
import type { LiveStates } from './live-states.js';
import type { OperatorApi } from './operator-api.js';
import type { WorkerPool } from './worker-pool.js';
import type { WorkerStatus } from './messages.js';
import { checkCommandRecords, readStoredTelemetry, type CommandRecord } from './outside-checks.js';
import { realCheckerNames, ViolationLog } from './violations.js';

// The steps of `sdc sim --real` that need no deployment; test/e2e/sim-real.test.ts runs them all against one.

describe('sim --real: planFleet', () => {
  it('draws the same seeds, clock skews and start delays from the same seed, within the ramp and the skew bound', async () => {
    const smoke = await loadScenario(builtinScenarioPath('smoke'));
    const scenario = { ...smoke, faults: { ...smoke.faults, clockSkewMsMax: 2_000 } };
    const plan = (seed: number) => planFleet({ seed, agentCount: 300, scenario, random: new SeededRandom(seed).fork(), workDir: '/w' });
    const drawn = (agents: ReturnType<typeof plan>) => agents.map((a) => [a.seed, a.clockSkewMs, a.startDelayMs]);
    const first = plan(7);
    assert.deepEqual(drawn(plan(7)), drawn(first));
    assert.notDeepEqual(drawn(plan(8)), drawn(first));
    // The ramp is 5 ms per agent (1 to 20 s): 1.5 s for 300 agents.
    assert.ok(first.every((a) => a.startDelayMs >= 0 && a.startDelayMs < 1_500));
    assert.ok(first.every((a) => Math.abs(a.clockSkewMs) <= 2_000));
    assert.ok(first.some((a) => a.clockSkewMs !== 0));
    assert.equal(new Set(first.map((a) => a.deviceId)).size, 300);
    assert.match(first[0]!.deviceId, /^simr-7-[0-9a-f]{6}-00001$/);
    assert.equal(first[0]!.dir, `/w/agents/${first[0]!.deviceId}`);
  });
});

describe('sim --real: ViolationLog', () => {
  it('keeps the first 50 violations and fails exactly the checkers that reported one', () => {
    const log = new ViolationLog();
    for (let i = 0; i < 60; i += 1) log.add('liveness', `late ${i}`);
    log.add('presence', 'never kept: the log is full');
    assert.equal(log.all.length, 50);
    assert.equal(log.all.at(-1)!.message, 'late 49');
    const verdicts = log.verdicts();
    assert.deepEqual(Object.keys(verdicts).sort(), [...realCheckerNames].sort());
    assert.deepEqual(Object.entries(verdicts).filter(([, v]) => v === 'fail').map(([name]) => name).sort(), ['liveness', 'presence']);
  });
});

describe('sim --real: AcceptedCommands', () => {
  it('counts a command the live stream has not named yet as queued, and lists the unfinished', () => {
    const states = new Map<string, CommandState>([['a', 'succeeded'], ['b', 'executing']]);
    const live: LiveStates = { get: (id) => states.get(id), set: (id, s) => { states.set(id, s); }, ended: false, resyncs: 0, close: () => undefined };
    const accepted = new AcceptedCommands(live);
    accepted.ids.push('a', 'b', 'c');
    const byState = accepted.byState();
    assert.deepEqual([byState.succeeded, byState.executing, byState.queued], [1, 1, 1]);
    assert.deepEqual(accepted.unfinished(), ['b', 'c']);
  });
});

describe('sim --real: checkCommandRecords', () => {
  const status: WorkerStatus = { agents: 0, started: 0, connected: 0, sessionsReady: 0, sessionsClosed: 0, executions: 0, rejections: 0, kernelCalls: 0, violations: 0,
    telemetryFramesSent: 0, telemetryBatchFramesSent: 0, telemetrySamplesSent: 0, telemetrySamplesBuffered: 0, telemetrySamplesDropped: 0 };
  const at = (state: CommandState, atMs: number, event?: string) => ({ state, at_ms: atMs, ...(event === undefined ? {} : { detail: { event } }) });
  const succeeded = (id: string, rttMs: number): CommandRecord => ({
    id, state: 'succeeded', history: [at('queued', 1_000, 'create'), at('sent', 1_001, 'deliver'), at('succeeded', 1_000 + rttMs, 'succeed')],
  });

  it('passes a clean run and buckets each device result by its round trip', () => {
    const records = [succeeded('c1', 40), succeeded('c2', 700)];
    const violations = new ViolationLog();
    const checked = checkCommandRecords({ records, accepted: ['c1', 'c2'], collection: { executions: new Map([['c1', 1], ['c2', 1]]), connected: new Set(), status }, violations });
    assert.deepEqual(violations.all, []);
    assert.equal(checked.commandsByState.succeeded, 2);
    assert.deepEqual(checked.latencyHistogram.filter((b) => b.count > 0), [{ le_ms: 50, count: 1 }, { le_ms: 1_000, count: 1 }]);
  });

  it('reports a command run twice, a success no kernel saw, a never-run state that ran, and a command that is not terminal', () => {
    const expired: CommandRecord = { id: 'c3', state: 'expired', history: [at('queued', 1_000, 'create'), at('expired', 2_000, 'expire')] };
    const open: CommandRecord = { id: 'c4', state: 'executing', history: [at('queued', 1_000, 'create')] };
    const records = [succeeded('c1', 40), succeeded('c2', 40), expired, open];
    const violations = new ViolationLog();
    checkCommandRecords({ records, accepted: ['c1', 'c2', 'c3', 'c4'], collection: { executions: new Map([['c1', 2], ['c3', 1]]), connected: new Set(), status }, violations });
    const found = (checker: string) => violations.all.filter((v) => v.checker === checker).map((v) => v.message);
    assert.deepEqual(found('at_most_once'), ['command c1 took effect 2 times']);
    assert.deepEqual(found('ran_once'), ['command c1 succeeded with 2 kernel executions', 'command c2 succeeded with 0 kernel executions']);
    assert.deepEqual(found('not_executed'), ['command c3 is expired, which guarantees it never ran, but took effect 1 times']);
    assert.equal(found('none_lost').length, 1);
    assert.match(found('none_lost')[0]!, /c4/);
  });
});

describe('sim --real: drainCommands', () => {
  // The live stream said `executing` for b; the API knows it `succeeded` (its terminal change was not published).
  const setUp = (resyncs: number, apiState: CommandState) => {
    const states = new Map<string, CommandState>([['a', 'succeeded'], ['b', 'executing']]);
    const live: LiveStates = { get: (id) => states.get(id), set: (id, s) => { states.set(id, s); }, ended: false, resyncs, close: () => undefined };
    const asked: string[] = [];
    const api = { call: async (_method: string, path: string) => { asked.push(path); return { state: apiState }; } } as unknown as OperatorApi;
    const pool = { assertHealthy: () => undefined } as unknown as WorkerPool;
    const accepted = new AcceptedCommands(live);
    accepted.ids.push('a', 'b');
    return { live, api, pool, accepted, asked, violations: new ViolationLog() };
  };

  it('reads the open commands back after the stream says resync, and finishes without a violation', async () => {
    const run = setUp(1, 'succeeded');
    const waitedMs = await drainCommands({ ...run, boundMs: 60_000 });
    assert.notEqual(waitedMs, null);
    assert.deepEqual(run.asked, ['/v1/commands/b']);
    assert.deepEqual(run.violations.all, []);
  });

  it('at the bound, a command the API calls terminal fails live_feed (the stream was silent), not liveness', async () => {
    const run = setUp(0, 'succeeded');
    const waitedMs = await drainCommands({ ...run, boundMs: 0 });
    assert.notEqual(waitedMs, null);
    assert.deepEqual(run.violations.all.map((v) => v.checker), ['live_feed']);
    assert.match(run.violations.all[0]!.message, /first: b\)/);
  });

  it('at the bound, a command the API still calls open fails liveness', async () => {
    const run = setUp(0, 'executing');
    assert.equal(await drainCommands({ ...run, boundMs: 0 }), null);
    assert.deepEqual(run.violations.all.map((v) => v.checker), ['liveness']);
  });
});

describe('sim --real: readStoredTelemetry', () => {
  it('counts distinct samples (device, time, metrics) and the duplicate rows apart, and looks again until the distinct samples reach those sent', async () => {
    // 5 samples sent: a-1 at 1000, 2000, 3000 and a-2 at 1000, 2000. The first look holds a-1's
    // 2000 twice and not yet its 3000 (5 rows, 4 samples); the second holds the 3000 too.
    const row = (tsMs: number, cpu: number) => ({ ts_ms: tsMs, metrics: { cpu }, risk_score: null });
    const looks: Array<Record<string, ReturnType<typeof row>[]>> = [
      { 'a-1': [row(2000, 2), row(2000, 2), row(1000, 1)], 'a-2': [row(2000, 5), row(1000, 4)] },
      { 'a-1': [row(3000, 3), row(2000, 2), row(2000, 2), row(1000, 1)], 'a-2': [row(2000, 5), row(1000, 4)] },
    ];
    const asked: string[] = [];
    const api = {
      call: async (method: string, path: string) => {
        asked.push(path);
        const id = decodeURIComponent(path.split('/')[3]!);
        const look = looks[Math.min(asked.filter((p) => p.includes(`/${id}/`)).length, looks.length) - 1]!;
        assert.equal(method, 'GET');
        return { items: look[id] ?? [] };
      },
    } as unknown as OperatorApi;
    // The 1 s wait between looks is on the system scheduler, whose timers do not hold the process open.
    const keepAlive = setInterval(() => {}, 60_000);
    const stored = await readStoredTelemetry(api, ['a-1', 'a-2'], 5).finally(() => clearInterval(keepAlive));
    assert.deepEqual(stored, { stored: 5, duplicates: 1 });
    assert.equal(asked.length, 4, 'two looks of two devices: the first, 5 rows but 4 samples, is not enough');
  });
});
