import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runSwarm } from './swarm.js';

describe('runSwarm', () => {
  it('runs each seed with the crypto asked for (real crypto counts its Ed25519 work, modelled has none), and the same trace hashes', async () => {
    const swarmOf = (crypto: 'real' | 'model') => runSwarm({ runs: 2, baseSeed: 40, agents: 3, safetyMs: 2_000, crypto });
    const model = await swarmOf('model');
    const real = await swarmOf('real');
    assert.deepEqual(model.map((r) => r.timing?.startupEd25519), [undefined, undefined]);
    assert.ok(real.every((r) => (r.timing?.startupEd25519?.signs ?? 0) > 0), 'real Ed25519 signed at start-up');
    assert.deepEqual(real.map((r) => r.traceHash), model.map((r) => r.traceHash));
    assert.deepEqual([...model, ...real].map((r) => r.violations.length), [0, 0, 0, 0]);
  });
});
