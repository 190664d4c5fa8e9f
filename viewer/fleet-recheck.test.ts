import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FleetRecheck, fleetRecheckLimits, lapsedRows, type PresenceRow } from './fleet-recheck.js';

/**
 * The fleet as sdc-fleet keeps it: rows from the last read with presence events applied; a read
 * answers what the "server" holds at that moment. Timers are a list the test fires.
 */
function harness(server: Map<string, PresenceRow>) {
  let shown = new Map<string, PresenceRow>();
  const timers: Array<{ callback: () => void; delayMs: number; cleared: boolean }> = [];
  let reads = 0;
  const recheck = new FleetRecheck({
    rows: () => shown.values(),
    reread: () => read(),
    setTimer: (callback, delayMs) => { const timer = { callback, delayMs, cleared: false }; timers.push(timer); return timer; },
    clearTimer: (timer) => { (timer as { cleared: boolean }).cleared = true; },
  });
  function read(): void {
    reads += 1;
    shown = new Map(server);
    recheck.afterRead();
  }
  const pending = () => timers.filter((timer) => !timer.cleared);
  const fire = () => {
    const timer = pending().at(-1);
    assert.ok(timer, 'a re-read is scheduled');
    timer.cleared = true;
    timer.callback();
  };
  const presence = (id: string, online: boolean, gatewayId: string) => {
    shown = new Map(shown).set(id, { id, online, gateway_id: online ? gatewayId : null });
  };
  return { recheck, read, fire, pending, presence, timers, reads: () => reads, shown: () => shown };
}

describe('the fleet reads again a row offline with its session on record', () => {
  it('a read during a presence key lapse is corrected with no presence event (the key came back, the session never ended)', () => {
    // The gateway's key expired between two heartbeats: the list says offline, the session is on record.
    const server = new Map<string, PresenceRow>([['d1', { id: 'd1', online: false, gateway_id: 'gw-1' }], ['d2', { id: 'd2', online: true, gateway_id: 'gw-1' }]]);
    const h = harness(server);
    h.read();
    assert.deepEqual(lapsedRows(h.shown().values()), ['d1']);
    // The next heartbeat writes the key again; no event is published for that.
    server.set('d1', { id: 'd1', online: true, gateway_id: 'gw-1' });
    assert.equal(h.pending()[0]?.delayMs, fleetRecheckLimits.firstDelayMs);
    h.fire();
    assert.equal(h.reads(), 2);
    assert.equal(h.shown().get('d1')?.online, true);
    assert.equal(h.pending().length, 0, 'nothing lapsed: no further read');
  });

  it('a presence event before the pause ends settles the row and nothing is read', () => {
    const h = harness(new Map([['d1', { id: 'd1', online: false, gateway_id: 'gw-1' }]]));
    h.read();
    h.presence('d1', true, 'gw-1');
    h.fire();
    assert.equal(h.reads(), 1);
    const h2 = harness(new Map([['d1', { id: 'd1', online: false, gateway_id: 'gw-1' }]]));
    h2.read();
    // The offline event that was on its way clears the session: really offline.
    h2.presence('d1', false, 'gw-1');
    h2.fire();
    assert.equal(h2.reads(), 1);
  });

  it('an offline row with no session on record is not read again', () => {
    const h = harness(new Map([['d1', { id: 'd1', online: false, gateway_id: null }]]));
    h.read();
    assert.equal(h.pending().length, 0);
  });

  it('re-reads are bounded, with doubling pauses (a dead gateway leaves its sessions on record)', () => {
    const h = harness(new Map([['d1', { id: 'd1', online: false, gateway_id: 'gw-dead' }]]));
    h.read();
    const delays: number[] = [];
    while (h.pending().length > 0) {
      delays.push(h.pending()[0]!.delayMs);
      h.fire();
    }
    assert.equal(h.reads(), 1 + fleetRecheckLimits.readsMax);
    assert.deepEqual(delays, Array.from({ length: fleetRecheckLimits.readsMax }, (_, i) => fleetRecheckLimits.firstDelayMs * 2 ** i));
  });

  it('a read of its own (a resync) replaces the pending re-read, and stop cancels it', () => {
    const h = harness(new Map([['d1', { id: 'd1', online: false, gateway_id: 'gw-1' }]]));
    h.read();
    h.read();
    assert.equal(h.pending().length, 1, 'one re-read pending, not two');
    h.recheck.stop();
    assert.equal(h.pending().length, 0);
  });
});
