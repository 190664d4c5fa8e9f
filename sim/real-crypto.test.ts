// Issue 17: the Ed25519 work of a real-crypto start-up, counted (deterministic for a seed).
// Per device: six signs (AUTH_CHALLENGE, AUTH, AUTH_ACK, the policy bundle, its POLICY_BUNDLE
// frame, the POLICY_BUNDLE_REPORT) and seven verifies of them, one of which is the control
// plane's verify of the report the gateway verified moments before on the same provider: the
// verified-signature cache answers that one (sim/real-crypto.ts), so six reach OpenSSL.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runSimulation } from './run.js';
import { realProviderFor } from './real-crypto.js';
import { builtinScenarioPath, loadScenario } from './scenario.js';

const agents = 40;

describe('sim real-crypto start-up in Ed25519 operations', () => {
  it('40 agents on the standard profile: at most 6.1 OpenSSL verifies per agent, the control plane\'s verify of each report answered from the cache', async () => {
    const provider = realProviderFor(agents);
    const before = provider.counts();
    const scenario = await loadScenario(builtinScenarioPath('standard'));
    const result = await runSimulation({ scenario, scenarioRef: 'standard', seed: 1, agents, safetyMs: 3_000, crypto: 'real' });
    assert.deepEqual(result.violations, []);
    assert.equal(result.counts.sessions_ready, agents);
    const after = provider.counts();
    const verifies = after.verifies - before.verifies;
    const hits = after.verifiedCacheHits - before.verifiedCacheHits;
    assert.ok(hits >= agents, `at least one verify per device answered from the cache: ${hits}`);
    assert.ok(verifies / agents <= 6.1, `${verifies} OpenSSL verifies for ${agents} agents (${verifies / agents} each)`);
    // And the keys are imported once each: three private keys per device, one public key (its own, at the gateway).
    assert.ok((after.privateKeyImports - before.privateKeyImports) / agents <= 3.1, `private key imports: ${after.privateKeyImports - before.privateKeyImports}`);
  });
});
