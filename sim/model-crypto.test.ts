import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../core/errors/index.js';
import { createNodeSessionKeyCrypto } from '../runtime/session-crypto-node.js';
import { createHook } from 'node:async_hooks';
import { createModelEd25519Provider, createModelSessionKeyCrypto } from './model-crypto.js';
import { runSimulation } from './run.js';
import { builtinScenarioPath, loadScenario } from './scenario.js';

const seedA = new Uint8Array(32).fill(1);
const seedB = new Uint8Array(32).fill(2);
const message = new TextEncoder().encode('{"type":"HEARTBEAT"}');

describe('modelled crypto (simulator only)', () => {
  const provider = createModelEd25519Provider();

  it('has the sizes of Ed25519 and is deterministic', () => {
    assert.equal(provider.publicKeyFromSeed(seedA).length, 32);
    assert.equal(provider.sign(seedA, message).length, 64);
    assert.deepEqual(provider.sign(seedA, message), createModelEd25519Provider().sign(seedA, message));
    assert.notDeepEqual(provider.publicKeyFromSeed(seedA), provider.publicKeyFromSeed(seedB));
  });

  it('verifies its own signature and refuses a changed message, another key and a changed signature', () => {
    const signature = provider.sign(seedA, message);
    assert.equal(provider.verify(provider.publicKeyFromSeed(seedA), message, signature), true);
    const changed = message.slice();
    changed[3]! ^= 1;
    assert.equal(provider.verify(provider.publicKeyFromSeed(seedA), changed, signature), false);
    assert.equal(provider.verify(provider.publicKeyFromSeed(seedB), message, signature), false);
    const flipped = signature.slice();
    flipped[63]! ^= 1;
    assert.equal(provider.verify(provider.publicKeyFromSeed(seedA), message, flipped), false);
  });

  it('refuses malformed keys and signatures with the codes of the real provider', () => {
    const code = (fn: () => unknown) => { try { fn(); return 'none'; } catch (error) { return SdcError.is(error) ? error.code : 'other'; } };
    assert.equal(code(() => provider.sign(new Uint8Array(31), message)), 'CRYPTO_BAD_KEY');
    assert.equal(code(() => provider.verify(new Uint8Array(33), message, new Uint8Array(64))), 'CRYPTO_BAD_KEY');
    assert.equal(code(() => provider.verify(new Uint8Array(32), message, new Uint8Array(63))), 'CRYPTO_BAD_SIGNATURE_ENCODING');
  });

  it('modelled key agreement: both sides agree, another key does not, sizes and refusals as node:crypto X25519', () => {
    const model = createModelSessionKeyCrypto();
    const real = createNodeSessionKeyCrypto();
    const [agentSecret, gatewaySecret, otherSecret] = [seedA, seedB, new Uint8Array(32).fill(9)];
    const [agentPublic, gatewayPublic] = [model.x25519PublicKey(agentSecret), model.x25519PublicKey(gatewaySecret)];
    assert.equal(agentPublic.length, real.x25519PublicKey(agentSecret).length);
    const agentSide = model.x25519SharedSecret(agentSecret, gatewayPublic);
    assert.deepEqual(agentSide, model.x25519SharedSecret(gatewaySecret, agentPublic));
    assert.equal(agentSide.length, 32);
    assert.notDeepEqual(model.x25519SharedSecret(otherSecret, gatewayPublic), agentSide);
    const code = (fn: () => unknown) => { try { fn(); return 'none'; } catch (error) { return SdcError.is(error) ? error.code : 'other'; } };
    for (const crypto of [model, real]) {
      assert.equal(code(() => crypto.x25519PublicKey(new Uint8Array(31))), 'CRYPTO_BAD_KEY');
      assert.equal(code(() => crypto.x25519SharedSecret(agentSecret, new Uint8Array(33))), 'CRYPTO_BAD_KEY');
    }
  });

  it('a run has the same trace hash with real and with modelled crypto', async () => {
    const scenario = await loadScenario(builtinScenarioPath('churn'));
    const options = { scenario, scenarioRef: 'churn', seed: 11, agents: 12, safetyMs: 10_000 };
    const real = await runSimulation({ ...options, crypto: 'real' });
    const model = await runSimulation({ ...options, crypto: 'model' });
    assert.ok(real.counts.executions! > 0, 'the run executed commands');
    assert.deepEqual(real.violations, []);
    assert.equal(model.traceHash, real.traceHash);
    assert.deepEqual(model.counts, real.counts);
  });
});

describe('HKDF-SHA256 as its HMACs (the modelled session crypto\'s HKDF; vectors and equality with hkdfSync: core/crypto/hkdf-by-hmac.test.ts, runtime/session-crypto.test.ts)', () => {
  const hex = (text: string) => Uint8Array.from(Buffer.from(text, 'hex'));
  const ikm = new Uint8Array(22).fill(0x0b);

  it('the modelled provider derives session keys without an async resource per call (hkdfSync makes one, with hooks on in the simulator)', () => {
    const crypto = createModelSessionKeyCrypto();
    const created: string[] = [];
    const hook = createHook({ init: (_id, type) => { created.push(type); } }).enable();
    let okm: Uint8Array;
    try {
      okm = crypto.hkdfSha256({ ikm, salt: hex('000102030405060708090a0b0c'), info: hex('f0f1f2f3f4f5f6f7f8f9'), length: 42 });
    } finally {
      hook.disable();
    }
    assert.deepEqual(created, []);
    assert.equal(Buffer.from(okm).toString('hex'), '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
    assert.throws(() => crypto.hkdfSha256({ ikm, salt: new Uint8Array(0), info: new Uint8Array(0), length: 0 }), (e) => SdcError.is(e, 'PROTO_INVALID_ARGUMENT'));
  });
});
