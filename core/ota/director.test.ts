import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { assertRefused } from '../errors/assert-refused.js';
import { SdcError } from '../errors/index.js';
import { base64urlFromBytes } from '../crypto/bytes.js';
import { createNobleEd25519Provider } from '../crypto/ed25519-noble.js';
import { parseStrictJson } from '../protocol/strict-json.js';
import type { TargetFile } from '../tuf/metadata.js';
import type { TufJson } from '../tuf/olpc-json.js';
import {
  checkUpdate, directorLimits, directorSignedJson, directorSigningBytes, parseDirectorSigned, verifyDirectorEnvelope,
  type DirectorDocument, type UpdateCheckInput,
} from './director.js';
import { compareVersions, parseReleaseTarget } from './release-target.js';

const ed25519 = createNobleEd25519Provider();
const seed = new Uint8Array(32).fill(7);
const key = { keyId: 'director-1', publicKey: ed25519.publicKeyFromSeed(seed) };
const sha256 = 'ab'.repeat(32);
const nowMs = 1_764_700_000_000;

const doc: DirectorDocument = {
  deviceId: 'lab-01', rolloutId: 'ro-7', wave: 1, executionId: 'ex-91', issuedAtMs: nowMs - 1_000, expiresAtMs: nowMs + 15 * 60_000,
  target: { path: 'releases/agent-2.4.0.bin', length: 1_048_576, hashes: { sha256 }, releaseCounter: 42, platform: 'windows-x64' },
};

function custom(overrides: Record<string, TufJson> = {}): TufJson {
  return {
    sdc: {
      release_id: 'rel-2026-12-01', version: '2.4.0', release_counter: 42, platforms: ['windows-x64', 'linux-x64'],
      min_agent_version: '1.8.0', reboot_required: true, health_check: { timeout_ms: 300_000, probes: ['agent_online'] }, ...overrides,
    },
    other_tool: { anything: 1 },
  };
}

function image(overrides: Partial<TargetFile> = {}): TargetFile {
  return { path: doc.target.path, length: doc.target.length, hashes: [['sha256', sha256], ['sha512', 'cd'.repeat(64)]], custom: custom(), ...overrides };
}

function input(overrides: Partial<UpdateCheckInput> = {}): UpdateCheckInput {
  return {
    director: doc, imageTarget: image(),
    binding: { deviceId: 'lab-01', rolloutId: 'ro-7', wave: 1, executionId: 'ex-91' },
    device: { platform: 'windows-x64', agentVersion: '1.10.0', installedReleaseCounter: 41 },
    nowMs, ...overrides,
  };
}

function envelope(signed: unknown, sigSeed = seed, keyId = key.keyId): unknown {
  const bytes = directorSigningBytes(parseDirectorSigned(signed));
  return { signed, signature: { key_id: keyId, sig: base64urlFromBytes(ed25519.sign(sigSeed, bytes)) } };
}

test('a signed document survives the wire and verifies; it lists exactly one target', () => {
  const wire = JSON.stringify(envelope(directorSignedJson(doc)));
  assert.deepEqual(verifyDirectorEnvelope(parseStrictJson(wire), key, ed25519), doc);
  const [target] = directorSignedJson(doc)['targets'] as unknown[];
  for (const targets of [[], [target, target]]) {
    assertRefused(() => parseDirectorSigned({ ...directorSignedJson(doc), targets }), 'OTA_DIRECTOR_INVALID');
  }
});

test('a document signed by another key, under another key id, or edited after signing is refused', () => {
  const signed = directorSignedJson(doc);
  assertRefused(() => verifyDirectorEnvelope(envelope(signed, new Uint8Array(32).fill(8)), key, ed25519), 'OTA_DIRECTOR_SIGNATURE');
  assertRefused(() => verifyDirectorEnvelope(envelope(signed, seed, 'director-2'), key, ed25519), 'OTA_DIRECTOR_SIGNATURE');
  const edited = envelope(signed) as { signed: Record<string, unknown> };
  edited.signed = { ...signed, device_id: 'lab-02' };
  assertRefused(() => verifyDirectorEnvelope(edited, key, ed25519), 'OTA_DIRECTOR_SIGNATURE');
});

test('malformed documents are refused with OTA_DIRECTOR_INVALID, never a crash', () => {
  const signed = directorSignedJson(doc);
  const bad: unknown[] = [
    null, [], 'x', { ...signed, type: 'other' }, { ...signed, extra: 1 }, { ...signed, wave: -1 }, { ...signed, wave: 1.5 },
    { ...signed, device_id: '' }, { ...signed, expires_at_ms: doc.issuedAtMs }, { ...signed, expires_at_ms: doc.issuedAtMs + directorLimits.lifetimeMsMax + 1 },
    { ...signed, targets: [{ ...(signed['targets'] as object[])[0], hashes: { sha512: 'cd'.repeat(64) } }] },
    { ...signed, targets: [{ ...(signed['targets'] as object[])[0], hashes: { sha256: 'XY' } }] },
    { ...signed, targets: [{ ...(signed['targets'] as object[])[0], platform: 'Windows x64' }] },
  ];
  for (const value of bad) assertRefused(() => parseDirectorSigned(value), 'OTA_DIRECTOR_INVALID');
  fc.assert(fc.property(fc.jsonValue(), (value) => {
    try {
      verifyDirectorEnvelope({ signed: value, signature: { key_id: key.keyId, sig: 'A'.repeat(86) } }, key, ed25519);
      assert.fail('accepted a random document');
    } catch (error) {
      assert.ok(SdcError.is(error) && (error.code === 'OTA_DIRECTOR_INVALID' || error.code === 'OTA_DIRECTOR_SIGNATURE'), String(error));
    }
  }), { numRuns: 300 });
});

test('the update is approved when the director and the image repository agree, for this device and execution', () => {
  const approved = checkUpdate(input());
  assert.equal(approved.executionId, 'ex-91');
  assert.equal(approved.release.releaseCounter, 42);
  assert.equal(approved.release.rebootRequired, true);
  assert.deepEqual(approved.release.healthCheck, { timeoutMs: 300_000, probes: ['agent_online'] });
  // Reinstalling the installed release is not a rollback.
  assert.doesNotThrow(() => checkUpdate(input({ device: { platform: 'windows-x64', agentVersion: '1.8.0', installedReleaseCounter: 42 } })));
});

test('each disagreement is refused with its own code', () => {
  const device = input().device;
  const cases: Array<[Partial<UpdateCheckInput>, string]> = [
    [{ nowMs: doc.expiresAtMs }, 'OTA_DIRECTOR_EXPIRED'],
    [{ nowMs: doc.issuedAtMs - directorLimits.clockSkewMsMax - 1 }, 'OTA_DIRECTOR_EXPIRED'],
    [{ binding: { ...input().binding, deviceId: 'lab-02' } }, 'OTA_DIRECTOR_WRONG_BINDING'],
    [{ binding: { ...input().binding, rolloutId: 'ro-8' } }, 'OTA_DIRECTOR_WRONG_BINDING'],
    [{ binding: { ...input().binding, wave: 2 } }, 'OTA_DIRECTOR_WRONG_BINDING'],
    [{ binding: { ...input().binding, executionId: 'ex-92' } }, 'OTA_DIRECTOR_WRONG_BINDING'],
    [{ imageTarget: image({ length: doc.target.length + 1 }) }, 'OTA_TARGET_MISMATCH'],
    [{ imageTarget: image({ path: 'agent/2.4.1/update.bin' }) }, 'OTA_TARGET_MISMATCH'],
    [{ imageTarget: image({ hashes: [['sha256', 'cd'.repeat(32)]] }) }, 'OTA_TARGET_MISMATCH'],
    [{ imageTarget: image({ hashes: [['sha512', 'cd'.repeat(64)]] }) }, 'OTA_TARGET_MISMATCH'],
    [{ imageTarget: image({ custom: custom({ release_counter: 43 }) }) }, 'OTA_TARGET_MISMATCH'],
    [{ director: { ...doc, target: { ...doc.target, hashes: { sha256, sha384: 'ef'.repeat(48) } } } }, 'OTA_TARGET_MISMATCH'],
    [{ device: { ...device, platform: 'linux-x64' } }, 'OTA_PLATFORM_MISMATCH'],
    [{ imageTarget: image({ custom: custom({ platforms: ['linux-x64'] }) }) }, 'OTA_PLATFORM_MISMATCH'],
    [{ device: { ...device, installedReleaseCounter: 43 } }, 'OTA_RELEASE_COUNTER_ROLLBACK'],
    [{ device: { ...device, agentVersion: '1.7.99' } }, 'OTA_AGENT_TOO_OLD'],
    [{ imageTarget: image({ custom: undefined }) }, 'OTA_TARGET_CUSTOM_INVALID'],
  ];
  for (const [overrides, code] of cases) assertRefused(() => checkUpdate(input(overrides)), code as never);
});

test('property: the release counter never goes backwards: an update is approved only at or above the installed counter', () => {
  fc.assert(fc.property(fc.nat(1_000), fc.nat(1_000), (installed, offered) => {
    const director = { ...doc, target: { ...doc.target, releaseCounter: offered } };
    const run = (): unknown => checkUpdate(input({ director, imageTarget: image({ custom: custom({ release_counter: offered }) }), device: { ...input().device, installedReleaseCounter: installed } }));
    if (offered >= installed) assert.doesNotThrow(run);
    else assertRefused(run, 'OTA_RELEASE_COUNTER_ROLLBACK');
  }), { numRuns: 200 });
});

test('target custom data: every field is checked; unknown fields are ignored', () => {
  const broken: Array<Record<string, TufJson>> = [
    { release_id: '' }, { version: '2.4' }, { release_counter: -1 }, { release_counter: 1.5 }, { release_counter: 2n ** 60n },
    { platforms: [] }, { platforms: ['a', 'a'] }, { min_agent_version: 'latest' }, { reboot_required: 'yes' },
    { health_check: { timeout_ms: 0, probes: [] } }, { health_check: { timeout_ms: 1000, probes: ['Bad Probe'] } },
  ];
  for (const overrides of broken) assertRefused(() => parseReleaseTarget(custom(overrides)), 'OTA_TARGET_CUSTOM_INVALID');
  assertRefused(() => parseReleaseTarget({ other: 1 }), 'OTA_TARGET_CUSTOM_INVALID');
  assert.equal(parseReleaseTarget(custom({ future_field: 'x' })).version, '2.4.0');
  assert.ok(compareVersions('1.10.0', '1.9.9') > 0 && compareVersions('2.0.0', '2.0.0') === 0 && compareVersions('0.9.0', '1.0.0') < 0);
});
