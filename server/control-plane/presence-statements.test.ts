// Issue 15 (reconnect storms) and 17: what the control plane runs in SQL for one device's AUTH,
// in statements. On MySQL a presence online is its write, then ONE read (the offline episode it
// ends and the commands it gets again, CommandRepository.unfinishedAndEpisodeOf), and a device's
// bundle is cut from ONE read (the policy revision and the device's tags, sqlPolicyAndDeviceTags);
// before, two each. On sql.js both stay two statements: in-process every one-statement form
// measured cost more CPU than the two (docs/benchmarks.md, 2026-12-05 morning).
// What they guarded still holds on both: an open episode is cleared (audited once) before the
// commands go out, in device_seq order, and a policy or tag change between two AUTHs is in the
// second bundle. Runs on sql.js + embedded kv and, with MYSQL_URL and REDIS_URL, on MySQL + Redis.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBusEntry, encodeBusEntry } from '../bus-contract/entries.js';
import { gatewayCommandStream, kvKeys, streamNames } from '../bus-contract/streams.js';
import { policyBundleKeys } from '../bus-contract/policy-bundle-keys.js';
import { defaultPolicy } from '../../core/protocol/policy.js';
import type { SqlDatabase, SqlTransaction } from '../stores/sql/sql-port.js';
import { parseAlertRules } from './alert-rules.js';
import { PolicyBundlePublisher, sqlPolicyAndDeviceTags } from './policy-bundles.js';
import { makeHarness, storePairs, type Harness, type SqlTarget, type StorePair } from './test-support.js';

/** `target`, with every statement the control plane sends written down in `log` (`tx:` before one inside a transaction). */
function watched(target: SqlTarget, log: string[]): SqlTarget {
  const oneLine = (sql: string): string => sql.replace(/\s+/g, ' ').trim();
  const inTx = (tx: SqlTransaction): SqlTransaction => ({
    dialect: tx.dialect,
    query: (sql, params) => { log.push(`tx: ${oneLine(sql)}`); return tx.query(sql, params); },
    execute: (sql, params) => { log.push(`tx: ${oneLine(sql)}`); return tx.execute(sql, params); },
    executeBatch: (batch, options) => { log.push(...batch.map((s) => `tx: ${oneLine(s.sql)}`)); return tx.executeBatch(batch, options); },
  });
  return {
    ...target,
    open: async (dataDir) => {
      const db = await target.open(dataDir);
      return new Proxy(db, {
        get(inner, property, receiver) {
          if (property === 'query' || property === 'execute') {
            return (sql: string, params?: readonly unknown[]) => {
              log.push(oneLine(sql));
              return (inner[property] as (s: string, p?: readonly unknown[]) => Promise<unknown>)(sql, params);
            };
          }
          if (property === 'transaction') return <T>(fn: (tx: SqlTransaction) => Promise<T>) => inner.transaction((tx) => fn(inTx(tx)));
          const value = Reflect.get(inner, property, receiver) as unknown;
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(inner) : value;
        },
      }) as SqlDatabase;
    },
  };
}

const offlineAfterMs = 30_000;

function suite(pair: StorePair): void {
  describe(`a device's AUTH in SQL statements on ${pair.name}`, () => {
    const log: string[] = [];
    let h: Harness;
    const actor = { name: 'op', role: 'operator' as const };
    const gateway = 'gw1';
    const deliveredIds = async (): Promise<string[]> => {
      const group = `probe-${Math.random().toString(16).slice(2)}`;
      await h.bus.ensureGroup(gatewayCommandStream(gateway), group, '0');
      return (await h.bus.readGroup(gatewayCommandStream(gateway), group, 'probe', { count: 1000 }))
        .map((entry) => (decodeBusEntry(entry.fields).data as { command: { id: string } }).command.id);
    };
    /** The statements one presence entry runs (no posture facts in it, so no compliance record). */
    const presence = async (deviceId: string, online: boolean): Promise<string[]> => {
      await h.bus.append(streamNames.events, encodeBusEntry('presence', {
        device_id: deviceId, gateway_id: gateway, session_id: `s_${h.clock.nowMs()}`, online, at_ms: h.clock.nowMs(),
      }));
      log.length = 0;
      await h.cp.eventsConsumer.drain();
      await h.cp.context.settleAudit();
      return log.filter((sql) => !sql.includes('audit_'));
    };

    before(async () => {
      h = await makeHarness(watched(pair.sql, log), {
        ...(pair.kv === undefined ? {} : { kv: pair.kv }),
        controlPlane: { alertRules: parseAlertRules({ offlineAfterMs, riskScoreAbove: null, updateFailures: null, tamper: false, backpressure: { busPendingAbove: null, deadLettersAbove: null }, sampleIntervalMs: 1_000 }) },
      });
      for (const device of ['dev-first', 'dev-back']) {
        await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [device, h.clock.nowMs()]);
      }
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it("a presence online is one write and one read on MySQL (the offline episode and the device's commands together), two reads on sql.js", async () => {
      const statements = await presence('dev-first', true);
      assert.match(statements[0]!, /^UPDATE devices SET last_seen_at/);
      if (h.db.dialect === 'mysql') {
        assert.equal(statements.length, 2, statements.join('\n'));
        assert.match(statements[1]!, /FROM commands .* UNION ALL .* FROM alerts WHERE episode_key = \?/);
      } else {
        assert.equal(statements.length, 3, statements.join('\n'));
        assert.match(statements[1]!, /^SELECT id, device_id, kind FROM alerts WHERE episode_key = \?$/);
        // Read unordered and put in device_seq order in JavaScript (CommandRepository.unfinishedOf, issue 17).
        assert.match(statements[2]!, /^SELECT id, signed_json, traceparent, device_seq FROM commands WHERE device_id = \? .* LIMIT 1001$/);
      }
      assert.deepEqual(await deliveredIds(), [], 'nothing to send');
    });

    it('with an offline episode open and commands queued: the episode cleared once and audited, then the commands sent in device_seq order', async () => {
      await presence('dev-back', true);
      await presence('dev-back', false);
      h.clock.advance(offlineAfterMs);
      await h.cp.events.alertMonitor.sample();
      const [alert] = (await h.cp.alerts.list({ deviceId: 'dev-back', limit: 10 })).items.filter((a) => a.kind === 'device_offline');
      assert.ok(alert, 'the offline episode is open');
      // Created while the device is away (no presence key): they wait for its next presence.
      await h.cp.context.kv.del(kvKeys.presence('dev-back'));
      const queued = [];
      for (let i = 0; i < 3; i += 1) queued.push((await h.cp.commands.create({ actor, deviceId: 'dev-back', opcode: 'EXEC_PING_KERNEL', args: {} })).command);
      assert.deepEqual(queued.map((c) => c.gateway_id), [null, null, null]);
      h.clock.advance(1_000);
      const statements = await presence('dev-back', true);
      const reads = h.db.dialect === 'mysql' ? 1 : 2;
      assert.equal(statements.filter((sql) => !sql.startsWith('tx: ') && !/^UPDATE commands|^INSERT INTO command_events/.test(sql)).length, 1 + reads,
        `the presence write and its reads, then the clear's and the dispatches' writes:\n${statements.join('\n')}`);
      assert.equal(statements.filter((sql) => /alerts WHERE episode_key/.test(sql)).length, 1, 'the episode is read once (the clear takes the row read)');
      const [cleared] = (await h.cp.alerts.list({ deviceId: 'dev-back', limit: 10 })).items.filter((a) => a.id === alert.id);
      assert.equal(cleared!.cleared_at_ms, h.clock.nowMs());
      const clears = (await h.cp.auditStore.scan(1, 10_000)).filter((e) => e.kind === 'alert.cleared' && e.payload['alert_id'] === alert.id);
      assert.equal(clears.length, 1);
      assert.deepEqual(await deliveredIds(), queued.map((c) => c.id), 'every queued command, in device_seq order');
      // The next presence finds no episode and the commands sent (not finished): they go out again.
      h.clock.advance(1_000);
      const again = await presence('dev-back', true);
      assert.equal((await h.cp.auditStore.scan(1, 10_000)).filter((e) => e.kind === 'alert.cleared' && e.payload['alert_id'] === alert.id).length, 1, 'not cleared twice');
      assert.equal(again.filter((sql) => /alerts WHERE episode_key/.test(sql)).length, 1);
      assert.deepEqual(await deliveredIds(), [...queued, ...queued].map((c) => c.id));
    });

    it("a device's bundle is cut from one read of the revision and its tags on MySQL (two on sql.js); a policy or tag change before the next AUTH is in the next bundle", async () => {
      const reads = h.db.dialect === 'mysql' ? 1 : 2;
      // Wired as createControlPlane wires its publisher (started there by cp.start(), which this harness does not run).
      const publisher = new PolicyBundlePublisher({
        context: h.cp.context, currentPolicy: () => h.cp.policy.current(), signer: h.materials.commandSigner,
        policyAndTags: sqlPolicyAndDeviceTags(h.db, (revision) => h.cp.policy.at(revision)),
      });
      const bundleOf = async (deviceId: string): Promise<{ statements: string[]; version: number; tags: unknown }> => {
        log.length = 0;
        await publisher.publish(deviceId);
        const statements = [...log];
        const text = await h.cp.context.kv.get(policyBundleKeys.bundle(deviceId));
        const bundle = (JSON.parse(text!) as { bundle: { version: number; device_tags: unknown } }).bundle;
        return { statements, version: bundle.version, tags: bundle.device_tags };
      };
      const first = await bundleOf('dev-first');
      assert.equal(first.statements.length, reads, first.statements.join('\n'));
      assert.match(first.statements.join(' '), /MAX\(revision\).*device_tags/);
      assert.deepEqual(first.tags, []);
      await h.db.execute('INSERT INTO device_tags (device_id, tag) VALUES (?, ?), (?, ?)', ['dev-first', 'site-2', 'dev-first', 'group:lab']);
      const current = await h.cp.policy.current();
      await h.cp.policy.set({ document: { ...defaultPolicy, revision: current.revision }, expectedRevision: current.revision, actor: 'user:admin' });
      const second = await bundleOf('dev-first');
      assert.equal(second.statements.filter((sql) => !/FROM policy_revisions WHERE revision = \?/.test(sql)).length, reads, 'the same reads, and the new document once');
      assert.equal(second.version, current.revision + 1, 'the revision stored since');
      assert.deepEqual(second.tags, ['group:lab', 'site-2'], 'the tags written since, in order');
      const third = await bundleOf('dev-first');
      assert.deepEqual(third.statements.length, reads, 'the document is cached while the number stays');
      assert.equal(third.version, current.revision + 1);
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('MySQL + Redis', () => { it.skip(skipped, () => undefined); });
