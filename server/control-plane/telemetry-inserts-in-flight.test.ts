import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { groups, streamNames } from '../bus-contract/streams.js';
import { SdcError } from '../../core/errors/index.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { macEnvelope } from '../../core/protocol/envelope.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import type { SqlDatabase, SqlValue } from '../stores/sql/sql-port.js';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';
import { telemetryInsertParamsPerRow, telemetryRowLimits } from './telemetry-rows.js';

/**
 * Issue 17 on the real stores: the telemetry writer keeps several INSERTs in flight
 * (telemetryRowLimits.insertsInFlightMax). Through the control plane's telemetry consumer: while
 * one INSERT is held, others are stored and their entries acked; an entry is acked only once its
 * rows are stored; when the held INSERT fails, only its entries are handled again, and in the end
 * every sample is stored once.
 */
function suite(pair: StorePair): void {
  describe(`the telemetry consumer with several INSERTs in flight on ${pair.name}`, () => {
    const sessionCrypto = createNodeSessionKeyCrypto();
    const frames = 64;
    const samplesPerFrame = 32;
    const deviceId = (i: number) => `dev-inflight-${String(i).padStart(2, '0')}`;
    /** Every telemetry INSERT attempted: the devices of its rows and how it ended. */
    const inserts: Array<{ devices: Set<string>; outcome: 'held' | 'stored' | 'failed' }> = [];
    let releaseHeld: ((fail: boolean) => void) | undefined;
    let holdNext = false;
    const failing = new Set<string>();
    let h: Harness;

    const gated = {
      ...pair.sql,
      open: async (dataDir: string) => {
        const db = await pair.sql.open(dataDir);
        const execute = db.execute.bind(db);
        return new Proxy(db, {
          get(target, property, receiver) {
            if (property !== 'execute') {
              const value = Reflect.get(target, property, receiver) as unknown;
              return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
            }
            return async (sql: string, params: readonly SqlValue[] = []) => {
              if (!sql.startsWith('INSERT INTO telemetry')) return execute(sql, params as never);
              const insert = { devices: new Set(params.filter((_, i) => i % telemetryInsertParamsPerRow === 0) as string[]), outcome: 'held' as 'held' | 'stored' | 'failed' };
              inserts.push(insert);
              if (holdNext) {
                holdNext = false;
                const fail = await new Promise<boolean>((resolve) => { releaseHeld = resolve; });
                if (fail) {
                  insert.outcome = 'failed';
                  throw new SdcError('STORE_UNAVAILABLE', 'the held INSERT failed');
                }
              }
              if ([...insert.devices].some((d) => failing.has(d))) {
                insert.outcome = 'failed';
                throw new SdcError('STORE_UNAVAILABLE', 'a failing device');
              }
              const result = await execute(sql, params as never);
              insert.outcome = 'stored';
              return result;
            };
          },
        }) as SqlDatabase;
      },
    };

    /** Waits for the condition, a bound (not a timing assertion): without several INSERTs in flight the first one never returns. */
    const until = async (what: string, condition: () => Promise<boolean> | boolean) => {
      for (let i = 0; i < 2_000; i += 1) {
        if (await condition()) return;
        await sleep(5);
      }
      assert.fail(`never: ${what} (INSERTs: ${inserts.map((insert) => `${insert.devices.size} frames ${insert.outcome}`).join(', ')})`);
    };
    const rowsOf = async () => new Map((await h.db.query<{ device_id: string; n: number }>(
      "SELECT device_id, COUNT(*) AS n FROM telemetry WHERE device_id LIKE 'dev-inflight-%' GROUP BY device_id",
    )).map((r) => [r.device_id, Number(r.n)]));

    before(async () => {
      const publicKey = base64urlFromBytes(createNodeEd25519Provider().publicKeyFromSeed(new Uint8Array(32).fill(1)));
      h = await makeHarness(gated, { ...(pair.kv === undefined ? {} : { kv: pair.kv }) });
      for (let i = 0; i < frames; i += 1) {
        await h.db.execute("INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES (?, 'enrolled', ?, ?, ?, ?)",
          [deviceId(i), h.clock.nowMs(), (i + 1).toString(16), h.clock.nowMs() + 86_400_000, publicKey]);
      }
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('stores and acks other INSERTs while one is held, acks no entry before its rows, and redelivers only the failed INSERT\'s entries', async () => {
      const nowMs = h.clock.nowMs();
      const deviceOfEntry = new Map<string, string>();
      for (let i = 0; i < frames; i += 1) {
        const samples = Array.from({ length: samplesPerFrame }, (_, s) => ({ sampled_at: nowMs + s, metrics: { cpu_pct: s, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 4, net_tx_bytes_per_sec: 5 } }));
        const frame = canonicalize(macEnvelope({
          fields: { v: 1, type: 'TELEMETRY_BATCH', id: `b${i}`, device_id: deviceId(i), session_id: 's1', seq: 1, ts: nowMs, body: { samples } as unknown as JsonObject },
          key: new Uint8Array(32).fill(7), crypto: sessionCrypto,
        }));
        const id = await h.bus.append(streamNames.telemetry, encodeBusEntry('telemetry', { device_id: deviceId(i), gateway_id: 'gw-1', received_at_ms: nowMs, frame }));
        deviceOfEntry.set(id, deviceId(i));
      }
      holdNext = true;
      const drained = h.cp.telemetryConsumer.drain();
      const pendingDevices = async () => new Set((await h.bus.pending(streamNames.telemetry, groups.telemetry)).map((p) => deviceOfEntry.get(p.id)!));

      // While the first INSERT is held, others are stored and their entries acked.
      await until('an entry acked while the first INSERT is held', async () => releaseHeld !== undefined && (await pendingDevices()).size < frames);
      const held = inserts[0]!;
      assert.equal(held.outcome, 'held');
      const pending = await pendingDevices();
      const rows = await rowsOf();
      for (let i = 0; i < frames; i += 1) {
        const d = deviceId(i);
        // Acked means stored: every acked entry has all its rows; the held INSERT's entries are neither.
        if (!pending.has(d)) assert.equal(rows.get(d), samplesPerFrame, `${d} acked with ${rows.get(d) ?? 0} rows`);
        if (held.devices.has(d)) {
          assert.ok(pending.has(d), `${d} of the held INSERT is not acked`);
          assert.equal(rows.get(d), undefined);
        }
      }
      assert.ok(inserts.filter((insert) => insert.outcome === 'stored').length >= 1);

      // The held INSERT fails, then each of its frames alone: only its entries are handled again.
      for (const d of held.devices) failing.add(d);
      releaseHeld!(true);
      await until('each frame of the failed INSERT tried alone', () => [...held.devices].every((d) => inserts.filter((insert) => insert.devices.has(d) && insert.outcome === 'failed').length >= 2));
      failing.clear();
      // The consumer retries them after a pause on the system scheduler, whose timers do not hold the process open.
      const keepAlive = setInterval(() => undefined, 1_000);
      try {
        assert.equal(await drained, frames);
      } finally {
        clearInterval(keepAlive);
      }

      const stored = await rowsOf();
      for (let i = 0; i < frames; i += 1) assert.equal(stored.get(deviceId(i)), samplesPerFrame, `${deviceId(i)}: every sample once`);
      assert.deepEqual(await h.bus.pending(streamNames.telemetry, groups.telemetry), []);
      for (let i = 0; i < frames; i += 1) {
        const d = deviceId(i);
        const tried = inserts.filter((insert) => insert.devices.has(d));
        if (held.devices.has(d)) assert.ok(tried.at(-1)!.outcome === 'stored' && tried.length >= 3, `${d}: ${tried.map((t) => t.outcome).join(', ')}`);
        else assert.deepEqual(tried.map((t) => t.outcome), ['stored'], `${d} stored once and never tried again`);
      }
      assert.ok(inserts.every((insert) => insert.devices.size * samplesPerFrame <= telemetryRowLimits.rowsPerInsertMax));
    });
  });
}

const { pairs } = storePairs();
for (const pair of pairs) suite(pair);
