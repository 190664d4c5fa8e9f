import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertProcessRunHeld, chaosAgents as agents, chaosRunPassing } from './support/chaos-run-driver.js';

// `sdc chaos run`'s process faults in a short form (issue 11): an agent process killed and
// restarted on its journal, the gateway crashed and restarted; in every run the outside probes (no
// certificate, self-signed, revoked; no token, malformed, forged) during and after the fault. Each
// is a fresh deployment with 2 agents on embedded stores, 5 s of commands, the fault from 1 s to
// 4 s; the outcome is judged by what held, never by how long anything took. Kernel errors and
// clock skew are in chaos-kernel-clock.test.ts, the trust faults in chaos-trust.test.ts; the long
// forms are `sdc chaos run --scenario NAME` (docs/chaos.md).

describe('sdc chaos run: process faults', () => {
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
});
