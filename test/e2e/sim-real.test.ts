import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commandTerminalStates } from '../../core/protocol/command-machine.js';
import { builtinScenarioPath, loadScenario } from '../../sim/scenario.js';
import { runRealSimulation } from '../../sim/real/run-real.js';
import { realWaitMs, withSimRealDeployment } from './support/sim-real-deployment.js';

test('--real: 6 simulated agents over 2 worker processes against a running deployment; every command terminal, checkers pass', async () => {
  await withSimRealDeployment('sdc-sim-real-test-', async ({ deployment, materials, password }) => {
    const smoke = await loadScenario(builtinScenarioPath('smoke'));
    // A higher rate than smoke's so that a 3 s run sends a few dozen commands to six agents.
    // The drain and online waits run on real time: generous, because the machine may be busy with
    // other work and a drain that finishes ends the wait at once (the liveness bound itself is
    // checked on virtual time by the simulator's own runs).
    const scenario = { ...smoke, telemetryIntervalMs: 2_000, livenessBoundMs: realWaitMs, commands: { ...smoke.commands, perMinute: 600 } };
    const result = await runRealSimulation({
      url: deployment.apiUrl!, caPem: materials.rootCaPem, admin: 'sim-admin', password,
      scenario, scenarioRef: 'smoke', seed: 7, agents: 6, processes: 2, durationMs: 3_000, onlineTimeoutMs: realWaitMs,
    });
    assert.deepEqual(result.violations, []);
    assert.equal(result.agents, 6);
    assert.equal(result.processes, 2);
    assert.ok(result.counts.commands_accepted! >= 5, `only ${result.counts.commands_accepted} commands accepted`);
    assert.equal(result.counts.commands_refused, 0);
    const total = Object.values(result.commandsByState).reduce((a, b) => a + b, 0);
    assert.equal(total, result.counts.commands_accepted);
    const terminal = commandTerminalStates.reduce((n, s) => n + result.commandsByState[s], 0);
    assert.equal(terminal, total, JSON.stringify(result.commandsByState));
    // Every command ran at its device: smoke's mock kernel has no screen lock, so EXEC_LOCK_SCREEN fails there.
    assert.equal(result.commandsByState.succeeded + result.commandsByState.failed, total);
    assert.ok(result.commandsByState.succeeded > 0);
    // The agents in the workers ran each command once; the kernels saw exactly those calls.
    assert.equal(result.counts.executions, total);
    assert.equal(result.counts.kernel_calls, total);
    assert.notEqual(result.drainedAfterMs, null);
    assert.deepEqual(result.online, { agents: 6, controlPlane: 6 });
    for (const name of ['none_lost', 'at_most_once', 'ran_once', 'not_executed', 'legal_transitions', 'audit_chain', 'presence', 'liveness'] as const) {
      assert.equal(result.checkers[name], 'pass', name);
    }
    assert.equal(result.latencyHistogram.reduce((n, b) => n + b.count, 0), total);
    // Pairing went through the API: the devices exist at the control plane, enrolled.
    const devices = await deployment.stores.sql!.query<{ id: string }>("SELECT id FROM devices WHERE id LIKE 'simr-7-%' AND cert_serial IS NOT NULL");
    assert.equal(devices.length, 6);
  });
});

test('sdc sim --real refuses a non-https URL, a missing --admin and --swarm with one-line usage errors', async () => {
  const { main } = await import('../../cli/main.js');
  const run = async (argv: string[]) => {
    let err = '';
    const code = await main(argv, { stdout: () => {}, stderr: (t) => { err += t; }, readStdin: async () => '', env: { SDC_PASSWORD: 'x' } });
    return { code, err };
  };
  const plain = await run(['sim', '--real', 'http://127.0.0.1:1', '--admin', 'a', '--ca', '/nonexistent']);
  assert.notEqual(plain.code, 0);
  assert.match(plain.err, /CLI_USAGE.*https:\/\/HOST:PORT/);
  const noAdmin = await run(['sim', '--real', 'https://127.0.0.1:1', '--ca', '/nonexistent']);
  assert.match(noAdmin.err, /CLI_USAGE.*--admin/);
  const swarm = await run(['sim', '--real', 'https://127.0.0.1:1', '--swarm', '2']);
  assert.match(swarm.err, /CLI_USAGE.*--swarm/);
  const noCa = await run(['sim', '--real', 'https://127.0.0.1:1', '--admin', 'a', '--ca', '/nonexistent/ca.pem', '--seed', '1']);
  assert.match(noCa.err, /CLI_INPUT.*--ca/);
});
