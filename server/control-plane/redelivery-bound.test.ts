// The redelivery sweep's work per unfinished command is bounded (docs/gateway.md, "Redelivery").
// Before, the sweep re-sent every unfinished command once per 30 s for as long as it stayed
// unfinished (20 re-sends of a silent command in 10 minutes), and two control planes sweeping one
// database at once each appended every due command (each duplicate then re-asked the device through
// its gateway, and the device's answers queued on the control plane's serial event partition).
// Now the wait between re-sends grows with the time since the command's last state change (30,
// 30, 60, 120, 120 s ...), a transition brings it back to 30 s, and each send is claimed by a
// compare-and-set on the row, so one control plane appends it. A device that is away still gets
// its command when it comes back.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBusEntry, encodeBusEntry, presenceRestoredReason } from '../bus-contract/entries.js';
import { gatewayCommandStream, kvKeys, streamNames } from '../bus-contract/streams.js';
import { redispatchIntervalMaxMsDefault, redispatchIntervalMsDefault } from './commands.js';
import { makeHarness, openSecondControlPlane, storePairs, type Harness, type SecondControlPlane, type StorePair } from './test-support.js';

/** The control plane's redelivery sweep period (ControlPlaneOptions.redeliverySweepIntervalMs default). */
const sweepPeriodMs = 5_000;

function suite(pair: StorePair): void {
  describe(`redelivery bound on ${pair.name}`, () => {
    let h: Harness;
    let second: SecondControlPlane;
    const actor = { name: 'op', role: 'operator' as const };
    const stream = gatewayCommandStream('gw1');
    /** Every `deliver` entry on gw1's stream, in order, read through one probe group as they come. */
    const appendedIds: string[] = [];
    const deliveredIds = async (): Promise<string[]> => {
      await h.bus.ensureGroup(stream, 'probe', '0');
      for (;;) {
        const entries = await h.bus.readGroup(stream, 'probe', 'probe', { count: 1_000 });
        for (const entry of entries) appendedIds.push((decodeBusEntry(entry.fields).data as { command: { id: string } }).command.id);
        if (entries.length < 1_000) return [...appendedIds];
      }
    };
    const deliveriesOf = async (commandId: string) => (await deliveredIds()).filter((id) => id === commandId).length;
    const enroll = async (deviceId: string, online: boolean) => {
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [deviceId, h.clock.nowMs()]);
      if (online) await h.cp.context.kv.set(kvKeys.presence(deviceId), JSON.stringify({ gateway_id: 'gw1' }));
    };
    const create = async (deviceId: string) =>
      (await h.cp.commands.create({ actor, deviceId, opcode: 'EXEC_PING_KERNEL', args: {}, ttlMs: 3_600_000 })).command;
    /** Sweeps every sweepPeriodMs for `durationMs` on the manual clock; returns the seconds (from the start) at which the sweep appended `commandId`. */
    const sweepFor = async (durationMs: number, commandId: string): Promise<number[]> => {
      const startMs = h.clock.nowMs();
      const sentAtS: number[] = [];
      for (let elapsedMs = sweepPeriodMs; elapsedMs <= durationMs; elapsedMs += sweepPeriodMs) {
        h.clock.advance(sweepPeriodMs);
        const before = await deliveriesOf(commandId);
        await h.cp.commands.redispatchDue();
        if ((await deliveriesOf(commandId)) > before) sentAtS.push((h.clock.nowMs() - startMs) / 1000);
      }
      return sentAtS;
    };

    before(async () => {
      h = await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
      second = await openSecondControlPlane(h, pair);
    });
    after(async () => {
      await second.close();
      await h.close();
      await pair.sql.cleanup();
    });

    it('re-sends a command that makes no progress after 30, 30, 60 s and then every 120 s, not every 30 s; a transition brings the wait back to 30 s', async () => {
      assert.equal(redispatchIntervalMsDefault, 30_000);
      assert.equal(redispatchIntervalMaxMsDefault, 120_000);
      await enroll('dev-silent', true);
      const command = await create('dev-silent');
      for (const event of ['deliver', 'ack', 'start'] as const) await h.cp.commands.transition(command.id, event, h.clock.nowMs());
      assert.equal(await deliveriesOf(command.id), 1, 'the create dispatched it once');
      // Ten minutes of sweeps while the device never answers (a long run, or its answers lost):
      // 20 re-sends before, 7 now.
      assert.deepEqual(await sweepFor(600_000, command.id), [30, 60, 120, 240, 360, 480, 600]);
      // Progress (here a gateway's delivery report, as after a reconnect) starts the waits again.
      const fresh = await create('dev-silent');
      await h.cp.commands.transition(fresh.id, 'deliver', h.clock.nowMs());
      assert.deepEqual(await sweepFor(60_000, fresh.id), [30, 60], 'the first two waits are the base interval');
      // Its ACK comes with the second re-send: the next wait is 30 s again, not the 60 s it had reached.
      await h.cp.commands.transition(fresh.id, 'ack', h.clock.nowMs());
      assert.deepEqual(await sweepFor(55_000, fresh.id), [30], 'after the ACK: 30 s again');
      for (const c of [command, fresh]) await h.cp.commands.transition(c.id, 'time_out', h.clock.nowMs());
    });

    it('two control planes sweeping one database at once append each due command once', async () => {
      await enroll('dev-two', true);
      const commands = [];
      for (let i = 0; i < 5; i += 1) commands.push(await create('dev-two'));
      for (const c of commands) await h.cp.commands.transition(c.id, 'deliver', h.clock.nowMs());
      const before = (await deliveredIds()).length;
      for (let round = 1; round <= 3; round += 1) {
        h.clock.advance(redispatchIntervalMaxMsDefault);
        const [first, other] = await Promise.all([h.cp.commands.redispatchDue(), second.cp.commands.redispatchDue()]);
        assert.equal(first + other, commands.length, `round ${round}: ${first} + ${other} appends for ${commands.length} due commands`);
      }
      const appended = (await deliveredIds()).slice(before);
      assert.equal(appended.length, 3 * commands.length);
      for (const c of commands) assert.equal(appended.filter((id) => id === c.id).length, 3, `${c.id} appended once per round`);
      // And in the device's order each round: a control plane that lost one command's claim leaves its later ones to the winner.
      const ids = commands.map((c) => c.id as string);
      assert.deepEqual(appended, [...ids, ...ids, ...ids]);
      for (const c of commands) await h.cp.commands.transition(c.id, 'time_out', h.clock.nowMs());
    });

    it('a control plane that loses the claim of a device\'s command to another holds back that device\'s later commands in its pass', async () => {
      await enroll('dev-race', true);
      const [c1, c2] = [await create('dev-race'), await create('dev-race')];
      for (const c of [c1, c2]) await h.cp.commands.transition(c.id, 'deliver', h.clock.nowMs());
      const before = (await deliveredIds()).length;
      h.clock.advance(redispatchIntervalMaxMsDefault);
      // The interleaving, forced: this control plane reads c1 and c2 due; before it claims c1, the
      // other claims c1 and is still appending it when this one goes on with the device's commands.
      const kv = h.cp.context.kv;
      const bus = h.bus;
      const [get, append] = [kv.get.bind(kv), bus.append.bind(bus)];
      let reachedAppend!: () => void;
      const otherAppending = new Promise<void>((resolve) => { reachedAppend = resolve; });
      let openAppend!: () => void;
      const appendGate = new Promise<void>((resolve) => { openAppend = resolve; });
      let otherPass: Promise<number> | undefined;
      kv.get = async (key) => {
        if (otherPass === undefined && key === kvKeys.presence('dev-race')) {
          otherPass = second.cp.commands.redispatchDue({ batchMax: 1 });
          await otherAppending;
        }
        return get(key);
      };
      bus.append = async (stream, fields, options) => {
        if ((decodeBusEntry(fields).data as { command?: { id?: string } }).command?.id === c1.id && otherPass !== undefined) {
          reachedAppend();
          await appendGate;
        }
        return append(stream, fields, options);
      };
      let first: number;
      try {
        first = await h.cp.commands.redispatchDue();
        openAppend();
        assert.equal(await otherPass, 1, 'the other control plane claimed and appended c1');
      } finally {
        kv.get = get;
        bus.append = append;
        openAppend();
      }
      assert.deepEqual((await deliveredIds()).slice(before), [c1.id], 'c2 not appended ahead of c1');
      assert.equal(first, 0, 'lost c1: c2 waits for the next pass');
      h.clock.advance(sweepPeriodMs);
      await h.cp.commands.redispatchDue();
      assert.deepEqual((await deliveredIds()).slice(before), [c1.id, c2.id], 'the device gets them in its order');
      for (const c of [c1, c2]) await h.cp.commands.transition(c.id, 'time_out', h.clock.nowMs());
    });

    it('a command the sweep stamped while its device\'s presence key had lapsed goes at the first pass after the key is back, not after its wait', async () => {
      await enroll('dev-lapse', true);
      // Its AUTH online recorded the gateway; then the key lapses (a store that lost its keys) while the session lives on.
      await h.db.execute('UPDATE devices SET gateway_id = ? WHERE id = ?', ['gw1', 'dev-lapse']);
      await h.cp.context.kv.del(kvKeys.presence('dev-lapse'));
      const command = await create('dev-lapse');
      // A minute without the key: the sweep only stamps it (at 5 s and again at 35 s).
      assert.deepEqual(await sweepFor(60_000, command.id), [], 'no key: the sweep only stamps it');
      // The session's next refresh writes the key again and reports a restored online, which redelivers nothing (cd440bf).
      await h.cp.context.kv.set(kvKeys.presence('dev-lapse'), JSON.stringify({ gateway_id: 'gw1' }));
      await h.bus.append(streamNames.events, encodeBusEntry('presence', {
        device_id: 'dev-lapse', gateway_id: 'gw1', session_id: `s_${h.clock.nowMs()}`, online: true, at_ms: h.clock.nowMs(), reason: presenceRestoredReason,
      }));
      await h.cp.eventsConsumer.drain();
      assert.equal(await deliveriesOf(command.id), 0, 'the restored online leaves it to the sweep');
      // The next pass of both control planes: sent once, now (before: at its next due send, 30 to 120 s later).
      h.clock.advance(sweepPeriodMs);
      await Promise.all([h.cp.commands.redispatchDue(), second.cp.commands.redispatchDue()]);
      assert.equal(await deliveriesOf(command.id), 1, 'sent at the first pass that finds the key');
      // And not again until its ordinary wait: the release was its send.
      h.clock.advance(sweepPeriodMs);
      await h.cp.commands.redispatchDue();
      assert.equal(await deliveriesOf(command.id), 1);
      await h.cp.commands.transition(command.id, 'time_out', h.clock.nowMs());
    });

    /** A device enrolled online whose AUTH online recorded gw1, then its key lapses (a store that lost its keys) while the session lives on. */
    const lapsed = async (deviceId: string) => {
      await enroll(deviceId, true);
      await h.db.execute('UPDATE devices SET gateway_id = ? WHERE id = ?', ['gw1', deviceId]);
      await h.cp.context.kv.del(kvKeys.presence(deviceId));
    };
    const dispatchedAt = async (commandId: string) =>
      (await h.db.query<{ dispatched_at: number | null }>('SELECT dispatched_at FROM commands WHERE id = ?', [commandId]))[0]?.dispatched_at;
    /** The `deliver` entries for `commands` appended after the first `before` entries, in order. */
    const appendedOf = async (before: number, commands: ReadonlyArray<{ id: string }>) =>
      (await deliveredIds()).slice(before).filter((id) => commands.some((c) => c.id === id));

    it('lapsed key, two control planes: one stamped c1, the other c2; when the key is back the device gets c1 before c2, each once', async () => {
      await lapsed('dev-lapse-two');
      const before = (await deliveredIds()).length;
      const c1 = await create('dev-lapse-two');
      h.clock.advance(sweepPeriodMs);
      await second.cp.commands.redispatchDue();
      const c2 = await create('dev-lapse-two');
      h.clock.advance(sweepPeriodMs);
      await h.cp.commands.redispatchDue();
      // The other control plane stamped c1, this one c2 (c1 not due again for 30 s).
      assert.equal(await dispatchedAt(c1.id), h.clock.nowMs() - sweepPeriodMs);
      assert.equal(await dispatchedAt(c2.id), h.clock.nowMs());
      assert.deepEqual(await appendedOf(before, [c1, c2]), [], 'no key: only stamped');
      await h.cp.context.kv.set(kvKeys.presence('dev-lapse-two'), JSON.stringify({ gateway_id: 'gw1' }));
      // The next passes, this control plane's first (before: it sent c2, and c1 followed at the other's pass).
      for (let pass = 0; pass < 2; pass += 1) {
        h.clock.advance(sweepPeriodMs);
        await h.cp.commands.redispatchDue();
        await second.cp.commands.redispatchDue();
      }
      assert.deepEqual(await appendedOf(before, [c1, c2]), [c1.id, c2.id], 'in device_seq order, each once');
      for (const c of [c1, c2]) await h.cp.commands.transition(c.id, 'time_out', h.clock.nowMs());
    });

    it('lapsed key, one control plane: c1 stamped the longest wait ago and c2 recently; when the key is back the device gets c1 before c2', async () => {
      await lapsed('dev-lapse-old');
      const before = (await deliveredIds()).length;
      const c1 = await create('dev-lapse-old');
      // c1 stamped at 5, 35, 70 and 140 s; c2 created at 200 s, stamped at 205 and 235 s.
      assert.deepEqual(await sweepFor(200_000, c1.id), []);
      const c2 = await create('dev-lapse-old');
      assert.deepEqual(await sweepFor(55_000, c2.id), []);
      // At the next pass c1's stamp is the longest wait old (due), c2's is not.
      const nextMs = h.clock.nowMs() + sweepPeriodMs;
      assert.equal(nextMs - (await dispatchedAt(c1.id) ?? 0), redispatchIntervalMaxMsDefault);
      assert.ok(nextMs - (await dispatchedAt(c2.id) ?? 0) < redispatchIntervalMaxMsDefault);
      await h.cp.context.kv.set(kvKeys.presence('dev-lapse-old'), JSON.stringify({ gateway_id: 'gw1' }));
      // Before: c2 went first (its stamp remembered), then c1 (due) in the same pass.
      h.clock.advance(sweepPeriodMs);
      await h.cp.commands.redispatchDue();
      assert.deepEqual(await appendedOf(before, [c1, c2]), [c1.id, c2.id]);
      for (const c of [c1, c2]) await h.cp.commands.transition(c.id, 'time_out', h.clock.nowMs());
    });

    it('a device away for an hour gets its command when it comes back: at once on its presence, and from the sweep within the longest wait if that event is lost', async () => {
      await enroll('dev-away', false);
      const command = await create('dev-away');
      // The sweep only stamps it while the device is away, less and less often; nothing is appended.
      await sweepFor(3_000_000, command.id);
      assert.equal(await deliveriesOf(command.id), 0);
      assert.equal((await h.cp.commands.get(command.id)).state, 'queued');
      // Back, and the control plane hears of it: delivered at once, whatever the sweep's wait.
      await h.cp.context.kv.set(kvKeys.presence('dev-away'), JSON.stringify({ gateway_id: 'gw1' }));
      await h.bus.append(streamNames.events, encodeBusEntry('presence', {
        device_id: 'dev-away', gateway_id: 'gw1', session_id: `s_${h.clock.nowMs()}`, online: true, at_ms: h.clock.nowMs(),
      }));
      await h.cp.eventsConsumer.drain();
      assert.equal(await deliveriesOf(command.id), 1, 'redelivered on presence');

      // A second command while away, whose device's presence event never reaches us: the sweep
      // delivers it within the longest wait plus one sweep period of the device's return.
      await h.cp.context.kv.del(kvKeys.presence('dev-away'));
      const later = await create('dev-away');
      await sweepFor(1_200_000, later.id);
      assert.equal(await deliveriesOf(later.id), 0);
      await h.cp.context.kv.set(kvKeys.presence('dev-away'), JSON.stringify({ gateway_id: 'gw1' }));
      const sentAtS = await sweepFor(redispatchIntervalMaxMsDefault + sweepPeriodMs, later.id);
      // No offline came either, so its row still names gw1: to the sweep the key lapsed, and the
      // first pass that finds it again sends what it stamped meanwhile (then its ordinary wait, 120 s).
      assert.deepEqual(sentAtS, [5, 125], `delivered by the sweep within ${redispatchIntervalMaxMsDefault + sweepPeriodMs} ms`);
      for (const c of [command, later]) await h.cp.commands.transition(c.id, 'time_out', h.clock.nowMs());
    });
  });
}

const { pairs } = storePairs();
for (const pair of pairs) suite(pair);
