import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Scheduler, TimerHandle } from '../../core/ports/ports.js';
import { SdcError } from '../../core/errors/index.js';
import { Readiness, readinessLimits } from './readiness.js';

/** A clock and scheduler the test moves by hand. */
class ManualTime implements Scheduler {
  nowMsValue = 1_000_000;
  #next = 1;
  readonly timers = new Map<number, { atMs: number; callback: () => void }>();
  nowMs(): number { return this.nowMsValue; }
  schedule(delayMs: number, callback: () => void): TimerHandle {
    const id = this.#next++;
    this.timers.set(id, { atMs: this.nowMsValue + delayMs, callback });
    return { id };
  }
  cancel(handle: TimerHandle): void { this.timers.delete(handle.id); }
  advance(ms: number): void {
    this.nowMsValue += ms;
    for (const [id, timer] of [...this.timers]) {
      if (timer.atMs <= this.nowMsValue) {
        this.timers.delete(id);
        timer.callback();
      }
    }
  }
}

const dependencies = [{ name: 'mysql', role: 'sql' as const }, { name: 'redis', role: 'bus and key/value' as const }];

describe('Readiness', () => {
  it('while starting: what the connects last saw, never ready', async () => {
    const time = new ManualTime();
    const readiness = new Readiness({ dependencies, clock: time, scheduler: time });
    assert.deepEqual((await readiness.report()).dependencies.map((d) => d.state), ['waiting', 'waiting']);
    readiness.markDown('mysql', 'STORE_UNAVAILABLE');
    readiness.markUp('redis');
    const report = await readiness.report();
    assert.deepEqual({ ready: report.ready, status: report.status, down: report.down }, { ready: false, status: 'starting', down: ['mysql'] });
    assert.equal(await readiness.waitingFor(), 'the control plane is waiting for mysql (down)');
  });

  it('while running: probes at most once per reportCacheMs whatever the request rate, one round at a time', async () => {
    const time = new ManualTime();
    const readiness = new Readiness({ dependencies, clock: time, scheduler: time });
    let calls = 0;
    let mysqlUp = true;
    readiness.running(new Map([
      ['mysql', async () => { calls += 1; if (!mysqlUp) throw new SdcError('STORE_UNAVAILABLE', 'down'); }],
      ['redis', async () => { calls += 1; }],
    ]));
    const burst = await Promise.all(Array.from({ length: 50 }, () => readiness.report()));
    assert.ok(burst.every((r) => r.ready && r.status === 'ready'));
    assert.equal(calls, 2, 'one probe per store for 50 concurrent requests');
    await readiness.report();
    assert.equal(calls, 2, 'cached within the interval');
    mysqlUp = false;
    time.advance(readinessLimits.reportCacheMs);
    const down = await readiness.report();
    assert.equal(calls, 4);
    assert.deepEqual({ ready: down.ready, status: down.status, down: down.down }, { ready: false, status: 'not_ready', down: ['mysql'] });
    assert.equal(down.dependencies[0]!.code, 'STORE_UNAVAILABLE');
  });

  it('a probe that does not answer counts as down after probeTimeoutMs', async () => {
    const time = new ManualTime();
    const readiness = new Readiness({ dependencies, clock: time, scheduler: time });
    readiness.running(new Map([['mysql', () => new Promise(() => undefined)], ['redis', async () => undefined]]));
    const pending = readiness.report();
    await new Promise((resolve) => setImmediate(resolve));
    time.advance(readinessLimits.probeTimeoutMs);
    const report = await pending;
    assert.deepEqual(report.down, ['mysql']);
  });
});
