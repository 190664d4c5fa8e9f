import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertProcessRunHeld, chaosAgents as agents, chaosRunPassing } from './support/chaos-run-driver.js';

// `sdc chaos run`'s process, kernel and trust faults in a short form (issue 11): an agent process
// killed and restarted on its journal, the gateway crashed and restarted, kernel errors, clock
// skew, a device certificate revoked while connected, the operator's JWT expiring mid-run. Each is
// a fresh deployment with 2 agents on embedded stores, 5 s of commands, the fault from 1 s to 4 s,
// the outside probes (no certificate, self-signed, revoked; no token, malformed, forged) during and
// after the fault; judged by what held, never by how long anything took. The long forms are
// `sdc chaos run --scenario NAME` (docs/chaos.md).
//
// One file, its tests three at a time: a run mostly waits (its fault window, the drain, the
// reconnects), so runs side by side overlap those waits as separate files did, while the file's
// process, tsx and module load are paid once, not three times (they were chaos-kernel-clock and
// chaos-trust too). Each run has its own deployment, proxy and worker process.

describe('sdc chaos run: process, kernel and trust faults', { concurrency: 3 }, () => {
  it('agent process SIGKILLed and restarted on its journal; gateway crashed and restarted: none lost, none run twice, agents back', async () => {
    const [kill, crash] = await chaosRunPassing('agent-kill,gateway-crash');
    assertProcessRunHeld(kill!, agents);
    // Every accepted command ran exactly once, counted across both worker processes (the kernel-call log).
    assert.equal(kill!.run.counts.kernel_calls, kill!.run.counts.commands_accepted);
    assert.ok((kill!.run.counts.sessions_ready ?? 0) >= 2 * agents, 'every agent opened a session again after the restart');
    // Only a command the killed process was running may fail (AGENT_INTERRUPTED, from its journal).
    assert.ok(Object.keys(kill!.scenario_facts.failed_by_code as object).every((code) => code === 'AGENT_INTERRUPTED'), JSON.stringify(kill!.scenario_facts.failed_by_code));
    assertProcessRunHeld(crash!, agents);
    assert.equal(crash!.run.counts.kernel_calls, crash!.run.counts.commands_accepted);
    assert.ok((crash!.run.counts.sessions_closed ?? 0) >= agents, 'the crash cut every session');
    assert.deepEqual(crash!.scenario_facts.failed_by_code, {});
    // While the gateway was down, the TLS probes found nothing listening; after the restart they were refused by the new gateway.
    assert.ok(crash!.unauthenticated_access.probes.filter((p) => p.phase === 'during' && p.probe.startsWith('tls_')).every((p) => p.outcome === 'unreachable'));
  });

  it('kernel errors and clock skew: failed commands end failed once; clocks beyond the bound refused PROTO_CLOCK_SKEW, within admitted', async () => {
    const [kernel, skew] = await chaosRunPassing('kernel-errors,clock-skew');
    assertProcessRunHeld(kernel!, agents);
    // Every failure is the fault's: KERNEL_REFUSED with the kernel's IO_ERROR (the mock answers every opcode of the mix otherwise).
    assert.deepEqual(Object.keys(kernel!.scenario_facts.failed_by_code as object), ['KERNEL_REFUSED:IO_ERROR'], JSON.stringify(kernel!.scenario_facts));
    assert.equal(kernel!.run.counts.kernel_calls, kernel!.run.counts.commands_accepted, 'a failed call is still one call: none retried');
    assertProcessRunHeld(skew!, agents);
    const during = skew!.scenario_facts.agents_during_skew as Array<{ device: string; ready: boolean; close_reasons: string[] }>;
    const skews = skew!.scenario_facts.skew_ms as Record<string, number>;
    for (const agent of during) {
      if (Math.abs(skews[agent.device]!) > 300_000) {
        assert.equal(agent.ready, false, agent.device);
        assert.ok(agent.close_reasons.includes('authentication refused: PROTO_CLOCK_SKEW'), JSON.stringify(agent));
      } else assert.equal(agent.ready, true, agent.device);
    }
  });

  it('a certificate revoked while connected: session closed, reconnections refused TRUST_CERT_REVOKED, no command taken after; then the operator\'s JWT expires mid-run: 401 JWT_EXPIRED, a new login, each command created once', async () => {
    const [revoked, jwt] = await chaosRunPassing('cert-revoked,jwt-expiry');
    assertProcessRunHeld(revoked!, agents - 1);
    const facts = revoked!.scenario_facts;
    assert.equal(typeof facts.session_closed_after_revocation_ms, 'number');
    assert.equal(facts.revoked_device_reconnect, 'TRUST_CERT_REVOKED');
    assert.ok((facts.revoked_device_close_reasons as string[]).includes('authentication refused: TRUST_CERT_REVOKED'));
    // A command asked for the revoked device after the revocation is refused at creation (the
    // workload's own commands reach it only by chance: none at all once, on a busy machine).
    assert.equal(facts.revoked_device_command, 'API_DEVICE_REVOKED');
    assert.deepEqual(revoked!.scenario_facts.failed_by_code, {});
    assert.equal(jwt!.duration_ms, 6_000, 'the scenario runs at least 6 s: a 1 s token is refused within 2 s (1 s of allowed skew in these runs)');
    assertProcessRunHeld(jwt!, agents);
    assert.deepEqual(jwt!.scenario_facts.failed_by_code, {});
    assert.ok((jwt!.run.counts.token_expired_relogins ?? 0) >= 1);
    assert.equal(jwt!.scenario_facts.commands_created, jwt!.run.counts.commands_accepted);
  });
});
