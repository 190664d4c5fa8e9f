import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Writable } from 'node:stream';
import type { Scheduler, TimerHandle } from '../../core/ports/ports.js';
import { SdcError } from '../../core/errors/index.js';
import { parseStoreUrl } from '../stores/store-url.js';
import { Readiness } from './readiness.js';
import { isStoreLoss, startAttemptsMax, startRidingOutStoreLoss } from './start-store-loss.js';
import { storeRetryNone } from './store-connect.js';

/** Every wait is over at once, in order: the test follows the steps, never the time. */
class ImmediateScheduler implements Scheduler {
  #next = 1;
  readonly #cancelled = new Set<number>();
  schedule(_delayMs: number, callback: () => void): TimerHandle {
    const id = this.#next++;
    setImmediate(() => { if (!this.#cancelled.delete(id)) callback(); });
    return { id };
  }
  cancel(handle: TimerHandle): void { this.#cancelled.add(handle.id); }
}

const random = { bytes: (n: number) => new Uint8Array(n), intBelow: () => 0 };
const limits = { attemptsMax: 10, backoffMsInitial: 10, backoffMsMax: 20 };
const lost = () => new SdcError('STORE_UNAVAILABLE', 'Connection lost: The server closed the connection.');

function world() {
  const lines: Array<{ msg: string; down?: string[] }> = [];
  const logger = pino({ level: 'info' }, new Writable({ write(chunk, _encoding, done) { lines.push(JSON.parse(String(chunk))); done(); } }));
  const scheduler = new ImmediateScheduler();
  const readiness = new Readiness({ dependencies: [{ name: 'mysql', role: 'sql' }], clock: { nowMs: () => 0 }, scheduler });
  readiness.markUp('mysql');
  const store = { up: true, probes: 0 };
  const probes = new Map([['mysql', {
    target: parseStoreUrl('mysql', 'mysql://root:secret@db.example:3306/sdc'),
    probe: async () => { store.probes += 1; if (!store.up) throw lost(); },
  }]]);
  return { lines, logger, scheduler, readiness, store, probes };
}

describe('a store lost part-way through start-up', () => {
  it('undoes the attempt, names the store down while it waits, and starts again once it answers', async () => {
    const w = world();
    const events: string[] = [];
    let attempts = 0;
    const started = await startRidingOutStoreLoss({
      limits, probes: w.probes, readiness: w.readiness, scheduler: w.scheduler, random, logger: w.logger,
      attempt: async (onStop) => {
        attempts += 1;
        events.push(`attempt ${attempts}`);
        onStop(async () => { events.push(`stop gateway ${attempts}`); });
        if (attempts === 1) {
          // MySQL goes away mid-migration: down for the next two probes, then back.
          w.store.up = false;
          let probesLeft = 2;
          const probe = w.probes.get('mysql')!;
          w.probes.set('mysql', { ...probe, probe: async () => { if (probesLeft-- > 0) { events.push(`readyz down: ${(await w.readiness.report()).down.join(',')}`); throw lost(); } w.store.up = true; } });
          throw new SdcError('STORE_MIGRATION_FAILED', 'migration 007 failed', {}, { cause: lost() });
        }
        return 'running';
      },
    });
    assert.equal(started.value, 'running');
    assert.equal(attempts, 2);
    // The failed attempt was stopped before the wait; /readyz named mysql while waiting.
    assert.deepEqual(events, ['attempt 1', 'stop gateway 1', 'readyz down: ', 'readyz down: mysql', 'attempt 2']);
    assert.equal((await w.readiness.report()).down.length, 0);
    // The successful attempt's stops go with the deployment.
    assert.equal(started.stops.length, 1);
    const warned = w.lines.find((line) => line.msg.startsWith('a store was lost while starting'));
    assert.deepEqual(warned?.down, ['mysql']);
    assert.ok(!JSON.stringify(w.lines).includes('secret'), 'the password is never logged');
  });

  it('throws at once an error that is not a store loss while the stores answer, and with storeRetryNone', async () => {
    const w = world();
    let attempts = 0;
    await assert.rejects(startRidingOutStoreLoss({
      limits, probes: w.probes, readiness: w.readiness, scheduler: w.scheduler, random, logger: w.logger,
      attempt: async () => { attempts += 1; throw new SdcError('STORE_MIGRATION_FAILED', 'syntax'); },
    }), (error) => SdcError.is(error, 'STORE_MIGRATION_FAILED'));
    assert.equal(attempts, 1);
    attempts = 0;
    await assert.rejects(startRidingOutStoreLoss({
      limits: storeRetryNone, probes: w.probes, readiness: w.readiness, scheduler: w.scheduler, random, logger: w.logger,
      attempt: async () => { attempts += 1; throw lost(); },
    }), (error) => SdcError.is(error, 'STORE_UNAVAILABLE'));
    assert.equal(attempts, 1);
  });

  it('gives up after startAttemptsMax starts with the last failure', async () => {
    const w = world();
    let attempts = 0;
    await assert.rejects(startRidingOutStoreLoss({
      limits, probes: w.probes, readiness: w.readiness, scheduler: w.scheduler, random, logger: w.logger,
      attempt: async () => { attempts += 1; throw lost(); },
    }), (error) => SdcError.is(error, 'STORE_UNAVAILABLE'));
    assert.equal(attempts, startAttemptsMax);
  });

  it('a store loss is STORE_UNAVAILABLE itself or anywhere in the causes', () => {
    assert.equal(isStoreLoss(lost()), true);
    assert.equal(isStoreLoss(new SdcError('STORE_MIGRATION_FAILED', 'x', {}, { cause: new Error('y', { cause: lost() }) })), true);
    assert.equal(isStoreLoss(new SdcError('STORE_MIGRATION_FAILED', 'x')), false);
    assert.equal(isStoreLoss(undefined), false);
  });
});
