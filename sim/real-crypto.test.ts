// Issue 17: the Ed25519 work of a real-crypto start-up (RunTiming.startupEd25519), counted: deterministic for a seed.
// Per device: six signs (AUTH_CHALLENGE, AUTH, AUTH_ACK, the policy bundle, its POLICY_BUNDLE
// frame, the POLICY_BUNDLE_REPORT) and seven verifies of them, one of which is the control
// plane's verify of the report the gateway verified moments before on the same provider: the
// verified-signature cache answers that one (sim/real-crypto.ts), so six reach OpenSSL.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runSimulation } from './run.js';
import { builtinScenarioPath, loadScenario } from './scenario.js';

const agents = 40;

describe('sim real-crypto start-up in Ed25519 operations', () => {
  it('40 agents on the standard profile: at most 6.1 OpenSSL verifies per agent, the control plane\'s verify of each report answered from the cache', async () => {
    const scenario = await loadScenario(builtinScenarioPath('standard'));
    const result = await runSimulation({ scenario, scenarioRef: 'standard', seed: 1, agents, safetyMs: 3_000, crypto: 'real' });
    assert.deepEqual(result.violations, []);
    assert.equal(result.counts.sessions_ready, agents);
    assert.notEqual(result.timing!.allReadyAtVirtualMs, null, 'every agent was ready within the safety phase');
    const counts = result.timing!.startupEd25519!;
    assert.ok(counts.verifiedCacheHits >= agents, `at least one verify per device answered from the cache: ${counts.verifiedCacheHits}`);
    assert.ok(counts.verifies / agents <= 6.1, `${counts.verifies} OpenSSL verifies for ${agents} agents' start-up (${counts.verifies / agents} each)`);
    assert.ok(counts.signs / agents <= 6.1, `${counts.signs} signs for ${agents} agents' start-up`);
    // And each key is imported once: the device's private key (its kernel bridge's and mock kernel's
    // two are built on the first kernel call, sim/lazy-kernel.ts, and no command reaches a kernel
    // during this start-up), and one public key (its own, at the gateway).
    assert.ok(counts.privateKeyImports / agents <= 1.1, `private key imports: ${counts.privateKeyImports}`);
    assert.ok(counts.publicKeyImports / agents <= 1.1, `public key imports: ${counts.publicKeyImports}`);
  });

  it('modelled crypto keeps no Ed25519 counts', async () => {
    const scenario = await loadScenario(builtinScenarioPath('standard'));
    const result = await runSimulation({ scenario, scenarioRef: 'standard', seed: 1, agents: 5, safetyMs: 2_000, crypto: 'model' });
    assert.equal(result.timing!.startupEd25519, undefined);
  });
});
