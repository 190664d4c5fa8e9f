import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import { systemRandom } from '../runtime/system.js';
import { EnrollmentService } from './enrollment.js';
import {
  createPairingToken, hashPairingToken, JsonFilePairingTokenStore, MemoryPairingTokenStore, pairingRecordRetentionMs,
  type PairingTokenStore,
} from './pairing-tokens.js';
import { fixedNow, makeCsrPem, makeTestPki, withTempDir, type TestPki } from './test-fixtures.js';
import { verifyDeviceCertificate } from './verify-device-certificate.js';

const minuteMs = 60_000;

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof SdcError, String(error));
    return error.code;
  }
  assert.fail('expected a refusal');
}

function enrollmentContract(name: string, makeStore: (dir: string) => PairingTokenStore): void {
  describe(`enrollment with ${name} pairing tokens`, () => {
    let pki: TestPki;
    before(async () => { pki = await makeTestPki(); });

    async function setup(dir: string): Promise<{ store: PairingTokenStore; service: EnrollmentService }> {
      const store = makeStore(dir);
      return { store, service: new EnrollmentService({ tokens: store, issuer: pki.issuer }) };
    }

    it('enrolls once with a fresh token; the certificate verifies; a second use is refused', async () => {
      await withTempDir(async (dir) => {
        const { store, service } = await setup(dir);
        const { token, expiresAt } = await createPairingToken({ store, deviceId: 'dev-1', now: fixedNow, random: systemRandom });
        assert.match(token, /^sdcpt_[A-Za-z0-9_-]{43}$/);
        assert.equal(expiresAt.getTime(), fixedNow.getTime() + 15 * minuteMs);
        const csrPem = await makeCsrPem('dev-1');
        const result = await service.enroll({ token, deviceId: 'dev-1', csrPem, now: new Date(fixedNow.getTime() + minuteMs) });
        assert.deepEqual(result.chainPems, pki.issuer.chainPems());
        const verified = await verifyDeviceCertificate({
          certPem: result.certificatePem, chainPems: [result.chainPems[0]!], trustAnchors: [pki.root.certificate], now: fixedNow, isRevoked: () => false,
        });
        assert.equal(verified.deviceId, 'dev-1');
        assert.equal(await codeOf(service.enroll({ token, deviceId: 'dev-1', csrPem, now: fixedNow })), 'TRUST_PAIRING_TOKEN_USED');
      });
    });

    it('refuses an expired token', async () => {
      await withTempDir(async (dir) => {
        const { store, service } = await setup(dir);
        const { token } = await createPairingToken({ store, deviceId: 'dev-1', now: fixedNow, random: systemRandom, ttlMs: 5 * minuteMs });
        const late = new Date(fixedNow.getTime() + 5 * minuteMs);
        assert.equal(await codeOf(service.enroll({ token, deviceId: 'dev-1', csrPem: await makeCsrPem('dev-1'), now: late })), 'TRUST_PAIRING_TOKEN_EXPIRED');
      });
    });

    it('refuses a token bound to another device, and burns it', async () => {
      await withTempDir(async (dir) => {
        const { store, service } = await setup(dir);
        const { token } = await createPairingToken({ store, deviceId: 'dev-1', now: fixedNow, random: systemRandom });
        assert.equal(await codeOf(service.enroll({ token, deviceId: 'dev-2', csrPem: await makeCsrPem('dev-2'), now: fixedNow })), 'TRUST_PAIRING_DEVICE_MISMATCH');
        assert.equal(await codeOf(service.enroll({ token, deviceId: 'dev-1', csrPem: await makeCsrPem('dev-1'), now: fixedNow })), 'TRUST_PAIRING_TOKEN_USED');
      });
    });

    it('refuses unknown and malformed tokens; a bad CSR does not burn a good token', async () => {
      await withTempDir(async (dir) => {
        const { store, service } = await setup(dir);
        const csrPem = await makeCsrPem('dev-1');
        const unknown = 'sdcpt_' + Buffer.alloc(32, 7).toString('base64url');
        assert.equal(await codeOf(service.enroll({ token: unknown, deviceId: 'dev-1', csrPem, now: fixedNow })), 'TRUST_PAIRING_TOKEN_INVALID');
        assert.equal(await codeOf(service.enroll({ token: 'short', deviceId: 'dev-1', csrPem, now: fixedNow })), 'TRUST_PAIRING_TOKEN_INVALID');
        const { token } = await createPairingToken({ store, deviceId: 'dev-1', now: fixedNow, random: systemRandom });
        assert.equal(await codeOf(service.enroll({ token, deviceId: 'dev-1', csrPem: await makeCsrPem('dev-9'), now: fixedNow })), 'TRUST_CSR_SUBJECT_MISMATCH');
        assert.equal((await service.enroll({ token, deviceId: 'dev-1', csrPem, now: fixedNow })).chainPems.length, 2);
      });
    });

    it('lets exactly one of two concurrent consumers win', async () => {
      await withTempDir(async (dir) => {
        const store = makeStore(dir);
        const { token } = await createPairingToken({ store, deviceId: 'dev-1', now: fixedNow, random: systemRandom });
        const hash = hashPairingToken(token);
        const outcomes = await Promise.all([store.consume(hash, fixedNow), store.consume(hash, fixedNow), store.consume(hash, fixedNow)]);
        assert.deepEqual(outcomes.map((o) => o.outcome).sort(), ['already-used', 'already-used', 'consumed']);
      });
    });
  });
}

enrollmentContract('memory', () => new MemoryPairingTokenStore());
enrollmentContract('JSON file', (dir) => new JsonFilePairingTokenStore(join(dir, 'pairing-tokens.json')));

describe('pairing token stores', () => {
  it('the JSON file holds hashes only, mode 0600', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'pairing-tokens.json');
      const { token } = await createPairingToken({ store: new JsonFilePairingTokenStore(path), deviceId: 'dev-1', now: fixedNow, random: systemRandom });
      const text = await readFile(path, 'utf8');
      assert.ok(!text.includes(token));
      assert.ok(text.includes(hashPairingToken(token)));
      assert.equal((await stat(path)).mode & 0o777, 0o600);
    });
  });

  it('bounds outstanding tokens and forgets records a retention period after expiry', async () => {
    const store = new MemoryPairingTokenStore({ recordsMax: 2 });
    const make = (now: Date) => createPairingToken({ store, deviceId: 'dev-1', now, random: systemRandom });
    await make(fixedNow);
    await make(fixedNow);
    assert.equal(await codeOf(make(fixedNow)), 'TRUST_PAIRING_CAPACITY');
    const muchLater = new Date(fixedNow.getTime() + 15 * minuteMs + pairingRecordRetentionMs);
    await make(muchLater);
  });

  it('refuses a TTL outside 1 ms..24 h and an invalid device id', async () => {
    const store = new MemoryPairingTokenStore();
    assert.equal(await codeOf(createPairingToken({ store, deviceId: 'dev-1', now: fixedNow, random: systemRandom, ttlMs: 0 })), 'TRUST_INVALID_ARGUMENT');
    assert.equal(await codeOf(createPairingToken({ store, deviceId: 'a/b', now: fixedNow, random: systemRandom })), 'TRUST_DEVICE_ID_INVALID');
  });
});

