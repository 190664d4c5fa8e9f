import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentIdentity } from '../agent/enrollment.js';
import { mainThreadCpuMs, type ProcessLoad } from './process-load.js';
import { checkLadderRates, runLadder, type LadderOptions } from './roundtrip-ladder.js';
import type { BenchApi } from './roundtrip-deployment.js';
import type { LiveTracker } from './roundtrip-live.js';

const load = (elu: number, cpuMs: number, mainCpu?: number): ProcessLoad => ({
  event_loop_utilization: elu, event_loop_delay_ms: { p50: 10, p99: 12, max: 15 }, cpu_per_wall: elu, cpu_ms: cpuMs,
  ...(mainCpu === undefined ? {} : { main_thread_cpu_per_wall: mainCpu }),
});

/**
 * A ladder on a virtual clock: every POST takes 5 ms, every terminal event comes `terminalAfterMs(rate)`
 * after it; the load monitor answers `loads` in order (the idle one first).
 */
function virtualLadder(rates: number[], loads: ProcessLoad[], terminalAfterMs: (rate: number) => number) {
  let now = 1_000;
  const posts: Array<{ device: string; key: string }> = [];
  const records = new Map<string, number>();
  let currentRate = 0;
  const api = (async (_method: string, _path: string, body: { device_id: string }, headers: Record<string, string>) => {
    posts.push({ device: body.device_id, key: headers['idempotency-key']! });
    now += 5;
    const id = `c${posts.length}`;
    records.set(id, currentRate);
    return { id };
  }) as unknown as BenchApi;
  const live = {
    epoch: 0,
    waitTerminal: async (id: string) => {
      const atMs = now + terminalAfterMs(records.get(id)!);
      await new Promise((resolve) => setImmediate(resolve));
      now = Math.max(now, atMs);
      return { state: 'succeeded', atMs };
    },
  } as unknown as LiveTracker;
  const pending = [...loads];
  const identities = ['d-1', 'd-2', 'd-3'].map((deviceId) => ({ deviceId }) as AgentIdentity);
  const options: LadderOptions = {
    api, live, identities, runTag: 't', ratesPerS: rates, stepMs: 1_000, idleMs: 500, eluMax: 0.5,
    deadlineMs: Date.now() + 600_000, progress: () => undefined,
    readRecords: async (ids) => ({ byState: { succeeded: ids.length }, serverSamples: ids.map(() => 7), stepSamples: {}, unread: 0 }),
    nowMs: () => now,
    sleepUntil: async (atMs) => {
      await new Promise((resolve) => setImmediate(resolve));
      now = Math.max(now, atMs);
    },
    monitor: () => {
      const next = pending.shift() ?? load(1, 0);
      // The rate of the step now starting (the idle measurement takes the first load).
      currentRate = rates[loads.length - pending.length - 2] ?? 0;
      return { stop: () => next };
    },
  };
  return { options, posts };
}

describe('bench roundtrip --ladder: open-loop steps after the commands phase (issue 17)', () => {
  it('runs the steps in order, stops after the first at or over the utilization bound, and names the highest rate under it', async () => {
    const { options, posts } = virtualLadder([10, 20, 40, 80], [load(0.05, 50), load(0.2, 200), load(0.35, 500), load(0.6, 1_600)], () => 40);
    const ladder = await runLadder(options);
    assert.equal(ladder.idle_load.event_loop_utilization, 0.05);
    assert.deepEqual(ladder.steps.map((s) => [s.rate_per_s, s.commands.offered, s.commands.succeeded, s.sustained]), [[10, 10, 10, true], [20, 20, 20, true], [40, 40, 40, true]]);
    assert.deepEqual(ladder.rates_not_run, [80], 'no step above the first one at the bound');
    assert.equal(ladder.sustained_rate_below_elu_per_s, 20);
    assert.equal(ladder.sustained_rate_below_main_thread_cpu_per_s, null, 'not known here');
    assert.deepEqual(ladder.steps.map((s) => s.cpu_ms_per_command), [20, 25, 40]);
    assert.equal(posts.length, 70);
    // Command i of a step to agent (offset + i) mod N, the next step going on from where the last ended; every key its own.
    assert.deepEqual(posts.slice(0, 4).map((p) => p.device), ['d-1', 'd-2', 'd-3', 'd-1']);
    assert.equal(posts[10]!.device, 'd-2', 'step 2 begins on the agent after step 1\'s last (10 commands over 3 agents)');
    assert.equal(new Set(posts.map((p) => p.key)).size, posts.length);
    assert.deepEqual(posts.slice(9, 11).map((p) => p.key), ['bench-t-ladder0-9', 'bench-t-ladder1-0']);
  });

  it('a step whose last terminal event comes more than the drain bound after its last due time is not sustained and ends the ladder', async () => {
    // 20/s: every event 2.5 s after its POST, so the step ends 2.5 s behind its schedule.
    const { options } = virtualLadder([10, 20, 40], [load(0.05, 50), load(0.2, 200), load(0.3, 400)], (rate) => (rate === 20 ? 2_500 : 40));
    const ladder = await runLadder(options);
    assert.deepEqual(ladder.steps.map((s) => s.sustained), [true, false]);
    assert.match(ladder.steps[1]!.not_sustained_because ?? '', /fell behind/);
    assert.equal(ladder.steps[1]!.drain_ms! > 2_000, true);
    assert.deepEqual(ladder.rates_not_run, [40]);
    assert.equal(ladder.sustained_rate_below_elu_per_s, 10, 'under the bound but not sustained does not count');
  });

  it('client times run from each command\'s due time; server times come from the records read back', async () => {
    const { options } = virtualLadder([10], [load(0.05, 50), load(0.1, 100)], () => 40);
    const ladder = await runLadder(options);
    const step = ladder.steps[0]!;
    assert.equal(step.client_ms.count, 10);
    assert.equal(step.client_ms.p50 >= 45 && step.client_ms.p50 < 50, true, `5 ms POST + 40 ms to the event, got ${step.client_ms.p50}`);
    assert.equal(step.server_ms.p50, 7);
  });

  it('on a machine others keep busy (utilization over the bound, the main thread\'s own CPU under it) the ladder goes on until the thread itself reaches the bound', async () => {
    const { options } = virtualLadder([10, 20, 40, 80], [load(0.02, 50, 0.01), load(0.9, 200, 0.1), load(0.95, 500, 0.3), load(0.99, 1_600, 0.55)], () => 40);
    const ladder = await runLadder(options);
    assert.deepEqual(ladder.steps.map((s) => s.rate_per_s), [10, 20, 40]);
    assert.deepEqual(ladder.rates_not_run, [80]);
    assert.equal(ladder.sustained_rate_below_elu_per_s, null);
    assert.equal(ladder.sustained_rate_below_main_thread_cpu_per_s, 20);
  });

  it('reads the main thread\'s CPU from its stat line, whatever its command name holds', () => {
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    const stat = '4242 (node) a b) R 1 4242 4242 0 -1 4194304 100 0 0 0 250 30 0 0 20 0 11 0';
    assert.equal(mainThreadCpuMs(4242, () => stat), 2_800, '(250 + 30) ticks of 10 ms');
    assert.equal(mainThreadCpuMs(4242, () => { throw new Error('ENOENT'); }), undefined);
    assert.equal(mainThreadCpuMs(4242, () => '4242 (node) R 1'), undefined);
    // This process's own, as /proc has it (Linux): some CPU, no more than the whole process's.
    const own = mainThreadCpuMs();
    if (own !== undefined) {
      const all = process.cpuUsage();
      assert.equal(own >= 0 && own <= (all.user + all.system) / 1_000 + 20, true);
    }
  });

  it('refuses rates out of order, too many steps, or too many commands in one step', () => {
    assert.equal(checkLadderRates([10, 20, 40], 20_000), undefined);
    assert.match(checkLadderRates([20, 10], 20_000)!, /ascending/);
    assert.match(checkLadderRates([10, 10], 20_000)!, /ascending/);
    assert.match(checkLadderRates([], 20_000)!, /rates/);
    assert.match(checkLadderRates(Array.from({ length: 17 }, (_, i) => i + 1), 1_000)!, /rates/);
    assert.match(checkLadderRates([10_000], 600_000)!, /commands per step/);
  });
});
