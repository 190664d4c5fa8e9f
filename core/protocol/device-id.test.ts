import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { createNobleEd25519Provider } from '../crypto/ed25519-noble.js';
import { deviceIdLimits, isDeviceId } from './device-id.js';
import { signEnvelope, type EnvelopeFields } from './envelope.js';
import { DeviceId } from './messages/fields.js';

const provider = createNobleEd25519Provider();
const seed = new Uint8Array(32).fill(3);
const fields: EnvelopeFields = { v: 1, type: 'TELEMETRY', id: 'f1', device_id: 'dev-1', session_id: 's1', seq: 1, ts: 1, body: {} };
const schema = TypeCompiler.Compile(DeviceId);

/** Ids on both sides of every part of the rule. */
const cases: ReadonlyArray<readonly [string, boolean]> = [
  ['lab-01', true], ['0', true], ['a.b_c-d', true], ['a'.repeat(deviceIdLimits.lengthMax), true],
  ['', false], ['Lab-01', false], ['LAB', false], ['-lab', false], ['.lab', false], ['a/b', false], ['a b', false],
  ['a'.repeat(deviceIdLimits.lengthMax + 1), false], ['é', false],
];

function envelopeTakes(deviceId: string): boolean {
  try {
    signEnvelope({ fields: { ...fields, device_id: deviceId }, kid: 'k1', seed, provider });
    return true;
  } catch {
    return false;
  }
}

test('one device-id rule: isDeviceId, the envelope and the DeviceId message schema agree on every case', () => {
  for (const [id, valid] of cases) {
    assert.equal(isDeviceId(id), valid, `isDeviceId(${JSON.stringify(id)})`);
    assert.equal(envelopeTakes(id), valid, `envelope device_id ${JSON.stringify(id)}`);
    assert.equal(schema.Check(id), valid, `DeviceId schema ${JSON.stringify(id)}`);
  }
  assert.equal(isDeviceId(42), false);
});
