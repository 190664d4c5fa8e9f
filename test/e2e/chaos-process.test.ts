import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CliIo } from '../../cli/command.js';
import type { ChaosRunReport } from '../../cli/commands/chaos-run.js';
import { main } from '../../cli/main.js';

// `sdc chaos run`'s process and trust faults in a short form (issue 11): an agent process killed
// and restarted on its journal, the gateway crashed and restarted, kernel errors, clock skew
// beyond and within the bound, the operator's JWT expiring, a certificate revoked while
// connected; in every run the outside probes (no certificate, self-signed, revoked; no token,
// malformed, forged) during and after the fault. Each is a fresh deployment with 2 agents on
// embedded stores, 5 s of commands, the fault from 1 s to 4 s; the outcome is judged by what held,
// never by how long anything took. The long forms are `sdc chaos run --scenario NAME` (docs/chaos.md).

function io(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t), readStdin: async () => '', env: { SDC_LOG_LEVEL: 'silent' } };
}

const agents = 2;
const short = ['--agents', String(agents), '--duration', '5s', '--fault-at', '1s', '--fault-for', '3s', '--seed', '7', '--json'];

async function chaosRun(scenarios: string): Promise<ChaosRunReport[]> {
  const run = io();
  const code = await main(['chaos', 'run', '--scenario', scenarios, ...short], run);
  const parsed = run.out.length === 0 ? [] : JSON.parse(run.out.join('')) as ChaosRunReport | ChaosRunReport[];
  const reports = Array.isArray(parsed) ? parsed : [parsed];
  assert.equal(code, 0, `${run.err.join('')}\n${JSON.stringify(reports.map((r) => ({ run: r.chaos_run, violations: r.violations, facts: r.scenario_facts })))}`);
  return reports;
}

/** What every run must show: sim --real's checkers and the outside probes held, the fault went on and was healed. */
function assertHeld(report: ChaosRunReport, online: number): void {
  assert.equal(report.passed, true, `${report.chaos_run}: ${JSON.stringify(report.violations)}`);
  assert.ok(Object.values(report.run.checkers).every((verdict) => verdict === 'pass'), `${report.chaos_run}: ${JSON.stringify(report.run.checkers)}`);
  assert.notEqual(report.fault.at_ms, null, 'the fault went on');
  assert.notEqual(report.fault.healed_at_ms, null, 'the fault was healed');
  assert.notEqual(report.agents_back_after_heal_ms, null, 'every agent expected back was online again within the bound');
  assert.ok((report.run.counts.commands_accepted ?? 0) > 0, 'commands were sent');
  assert.equal(report.run.online.agents, online);
  assert.equal(report.run.online.controlPlane, online);
  // No unauthenticated access, from outside, during the fault and after the heal.
  assert.equal(report.unauthenticated_access.verdict, 'pass');
  assert.deepEqual(report.unauthenticated_access.traces, []);
  const probes = report.unauthenticated_access.probes;
  assert.deepEqual([...new Set(probes.map((p) => p.phase))].sort(), ['after', 'during']);
  assert.equal(probes.length, 12);
  for (const p of probes) {
    assert.ok(p.held && p.outcome !== 'AUTH_ACK' && !p.outcome.startsWith('HTTP_2'), `${p.probe} ${p.phase}: ${p.outcome}`);
  }
  const after = Object.fromEntries(probes.filter((p) => p.phase === 'after').map((p) => [p.probe, p.outcome]));
  assert.equal(after.tls_revoked, 'TRUST_CERT_REVOKED');
  assert.equal(after.http_no_token, '401 API_UNAUTHENTICATED');
  assert.equal(after.http_malformed_token, '401 JWT_MALFORMED');
  assert.equal(after.http_forged_token, '401 JWT_UNKNOWN_KID');
}

describe('sdc chaos run: process and trust faults', () => {
  it('agent process SIGKILLed and restarted on its journal; gateway crashed and restarted: none lost, none run twice, agents back', async () => {
    const [kill, crash] = await chaosRun('agent-kill,gateway-crash');
    assertHeld(kill!, agents);
    // Every accepted command ran exactly once, counted across both worker processes (the kernel-call log).
    assert.equal(kill!.run.counts.kernel_calls, kill!.run.counts.commands_accepted);
    assert.ok((kill!.run.counts.sessions_ready ?? 0) >= 2 * agents, 'every agent opened a session again after the restart');
    // Only a command the killed process was running may fail (AGENT_INTERRUPTED, from its journal).
    assert.ok(Object.keys(kill!.scenario_facts.failed_by_code as object).every((code) => code === 'AGENT_INTERRUPTED'), JSON.stringify(kill!.scenario_facts.failed_by_code));
    assertHeld(crash!, agents);
    assert.equal(crash!.run.counts.kernel_calls, crash!.run.counts.commands_accepted);
    assert.ok((crash!.run.counts.sessions_closed ?? 0) >= agents, 'the crash cut every session');
    assert.deepEqual(crash!.scenario_facts.failed_by_code, {});
    // While the gateway was down, the TLS probes found nothing listening; after the restart they were refused by the new gateway.
    assert.ok(crash!.unauthenticated_access.probes.filter((p) => p.phase === 'during' && p.probe.startsWith('tls_')).every((p) => p.outcome === 'unreachable'));
  });

  it('kernel errors and clock skew: failed commands end failed once; clocks beyond the bound refused PROTO_CLOCK_SKEW, within admitted', async () => {
    const [kernel, skew] = await chaosRun('kernel-errors,clock-skew');
    assertHeld(kernel!, agents);
    // Every failure is the fault's: KERNEL_REFUSED with the kernel's IO_ERROR (the mock answers every opcode of the mix otherwise).
    assert.deepEqual(Object.keys(kernel!.scenario_facts.failed_by_code as object), ['KERNEL_REFUSED:IO_ERROR'], JSON.stringify(kernel!.scenario_facts));
    assert.equal(kernel!.run.counts.kernel_calls, kernel!.run.counts.commands_accepted, 'a failed call is still one call: none retried');
    assertHeld(skew!, agents);
    const during = skew!.scenario_facts.agents_during_skew as Array<{ device: string; ready: boolean; close_reasons: string[] }>;
    const skews = skew!.scenario_facts.skew_ms as Record<string, number>;
    for (const agent of during) {
      if (Math.abs(skews[agent.device]!) > 300_000) {
        assert.equal(agent.ready, false, agent.device);
        assert.ok(agent.close_reasons.includes('authentication refused: PROTO_CLOCK_SKEW'), JSON.stringify(agent));
      } else assert.equal(agent.ready, true, agent.device);
    }
  });

  it('a certificate revoked while connected: session closed, reconnections refused TRUST_CERT_REVOKED, no command taken after', async () => {
    const [revoked] = await chaosRun('cert-revoked');
    assertHeld(revoked!, agents - 1);
    const facts = revoked!.scenario_facts;
    assert.equal(typeof facts.session_closed_after_revocation_ms, 'number');
    assert.equal(facts.revoked_device_reconnect, 'TRUST_CERT_REVOKED');
    assert.ok((facts.revoked_device_close_reasons as string[]).includes('authentication refused: TRUST_CERT_REVOKED'));
    assert.ok((revoked!.run.counts.commands_refused ?? 0) > 0, 'commands for the revoked device were refused at creation');
    assert.deepEqual(revoked!.scenario_facts.failed_by_code, {});
  });

  it("the operator's JWT expires mid-run: 401 JWT_EXPIRED, a new login, each command created once", async () => {
    const [jwt] = await chaosRun('jwt-expiry');
    assert.equal(jwt!.duration_ms, 6_000, 'the scenario runs at least 6 s: a 1 s token is refused within 2 s (1 s of allowed skew in these runs)');
    assertHeld(jwt!, agents);
    assert.deepEqual(jwt!.scenario_facts.failed_by_code, {});
    assert.ok((jwt!.run.counts.token_expired_relogins ?? 0) >= 1);
    assert.equal(jwt!.scenario_facts.commands_created, jwt!.run.counts.commands_accepted);
  });
});
