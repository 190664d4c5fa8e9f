import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { commandExecution } from '../../core/protocol/command-machine.js';
import { parsePolicy } from '../../core/protocol/policy.js';
import { kvKeys, liveChannel } from '../bus-contract/streams.js';
import { makeDeviceKey, makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

// Issue 11 (found by `sdc chaos run --scenario cert-revoked`): a revoked device's unfinished
// commands stayed `queued` or `sent` until their TTL. The revocation now ends them at once
// (`canceled`; a never-signed pending one `rejected`), with API_DEVICE_REVOKED in the history and
// the audit entry, and the live event. Another device's command goes on as before.

const policy = parsePolicy({
  version: 1,
  rules: [
    { id: 'ops', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_GET_STATUS', 'EXEC_PING_KERNEL'], devices: '*' },
    { id: 'lock-two-eyes', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_LOCK_SCREEN'], devices: '*', conditions: { approval: { count: 1, roles: ['admin'] } } },
  ],
});

function suite(pair: StorePair): void {
  describe(`a revoked device's waiting commands on ${pair.name}`, () => {
    let h: Harness;
    const actor = { name: 'op', role: 'operator' as const };
    const live: Array<{ command_id?: string; state?: string }> = [];
    let unsubscribe: (() => Promise<void>) | undefined;

    const enroll = async (deviceId: string) => {
      const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId });
      await h.cp.devices.enroll({ deviceId, token, csrPem: (await makeDeviceKey(deviceId)).csrPem });
      await h.cp.context.kv.set(kvKeys.presence(deviceId), JSON.stringify({ gateway_id: 'gw1' }));
    };
    const create = async (deviceId: string, opcode = 'EXEC_GET_STATUS') => (await h.cp.commands.create({ actor, deviceId, opcode, args: {} })).command;
    const stateOf = async (id: string) => (await h.cp.commands.get(id)).state;

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }), controlPlane: { policy } });
      unsubscribe = await h.cp.context.kv.subscribe(liveChannel, (message) => { live.push(JSON.parse(message) as { command_id?: string; state?: string }); });
    });
    after(async () => {
      // systemScheduler's timers are unref'd: keep the loop alive while the consumers stop.
      const keepAlive = setInterval(() => undefined, 1_000);
      try {
        await unsubscribe?.();
        await h.close();
        await pair.sql.cleanup();
      } finally {
        clearInterval(keepAlive);
      }
    });

    it('ends its unfinished commands at once (API_DEVICE_REVOKED, audited, live): queued and delivered canceled, pending rejected; another device\'s stay', async () => {
      await enroll('rev-dev');
      await enroll('other-dev');
      // Dispatched to gw1's stream, no delivery reported: the case the chaos run found.
      const queued = [await create('rev-dev'), await create('rev-dev', 'EXEC_PING_KERNEL')];
      const pending = await create('rev-dev', 'EXEC_LOCK_SCREEN');
      const delivered = await create('rev-dev');
      const others = await create('other-dev');
      assert.deepEqual(await Promise.all([...queued, pending, delivered, others].map((c) => stateOf(c.id))), ['queued', 'queued', 'pending_approval', 'queued', 'queued']);
      assert.equal((await h.cp.commands.transition(delivered.id, 'deliver', h.clock.nowMs())).applied, true);

      await h.cp.devices.revoke({ actor: 'root', deviceId: 'rev-dev', reason: 'keyCompromise' });

      for (const command of queued) {
        const detail = await h.cp.commands.get(command.id);
        assert.equal(detail.state, 'canceled', command.id);
        assert.deepEqual(detail.history.at(-1)?.detail, { event: 'cancel', code: 'API_DEVICE_REVOKED' });
      }
      // Never signed, so certainly never run: rejected, as by an approver.
      const pendingDetail = await h.cp.commands.get(pending.id);
      assert.equal(pendingDetail.state, 'rejected');
      assert.deepEqual(pendingDetail.history.at(-1)?.detail, { event: 'approval_reject', code: 'API_DEVICE_REVOKED' });
      // Handed to the device: it may be running it, but no result of a revoked device is accepted: canceled too.
      assert.equal(await stateOf(delivered.id), 'canceled');
      assert.equal(await stateOf(others.id), 'queued');
      // Audited, one entry per command, by the operator who revoked.
      const bySubject = (a: { subject: string }, b: { subject: string }) => a.subject.localeCompare(b.subject);
      const audited = (await h.cp.auditStore.scan(1, 10_000))
        .filter((e) => e.kind === 'command.state' && (e.payload['to'] === 'canceled' || e.payload['event'] === 'approval_reject'))
        .map((e) => ({ subject: e.subject, actor: e.actor, event: e.payload['event'], to: e.payload['to'], detail: e.payload['detail'] }));
      assert.deepEqual(audited.sort(bySubject), [
        ...[...queued, delivered].map((c) => ({ subject: `command:${c.id}`, actor: 'user:root', event: 'cancel', to: 'canceled', detail: { code: 'API_DEVICE_REVOKED' } })),
        { subject: `command:${pending.id}`, actor: 'user:root', event: 'approval_reject', to: 'rejected', detail: { code: 'API_DEVICE_REVOKED' } },
      ].sort(bySubject));
      assert.ok((await h.cp.auditStore.scan(1, 10_000)).some((e) => e.kind === 'device.revoked' && e.subject === 'device:rev-dev'));
      // The live stream said so (published after each commit; the channel delivers asynchronously).
      const endedLive = () => live.filter((e) => e.state === 'canceled' || (e.state === 'rejected' && e.command_id === pending.id)).map((e) => e.command_id).sort();
      for (let i = 0; i < 400 && endedLive().length < 4; i += 1) await new Promise((resolve) => setTimeout(resolve, 25));
      assert.deepEqual(endedLive(), [...queued, pending, delivered].map((c) => c.id).sort());
      // Canceled is final and says the device may have had it (a delivery not reported yet), never refined.
      assert.equal(commandExecution.canceled, 'unknown');
      assert.equal((await h.cp.commands.transition(queued[0]!.id, 'deliver', h.clock.nowMs())).applied, false);
      assert.equal(await stateOf(queued[0]!.id), 'canceled');
    });

    it('a revoked device has nothing left to cancel the next time, and new commands for it are refused', async () => {
      assert.equal(await h.cp.commands.cancelForRevokedDevice({ deviceId: 'rev-dev', actor: 'root' }), 0);
      await assert.rejects(create('rev-dev'), (error: Error & { code?: string }) => error.code === 'API_DEVICE_REVOKED');
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe("a revoked device's waiting commands on mysql + redis", { skip: skipped }, () => {});
