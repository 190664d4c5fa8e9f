// Issue 17: a session's start-up in SQL commits, a count that does not depend on the machine
// (RunTiming.connectSqlCommits). Per device: its presence write, its compliance transaction and
// its policy bundle report's transaction, three; the audit inputs of the last two are chained by
// the control plane's event audit window (eventAuditWindowMs, 50 virtual ms in a run), one drain
// for many devices. With a drain per virtual instant instead (the control plane's default) this
// fleet took 198 commits (4.95 per agent; 3.57 at 2,000 agents), with the window 135 (3.38).
// And in statements (RunTiming.connectSqlStatements), the second test below.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runSimulation } from './run.js';
import { builtinScenarioPath, loadScenario } from './scenario.js';

/** One 40-agent start-up on the standard profile, shared by both counts below (it ran once per test before). */
const agents = 40;
let startUp: ReturnType<typeof runSimulation> | undefined;
async function startUpTiming() {
  startUp ??= loadScenario(builtinScenarioPath('standard'))
    .then((scenario) => runSimulation({ scenario, scenarioRef: 'standard', seed: 1, agents, safetyMs: 3_000, crypto: 'model' }));
  const result = await startUp;
  assert.deepEqual(result.violations, []);
  assert.equal(result.counts.sessions_ready, agents);
  const timing = result.timing!;
  assert.notEqual(timing.allReadyAtVirtualMs, null, 'every agent was ready within the safety phase');
  return timing;
}

describe('sim start-up in SQL commits', () => {
  it('40 agents on the standard profile reach their first ready sessions in at most 3.5 SQL commits per agent', async () => {
    const timing = await startUpTiming();
    const perAgent = timing.connectSqlCommits / agents;
    assert.ok(perAgent >= 3, `at least the three writes of each device's AUTH: ${perAgent}`);
    assert.ok(perAgent <= 3.5, `${timing.connectSqlCommits} SQL commits for ${agents} agents' start-up (${perAgent} each)`);
  });

  // RunTiming.connectSqlStatements. Per device, ten: the presence UPDATE, the offline episode read
  // and the commands read (CommandRepository.unfinishedAndEpisodeOf: one statement on MySQL, two on
  // sql.js, where the one-statement forms cost more CPU); the compliance read, its INSERT and its
  // audit outbox row; the policy revision and the tags (sqlPolicyAndDeviceTags, likewise); the
  // bundle report's INSERT and its outbox row; then the shared audit drains: 445 (11.1 per agent;
  // 10.2 at 2,000 agents). A bound against growth: it held before the counter existed too.
  it('40 agents on the standard profile reach their first ready sessions in at most 11.5 SQL statements per agent', async () => {
    const timing = await startUpTiming();
    const perAgent = timing.connectSqlStatements / agents;
    assert.ok(perAgent >= 10, `at least the ten statements of each device's AUTH: ${perAgent}`);
    assert.ok(perAgent <= 11.5, `${timing.connectSqlStatements} SQL statements for ${agents} agents' start-up (${perAgent} each)`);
  });
});
