// Compliance and dead-letter remediation with real agents over loopback TLS (issue 12, roadmap 10.3
// and 11.4). The agent's AUTH posture reaches the compliance API. A command the agent executed is
// then made to look dead-lettered, as when the gateway gave up on a delivery whose ACK and
// RESULT were lost: the control plane knows only `dead_lettered` (execution unknown). The
// operator retries it; the retry is the same signed command, which the agent recognises and
// answers from its journal. The command settles and the kernel ran it once, not twice. Last, a
// device that never acknowledges: the gateway dead-letters for real after its attempts, a retry
// delivers the same signed command again, and a discard takes it off the list.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ensureEnrolled } from '../../agent/enrollment.js';
import { systemClock, systemRandom } from '../../runtime/system.js';
import {
  agentDir, countProcessListCalls, createCommand, eventually, pairAgent, startE2e, storeTargets, waitOnline, waitTerminal, type CommandRecord, type E2eSystem,
} from './support/e2e-harness.js';
import { RawDevice } from './support/raw-device.js';

interface ComplianceAnswer { state: string; reasons: Array<{ code: string }>; facts: Record<string, unknown> }

for (const target of storeTargets()) {
  describe(`compliance and dead-letter retry end to end on ${target.name} stores`, () => {
    let system: E2eSystem;
    let deviceId: string;
    let calls: Map<number, number>;

    before(async () => {
      system = await startE2e({ target });
      deviceId = `e2e-dlq-${system.tag}`;
      const agent = await pairAgent(system, deviceId);
      calls = countProcessListCalls(agent);
      await waitOnline(system, [deviceId]);
    });
    after(async () => {
      await system?.stop();
    });

    it('judges the device from the posture its agent reported at AUTH', async () => {
      const answer = await eventually('compliance reported', async () => {
        const current = await system.api<ComplianceAnswer>('GET', `/v1/devices/${deviceId}/compliance`);
        return current.state === 'unknown' ? undefined : current;
      });
      assert.equal(answer.facts.agent_version, 'sdc-agent/0.1.0', JSON.stringify(answer));
      assert.match(String(answer.facts.binary_sha256), /^[0-9a-f]{64}$/);
      assert.match(String(answer.facts.config_sha256), /^[0-9a-f]{64}$/);
      assert.equal(typeof answer.facts.os_version, 'string');
      assert.equal(answer.facts.kernel_attestation, 'unattested', 'the mock kernel answers its ping; nothing attests it');
      assert.equal(answer.facts.kernel_backend, 'mock', 'the backend in use is stored and shown, so a mock-backed device is visible');
      // Default rules judge the certificate and a failed kernel check only.
      assert.ok(answer.reasons.every((reason) => reason.code === 'cert_expiring'), JSON.stringify(answer));
      const fleet = await system.api<{ counts: Record<string, number> }>('GET', '/v1/compliance');
      assert.ok((fleet.counts.compliant ?? 0) + (fleet.counts.warning ?? 0) >= 1, JSON.stringify(fleet));
    });

    it('retries a dead letter the agent had already executed: answered from its journal, the kernel runs it once', async () => {
      const limit = 7;
      const created = await createCommand(system, deviceId, 'EXEC_GET_PROCESS_LIST', { limit });
      assert.equal((await waitTerminal(system, created.id)).state, 'succeeded');
      assert.equal(calls.get(limit), 1);
      // What the control plane knows after a gateway gave up on a delivery whose ACK and RESULT were lost.
      const db = system.deployment.controlPlane!.context.db;
      await db.execute("UPDATE commands SET state = 'dead_lettered', result_json = NULL WHERE id = ?", [created.id]);

      const listed = await system.api<{ items: Array<{ command_id: string }> }>('GET', `/v1/dead-letters?device_id=${deviceId}`);
      assert.deepEqual(listed.items.map((item) => item.command_id), [created.id]);
      const retry = await system.api<{ results: Array<{ command_id: string; outcome: string; error?: { code: string } }> }>('POST', '/v1/dead-letters/retry', { ids: [created.id] });
      assert.equal(retry.results[0]?.outcome, 'retried', JSON.stringify(retry));

      const settled = await eventually('the retried command settled by the device', async () => {
        const record = await system.api<CommandRecord>('GET', `/v1/commands/${created.id}`);
        return record.state === 'dead_lettered' ? undefined : record;
      });
      assert.equal(settled.state, 'succeeded_late', JSON.stringify(settled));
      assert.equal(calls.get(limit), 1, 'not executed a second time');
      const after = await system.api<{ items: unknown[] }>('GET', `/v1/dead-letters?device_id=${deviceId}`);
      assert.deepEqual(after.items, []);
      const audit = await system.api<{ ok: boolean }>('GET', '/v1/audit/verify');
      assert.equal(audit.ok, true, JSON.stringify(audit));
    });

    it('a device that never ACKs: the gateway dead-letters after its attempts, a retry sends the same signed command again, a discard ends it', async () => {
      const rawId = `e2e-dlq-raw-${system.tag}`;
      const { token } = await system.api<{ token: string }>('POST', `/v1/devices/${rawId}/pairing-tokens`, {});
      const { identity } = await ensureEnrolled({
        dir: agentDir(system, rawId), serverUrl: system.apiUrl, deviceId: rawId, pairingToken: token, caPem: system.materials.rootCaPem, random: systemRandom, clock: systemClock,
      });
      // Authenticates and heartbeats like an agent, but never takes a delivery (no ACK).
      const device = await RawDevice.connect(system.deployment.gatewayUrl, { deviceId: rawId, certPem: identity.certPem + identity.chainPem, keyPem: identity.keyPem, seed: identity.seed }, system.materials);
      try {
        await device.waitReady();
        await waitOnline(system, [rawId]);
        const created = await createCommand(system, rawId, 'EXEC_PING_KERNEL');
        const deliveries = () => device.frames.filter((f) => f.type === 'COMMAND_DELIVERY').map((f) => f.body.command as { id: string; sig: unknown });
        assert.equal((await waitTerminal(system, created.id, 60_000)).state, 'dead_lettered');
        const first = deliveries().length;
        assert.equal(first, 5, 'deliveryAttemptsMax attempts with backoff');
        const listed = await system.api<{ items: Array<{ command_id: string; reason: string | null }> }>('GET', `/v1/dead-letters?device_id=${rawId}`);
        assert.deepEqual(listed.items.map((item) => item.command_id), [created.id]);
        assert.match(listed.items[0]!.reason ?? '', /no ACK after 5 attempts/);

        const retry = await system.api<{ results: Array<{ outcome: string; retries?: number }> }>('POST', '/v1/dead-letters/retry', { ids: [created.id] });
        assert.deepEqual([retry.results[0]?.outcome, retry.results[0]?.retries], ['retried', 1]);
        await eventually('the retried delivery', () => (deliveries().length > first ? true : undefined));
        assert.deepEqual(deliveries().at(-1), deliveries()[0], 'the very same signed command, signature included');
        const after = await system.api<{ items: Array<{ command_id: string; retries: number }> }>('GET', `/v1/dead-letters?device_id=${rawId}`);
        assert.equal(after.items[0]?.retries, 1, 'still dead-lettered: the device never answered');

        const discarded = await system.api<{ reason: string }>('POST', `/v1/dead-letters/${created.id}/discard`, { reason: 'device does not acknowledge; replaced' });
        assert.equal(discarded.reason, 'device does not acknowledge; replaced');
        assert.deepEqual((await system.api<{ items: unknown[] }>('GET', `/v1/dead-letters?device_id=${rawId}`)).items, []);
        const refused = await system.api<{ results: Array<{ error?: { code: string } }> }>('POST', '/v1/dead-letters/retry', { ids: [created.id] });
        assert.equal(refused.results[0]?.error?.code, 'DLQ_ENTRY_DISCARDED');
      } finally {
        device.close();
      }
    });
  });
}
