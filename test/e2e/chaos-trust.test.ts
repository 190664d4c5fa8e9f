import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertProcessRunHeld, chaosAgents as agents, chaosRunPassing } from './support/chaos-run-driver.js';

// `sdc chaos run`'s trust faults in a short form (issue 11): a device certificate revoked while
// connected and the operator's JWT expiring mid-run; 2 agents on embedded stores, the fault from
// 1 s to 4 s, the outside probes during and after it. Judged by what held, never by how long
// anything took.

describe('sdc chaos run: trust faults', () => {
  it('a certificate revoked while connected: session closed, reconnections refused TRUST_CERT_REVOKED, no command taken after', async () => {
    const [revoked] = await chaosRunPassing('cert-revoked');
    assertProcessRunHeld(revoked!, agents - 1);
    const facts = revoked!.scenario_facts;
    assert.equal(typeof facts.session_closed_after_revocation_ms, 'number');
    assert.equal(facts.revoked_device_reconnect, 'TRUST_CERT_REVOKED');
    assert.ok((facts.revoked_device_close_reasons as string[]).includes('authentication refused: TRUST_CERT_REVOKED'));
    assert.ok((revoked!.run.counts.commands_refused ?? 0) > 0, 'commands for the revoked device were refused at creation');
    assert.deepEqual(revoked!.scenario_facts.failed_by_code, {});
  });

  it("the operator's JWT expires mid-run: 401 JWT_EXPIRED, a new login, each command created once", async () => {
    const [jwt] = await chaosRunPassing('jwt-expiry');
    assert.equal(jwt!.duration_ms, 6_000, 'the scenario runs at least 6 s: a 1 s token is refused within 2 s (1 s of allowed skew in these runs)');
    assertProcessRunHeld(jwt!, agents);
    assert.deepEqual(jwt!.scenario_facts.failed_by_code, {});
    assert.ok((jwt!.run.counts.token_expired_relogins ?? 0) >= 1);
    assert.equal(jwt!.scenario_facts.commands_created, jwt!.run.counts.commands_accepted);
  });
});
