import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseCommandArgs, type CliIo } from '../../cli/command.js';
import { matrixFault, matrixFaults, matrixScenario, renderMatrixMarkdown, type MatrixReport, type MatrixRunOutcome } from '../../cli/commands/chaos-matrix.js';
import { matrixCommand, runMatrixCommand } from '../../cli/commands/chaos-matrix-command.js';
import { main } from '../../cli/main.js';
import { parseScenario } from '../../sim/scenario.js';

function io(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t), readStdin: async () => '', env: {} };
}

const allPass: MatrixRunOutcome['checkers'] = {
  none_lost: 'pass', at_most_once: 'pass', not_executed: 'pass', legal_transitions: 'pass', audit_chain: 'pass', presence: 'pass', session_seq: 'pass', liveness: 'pass',
};

describe('sdc chaos matrix', () => {
  // The CI short matrix (issue 11): every fault of the catalogue, stores down from t = 0 included,
  // on one seed of the full tier (the real control plane, gateways and agents on virtual time),
  // 4 agents and a 10 s safety phase: 15 runs, about 12 s of CPU here (a run's cost is mostly its
  // set-up, not its agents or virtual seconds). Every invariant the simulator checks must hold in
  // every run; counting over several seeds is the planted test below; the docs hold the long matrix.
  it('the short matrix: every fault x 1 seed, every checked invariant holds, files written', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sdc-matrix-'));
    try {
      const run = io();
      const code = await main(['chaos', 'matrix', '--seeds', '1', '--base-seed', '1', '--agents', '4', '--duration', '10s', '--out', out], run);
      assert.equal(code, 0, run.err.join(''));
      const report = JSON.parse(await readFile(join(out, 'matrix.json'), 'utf8')) as MatrixReport;
      assert.equal(report.runs, matrixFaults.length);
      assert.ok(report.faults.some((f) => f.name === 'redis_down_at_start') && report.faults.some((f) => f.name === 'sql_down_at_start'), 'faults at t = 0 are in the matrix');
      for (const cell of report.cells) {
        assert.equal(cell.seeds, 1);
        assert.deepEqual(cell.failed, [], `${cell.fault} / ${cell.invariant}: ${JSON.stringify(cell.failed)}`);
        if (cell.invariant === 'no_unauthenticated_access') assert.equal(cell.not_checked, 1);
        else assert.equal(cell.held, 1, `${cell.fault} / ${cell.invariant} judged on the seed`);
        assert.equal(cell.recovery_ms.converged, 1);
      }
      const table = await readFile(join(out, 'matrix.md'), 'utf8');
      assert.match(table, /\| redis_down_at_start \| 1\/1 \|/);
      assert.match(table, /expired_jwt .*not simulated/);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('a failing seed is counted in its cells and listed with a command that reruns it, and the scenario file replays with sdc sim', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sdc-matrix-'));
    try {
      // A planted runner: seed 3 of `partition` loses a command; everything else holds.
      const planted = async ({ seed, scenario }: { seed: number; scenario: { name: string } }): Promise<MatrixRunOutcome> => (
        scenario.name.startsWith('matrix-partition-') && seed === 3
          ? { checkers: { ...allPass, none_lost: 'fail', presence: 'not_reached' }, violations: [{ checker: 'none_lost', message: 'command c-1 is still sent' }], convergedAfterMs: null }
          : { checkers: allPass, violations: [], convergedAfterMs: 2_000 });
      const run = io();
      const args = parseCommandArgs(matrixCommand, ['--fault', 'partition,delay', '--seeds', '3', '--base-seed', '1', '--out', out, '--json']);
      assert.equal(await runMatrixCommand(args, run, planted), 1);
      const report = JSON.parse(run.out.join('')) as MatrixReport;
      const lost = report.cells.find((c) => c.fault === 'partition' && c.invariant === 'none_lost')!;
      assert.equal(lost.held, 2);
      assert.equal(lost.failed.length, 1);
      assert.equal(lost.failed[0]!.seed, 3);
      assert.equal(lost.failed[0]!.reproduce, 'sdc chaos matrix --fault partition --seeds 1 --base-seed 3 --agents 10 --duration 20000ms --verbose');
      assert.equal(lost.failed[0]!.sim_reproduce, `sdc sim --seed 3 --scenario ${join(out, 'scenarios', 'partition-3.json')} --agents 10 --duration 20000ms`);
      const presence = report.cells.find((c) => c.fault === 'partition' && c.invariant === 'presence')!;
      assert.deepEqual([presence.held, presence.failed.length, presence.not_checked], [2, 0, 1]);
      assert.deepEqual(lost.recovery_ms, { p50: 2_000, p99: 2_000, converged: 2 });
      assert.ok(report.cells.filter((c) => c.fault === 'delay').every((c) => c.failed.length === 0));
      // The written scenario is the one the matrix ran, in the scenario format sdc sim reads.
      const written = parseScenario(JSON.parse(await readFile(join(out, 'scenarios', 'partition-3.json'), 'utf8')));
      assert.deepEqual(written, matrixScenario(matrixFault('partition')!, 3));
      assert.match(await readFile(join(out, 'matrix.md'), 'utf8'), /partition \/ none_lost, seed 3: command c-1 is still sent/);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('--real: a fault with a real-socket scenario gets its verdict per invariant, and a failure there fails the matrix', async () => {
    const simOk = async (): Promise<MatrixRunOutcome> => ({ checkers: allPass, violations: [], convergedAfterMs: 1_000 });
    const real = async (fault: { name: string; realScenario?: string }) => (fault.realScenario === undefined ? undefined : {
      scenario: fault.realScenario, rerun: `sdc chaos run --scenario ${fault.realScenario} --seed 1`,
      checkers: {
        none_lost: 'pass', at_most_once: 'pass', audit_chain: 'pass', liveness: 'pass', not_executed: 'pass', legal_transitions: 'pass', presence: fault.name === 'partition' ? 'fail' : 'pass',
        no_unauthenticated_access: fault.name === 'revoked_certificate' ? 'fail' : 'pass',
      } as const,
      violations: fault.name === 'partition' ? [{ checker: 'presence', message: 'not every agent was online again within 30000 ms of the heal' }]
        : fault.name === 'revoked_certificate' ? [{ checker: 'no_unauthenticated_access', message: 'the revoked device has a session again' }] : [],
      // A scenario's own check that names no invariant (ota-cut's splice check) fails the fault's real run.
      ...(fault.name === 'ota_mid_download' ? { scenarioFailures: ['no_splice: dev-1: STAGE read bytes with SHA-256 bb..., not the release\'s aa...'] } : {}),
    });
    const run = io();
    const args = parseCommandArgs(matrixCommand, ['--fault', 'partition,duplicate,delay', '--seeds', '1', '--json']);
    assert.equal(await runMatrixCommand(args, run, simOk, real), 1);
    const report = JSON.parse(run.out.join('')) as MatrixReport;
    const cell = (fault: string, invariant: string) => report.cells.find((c) => c.fault === fault && c.invariant === invariant)!;
    assert.deepEqual(cell('partition', 'presence').real, {
      scenario: 'partition', verdict: 'failed', rerun: 'sdc chaos run --scenario partition --seed 1', violation: 'not every agent was online again within 30000 ms of the heal',
    });
    assert.equal(cell('partition', 'none_lost').real!.verdict, 'held');
    assert.equal(cell('partition', 'session_seq').real!.verdict, 'not_checked');
    assert.equal(cell('delay', 'presence').real!.scenario, 'latency');
    assert.equal(cell('duplicate', 'none_lost').real, undefined, 'no real-socket scenario for duplicates');
    assert.equal(cell('partition', 'presence').failed.length, 0, 'the simulator held');
    const table = renderMatrixMarkdown(report);
    assert.match(table, /\| partition \|.*\| \*\*FAIL\*\* \(partition\) \|/);
    assert.match(table, /\| delay \|.*\| held \(latency\) \|/);
    assert.match(table, /\| duplicate \|.*\| - \|/);
    // No unauthenticated access: not checked by the simulator, judged by the real-socket run's outside probes.
    assert.equal(cell('delay', 'no_unauthenticated_access').not_checked, 1);
    assert.equal(cell('delay', 'no_unauthenticated_access').real!.verdict, 'held');
    // Faults the simulator does not model get a row of real-socket verdicts alone.
    assert.equal(cell('expired_jwt', 'none_lost').seeds, 0);
    assert.equal(cell('expired_jwt', 'none_lost').real!.scenario, 'jwt-expiry');
    assert.deepEqual(cell('revoked_certificate', 'no_unauthenticated_access').real, {
      scenario: 'cert-revoked', verdict: 'failed', rerun: 'sdc chaos run --scenario cert-revoked --seed 1', violation: 'the revoked device has a session again',
    });
    assert.match(table, /\| expired_jwt \| not simulated \|.*\| held \(jwt-expiry\) \|/);
    assert.match(table, /\| revoked_certificate \| not simulated \|.*\| \*\*FAIL\*\* \(cert-revoked\) \|/);
    assert.equal(cell('ota_mid_download', 'none_lost').real!.verdict, 'held');
    assert.deepEqual(cell('ota_mid_download', 'none_lost').real!.scenario_failures, ['no_splice: dev-1: STAGE read bytes with SHA-256 bb..., not the release\'s aa...']);
    assert.match(table, /\| ota_mid_download \| not simulated \|.*\| \*\*FAIL\*\* \(ota-cut\) \|/);
    assert.match(table, /- ota_mid_download, the scenario's own checks on real sockets \(ota-cut\): no_splice: dev-1/);
  });

  it('a seed names its fault exactly; faults at t = 0 start at 0, the others inside the safety phase', () => {
    for (const fault of matrixFaults) {
      assert.deepEqual(matrixScenario(fault, 42), matrixScenario(fault, 42), fault.name);
    }
    for (let seed = 1; seed <= 50; seed += 1) {
      assert.equal(matrixScenario(matrixFault('redis_down_at_start')!, seed).faults.busOutages![0]!.atMs, 0);
      assert.equal(matrixScenario(matrixFault('sql_down_at_start')!, seed).faults.sqlOutages![0]!.atMs, 0);
      const outage = matrixScenario(matrixFault('sql_down')!, seed).faults.sqlOutages![0]!;
      assert.ok(outage.atMs >= 1_000 && outage.atMs + outage.durationMs <= 15_000, JSON.stringify(outage));
    }
  });

  it('refuses an unknown fault, a bad seed count or tier in one line', async () => {
    for (const argv of [['--fault', 'meteor'], ['--seeds', '0'], ['--tier', 'quantum'], ['--duration', '1s']]) {
      const bad = io();
      assert.equal(await main(['chaos', 'matrix', ...argv], bad), 2, argv.join(' '));
      assert.match(bad.err.join(''), /^sdc: CLI_USAGE: .*\n$/);
    }
  });
});
