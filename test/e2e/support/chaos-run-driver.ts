// Shared by the `sdc chaos run` test files (test/e2e/chaos-*.test.ts): the CLI called in-process
// with a short form, its JSON reports parsed, and what every run must show. The scenarios are
// spread over several files of two or three runs each: a run waits mostly on the wall clock (its
// fault window, the drain, the reconnects), so files run side by side overlap those waits.
import assert from 'node:assert/strict';
import type { CliIo } from '../../../cli/command.js';
import type { ChaosRunReport } from '../../../cli/commands/chaos-run.js';
import { main } from '../../../cli/main.js';

export function cliIo(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t), readStdin: async () => '', env: { SDC_LOG_LEVEL: 'silent' } };
}

export const chaosAgents = 2;

/** The agent-link and store faults: 2 agents, 5 s of commands, the fault from 1 s to 3 s. */
export const linkFaultForm = ['--agents', String(chaosAgents), '--duration', '5s', '--fault-at', '1s', '--fault-for', '2s', '--seed', '5', '--json'] as const;
/**
 * The store outages at start: the store kept down 1 s after /readyz named it (the start's own
 * fault), then 2 s of commands with no fault on them (the no-op fault's window is where the
 * outside probes run), enough to show that the deployment serves once it has ridden the outage out.
 */
export const startFaultForm = ['--agents', String(chaosAgents), '--duration', '2s', '--fault-at', '0s', '--fault-for', '1s', '--seed', '5', '--json'] as const;
/** The process and trust faults: a restart or an expiry needs the fault on from 1 s to 4 s. */
export const processFaultForm = ['--agents', String(chaosAgents), '--duration', '5s', '--fault-at', '1s', '--fault-for', '3s', '--seed', '7', '--json'] as const;

export interface ChaosRunOutcome {
  readonly code: number;
  readonly reports: ChaosRunReport[];
  readonly err: string;
  /** The stderr and each run's violations and facts: what an assertion on the exit code prints. */
  readonly detail: string;
}

export async function chaosRun(argv: readonly string[], form: readonly string[]): Promise<ChaosRunOutcome> {
  const run = cliIo();
  const code = await main(['chaos', 'run', ...argv, ...form], run);
  const parsed = run.out.length === 0 ? [] : JSON.parse(run.out.join('')) as ChaosRunReport | ChaosRunReport[];
  const reports = Array.isArray(parsed) ? parsed : [parsed];
  const err = run.err.join('');
  const detail = `${err}\n${JSON.stringify(reports.map((r) => ({ run: r.chaos_run, violations: r.violations, facts: r.scenario_facts })))}`;
  return { code, reports, err, detail };
}

/** Runs the scenarios (comma list) in the process-fault form; every run must exit 0. */
export async function chaosRunPassing(scenarios: string, form: readonly string[] = processFaultForm): Promise<ChaosRunReport[]> {
  const { code, reports, detail } = await chaosRun(['--scenario', scenarios], form);
  assert.equal(code, 0, detail);
  return reports;
}

/** A link or store fault: sim --real's checkers and the outside probes held, each accepted command ran once. */
export function assertLinkRunHeld(report: ChaosRunReport, options: { cutsSessions: boolean }): void {
  const agents = chaosAgents;
  const detail = JSON.stringify(report.violations);
  assert.equal(report.passed, true, `${report.chaos_run}: ${detail}`);
  assert.ok(Object.values(report.run.checkers).every((verdict) => verdict === 'pass'), `${report.chaos_run}: ${JSON.stringify(report.run.checkers)}`);
  assert.notEqual(report.fault.at_ms, null, 'the fault went on');
  assert.notEqual(report.fault.healed_at_ms, null, 'the fault was healed');
  assert.notEqual(report.agents_back_after_heal_ms, null, `every agent online again within ${report.reconnect_bound_ms} ms of the heal`);
  assert.ok((report.run.counts.commands_accepted ?? 0) > 0, 'commands were sent');
  // Every accepted command ran once; a POST whose outcome the client could not learn (no answer, or
  // STORE_COMMIT_UNKNOWN) may have run too, once (the checkers guard at-most-once per command).
  const accepted = report.run.counts.commands_accepted ?? 0;
  const kernelCalls = report.run.counts.kernel_calls ?? 0;
  assert.ok(kernelCalls >= accepted && kernelCalls <= accepted + (report.run.counts.commands_outcome_unknown ?? 0),
    `every accepted command ran exactly once: ${kernelCalls} kernel calls for ${accepted} accepted and ${report.run.counts.commands_outcome_unknown ?? 0} of unknown outcome`);
  assert.equal(report.run.online.agents, agents);
  assert.equal(report.run.online.controlPlane, agents);
  // The mock kernels answer every opcode of the workload: without a fault that fails commands, none fails.
  assert.deepEqual(report.scenario_facts.failed_by_code, {}, `${report.chaos_run}: ${JSON.stringify(report.run.commandsByState)}`);
  // The outside probes, the revoked device's included (store cuts too: docs/chaos.md, the hang after a store cut).
  assert.equal(report.unauthenticated_access.verdict, 'pass');
  assert.equal(report.unauthenticated_access.probes.length, 12);
  if (options.cutsSessions) {
    // Every agent lost its session to the fault and came back: more sessions ready than agents.
    assert.ok((report.run.counts.sessions_closed ?? 0) >= agents, `sessions closed: ${report.run.counts.sessions_closed}`);
    assert.ok((report.run.counts.sessions_ready ?? 0) >= 2 * agents, `sessions ready: ${report.run.counts.sessions_ready}`);
  }
}

/** A process or trust fault: sim --real's checkers held, the fault went on and was healed, and no probe got in. */
export function assertProcessRunHeld(report: ChaosRunReport, online: number): void {
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
