import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { streamNames } from '../bus-contract/streams.js';
import type { DevicePosture } from '../../core/protocol/messages/posture.js';
import { complianceLimits } from './compliance.js';
import { parsePolicy } from '../../core/protocol/policy.js';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

/**
 * Compliance (roadmap 10.3) end to end inside the control plane: crafted AUTH facts arrive in
 * presence entries on the events stream (as a gateway passes them on), are judged under the
 * configured rules with the certificate expiry from the device row, and are served by
 * GET /v1/devices/{id}/compliance and GET /v1/compliance; the sweep re-judges as time passes, a
 * change of state is audited, and the DeviceComplianceReader port answers. Both store pairs.
 */

const dayMs = 24 * 3_600_000;
const password = 'correct horse battery staple';
const goodBinary = 'a'.repeat(64);
const goodConfig = 'c'.repeat(64);
const healthy: DevicePosture = { os_version: 'Linux 6.8.0', binary_sha256: goodBinary, config_sha256: goodConfig, kernel_attestation: 'unattested' };

function suite(pair: StorePair): void {
  describe(`compliance on ${pair.name}`, () => {
    let h: Harness;
    let token = '';
    const ids = { healthy: 'cmp-healthy', tampered: 'cmp-tampered', expiring: 'cmp-expiring', silent: 'cmp-silent' };

    const get = async (url: string) => {
      const response = await h.cp.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
      return { status: response.statusCode, json: () => response.json() as Record<string, any>, text: response.body };
    };
    const enroll = async (deviceId: string, certLeftMs: number) => {
      await h.db.execute("INSERT INTO devices (id, status, created_at, cert_not_after) VALUES (?, 'enrolled', ?, ?)", [deviceId, h.clock.nowMs(), h.clock.nowMs() + certLeftMs]);
    };
    /** What a gateway appends when the device's AUTH succeeded, with the facts the AUTH carried. */
    const authenticated = async (deviceId: string, agentVersion: string, posture: DevicePosture) => {
      await h.bus.append(streamNames.events, encodeBusEntry('presence', {
        device_id: deviceId, gateway_id: 'gw1', session_id: `s-${deviceId}`, online: true, at_ms: h.clock.nowMs(), last_command_seq: 0,
        agent_version: agentVersion, posture,
      }));
      await h.cp.eventsConsumer.drain();
    };

    before(async () => {
      h = await makeHarness(pair.sql, {
        ...(pair.kv === undefined ? {} : { kv: pair.kv }),
        controlPlane: {
          complianceRules: { agent_version_min: '0.1.0', binary_sha256_allowed: [goodBinary], config_sha256_allowed: [goodConfig] },
          // Commands only for devices the compliance engine does not find non-compliant (a policy posture condition).
          policy: parsePolicy({
            version: 1,
            rules: [{ id: 'posture', effect: 'allow', roles: ['operator'], opcodes: '*', devices: '*', conditions: { posture: { complianceStates: ['compliant', 'warning'] } } }],
          }),
        },
      });
      await h.cp.auth.users.add({ name: 'viewer', role: 'viewer', password, nowMs: h.clock.nowMs() });
      token = (await h.cp.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { name: 'viewer', password } })).json().token as string;
      await enroll(ids.healthy, 30 * dayMs);
      await enroll(ids.tampered, 30 * dayMs);
      await enroll(ids.expiring, 5 * dayMs);
      await enroll(ids.silent, 30 * dayMs);
      await authenticated(ids.healthy, 'sdc-agent/0.1.0', healthy);
      await authenticated(ids.tampered, 'sdc-agent/0.1.0', { ...healthy, binary_sha256: 'b'.repeat(64), kernel_attestation: 'failed' });
      await authenticated(ids.expiring, 'sdc-agent/0.2.0', healthy);
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('judges each device from its AUTH facts: compliant, non-compliant with tamper reasons, a certificate 5 days from expiry a warning, unknown before any report', async () => {
      const ok = await get(`/v1/devices/${ids.healthy}/compliance`);
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.json().state, 'compliant');
      assert.deepEqual(ok.json().reasons, []);
      assert.equal(ok.json().facts.agent_version, 'sdc-agent/0.1.0');
      assert.equal(ok.json().facts.binary_sha256, goodBinary);
      assert.equal(typeof ok.json().facts.cert_not_after_ms, 'number');

      const bad = (await get(`/v1/devices/${ids.tampered}/compliance`)).json();
      assert.equal(bad.state, 'non_compliant');
      assert.deepEqual(bad.reasons.map((r: { code: string }) => r.code), ['binary_hash_mismatch', 'kernel_attestation_failed']);

      const expiring = (await get(`/v1/devices/${ids.expiring}/compliance`)).json();
      assert.equal(expiring.state, 'warning');
      assert.deepEqual(expiring.reasons.map((r: { code: string; severity: string }) => [r.code, r.severity]), [['cert_expiring', 'warning']]);

      const silent = (await get(`/v1/devices/${ids.silent}/compliance`)).json();
      assert.equal(silent.state, 'unknown');
      assert.equal(silent.reported_at_ms, null);
      const missing = await get('/v1/devices/cmp-nobody/compliance');
      assert.equal(missing.status, 404);
      assert.equal(missing.json().error.code, 'API_DEVICE_NOT_FOUND');
    });

    it('summarises the fleet: counts per state and a page of the devices in a state with their reasons', async () => {
      const summary = await get('/v1/compliance');
      assert.equal(summary.status, 200, summary.text);
      assert.deepEqual(summary.json().counts, { compliant: 1, warning: 1, non_compliant: 1, unknown: 1 });
      assert.equal(summary.json().state, 'non_compliant');
      assert.deepEqual(summary.json().items.map((i: { device_id: string }) => i.device_id), [ids.tampered]);
      assert.equal(summary.json().items[0].reasons[0].code, 'binary_hash_mismatch');
      const warnings = (await get('/v1/compliance?state=warning')).json();
      assert.deepEqual(warnings.items.map((i: { device_id: string }) => i.device_id), [ids.expiring]);
      const bad = await get('/v1/compliance?state=bogus');
      assert.equal(bad.status, 400);
    });

    it('a policy posture condition reads the state through the port: a non-compliant device takes no command, a compliant one does', async () => {
      const actor = { name: 'op', role: 'operator' as const };
      await assert.rejects(h.cp.commands.create({ actor, deviceId: ids.tampered, opcode: 'EXEC_PING_KERNEL', args: {} }), (error: { code?: string }) => error.code === 'COMMAND_POSTURE_DENIED');
      await assert.rejects(h.cp.commands.create({ actor, deviceId: ids.silent, opcode: 'EXEC_PING_KERNEL', args: {} }), (error: { code?: string }) => error.code === 'COMMAND_POSTURE_DENIED', 'unknown is not compliant');
      assert.equal((await h.cp.commands.create({ actor, deviceId: ids.healthy, opcode: 'EXEC_PING_KERNEL', args: {} })).created, true);
    });

    it('the port reads a device\'s state; a new AUTH with fixed facts makes it compliant; the sweep re-judges as the certificate nears expiry; changes are audited', async () => {
      assert.equal((await h.cp.compliance.readCompliance(ids.tampered))?.state, 'non_compliant');
      assert.equal((await h.cp.compliance.readCompliance(ids.silent))?.state, 'unknown');
      assert.equal(await h.cp.compliance.readCompliance('cmp-nobody'), undefined);

      await authenticated(ids.tampered, 'sdc-agent/0.1.0', healthy);
      assert.equal((await h.cp.compliance.readCompliance(ids.tampered))?.state, 'compliant');

      // 24 days on, the healthy device's certificate has 6 days left: the sweep finds it a warning.
      h.clock.advance(24 * dayMs + complianceLimits.reevaluateAfterMs);
      assert.ok(await h.cp.compliance.reevaluateDue() >= 1);
      const [row] = await h.db.query<{ state: string }>('SELECT state FROM device_compliance WHERE device_id = ?', [ids.healthy]);
      assert.equal(row?.state, 'warning');
      // Through the service: the viewer's token is long expired 24 days on.
      assert.equal((await h.cp.compliance.summary({ state: 'warning' })).items.some((item) => item.device_id === ids.healthy), true);

      const changes = ((await h.cp.auditStore.scan(1, 10_000)) as Array<{ kind: string; subject: string; payload: Record<string, any> }>)
        .filter((entry) => entry.kind === 'device.compliance' && entry.subject === `device:${ids.tampered}`);
      assert.deepEqual(changes.map((entry) => [entry.payload.from, entry.payload.to]), [['unknown', 'non_compliant'], ['non_compliant', 'compliant'], ['compliant', 'warning']], 'its certificate came within 7 days too');
    });

    it('takes nothing from a presence entry with malformed facts or for an unknown device', async () => {
      const before = await h.db.query<{ n: number }>('SELECT COUNT(*) AS n FROM device_compliance');
      await h.bus.append(streamNames.events, {
        kind: 'presence',
        data: JSON.stringify({ device_id: ids.silent, gateway_id: 'gw1', session_id: 's-x', online: true, at_ms: h.clock.nowMs(), posture: { binary_sha256: 'XYZ' } }),
      });
      await h.bus.append(streamNames.events, encodeBusEntry('presence', {
        device_id: 'cmp-nobody', gateway_id: 'gw1', session_id: 's-y', online: true, at_ms: h.clock.nowMs(), agent_version: 'sdc-agent/0.1.0', posture: healthy,
      }));
      await h.cp.eventsConsumer.drain();
      const after = await h.db.query<{ n: number }>('SELECT COUNT(*) AS n FROM device_compliance');
      assert.equal(Number(after[0]!.n), Number(before[0]!.n));
      assert.equal((await h.cp.compliance.readCompliance(ids.silent))?.state, 'unknown');
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
// Without MYSQL_URL and REDIS_URL the real pair is skipped; the same suite ran on the embedded pair above.
if (skipped !== undefined) describe('compliance on mysql + redis', () => { it.skip(skipped, () => undefined); });
