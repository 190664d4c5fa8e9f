import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import { systemRandom } from '../runtime/system.js';
import { EnrollmentService } from './enrollment.js';
import {
  createPairingToken, createPairingTokens, deviceIdsFromPrefix, hashPairingToken, JsonFilePairingTokenStore, MemoryPairingTokenStore,
  pairingRecordRetentionMs, pairingTokensPerBatchMax, pairingWrongDeviceTriesMax, type PairingConsumeResult, type PairingTokenStore,
} from './pairing-tokens.js';
import { codeOf, fixedNow, makeCsrPem, makeTestPki, withTempDir, type TestPki } from './test-fixtures.js';
import { verifyDeviceCertificate } from './verify-device-certificate.js';

const minuteMs = 60_000;
const usedAtOf = (result: PairingConsumeResult) => (result.outcome === 'unknown' ? undefined : result.record.usedAtMs);

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

    it('refuses a token bound to another device without spending it: its own device still enrolls with it (review h9, finding 4)', async () => {
      await withTempDir(async (dir) => {
        const { store, service } = await setup(dir);
        const { token } = await createPairingToken({ store, deviceId: 'dev-1', now: fixedNow, random: systemRandom });
        assert.equal(await codeOf(service.enroll({ token, deviceId: 'dev-2', csrPem: await makeCsrPem('dev-2'), now: fixedNow })), 'TRUST_PAIRING_DEVICE_MISMATCH');
        assert.equal(await codeOf(service.enroll({ token, deviceId: 'dev-2', csrPem: await makeCsrPem('dev-2'), now: fixedNow })), 'TRUST_PAIRING_DEVICE_MISMATCH', 'told the same again');
        assert.equal((await service.enroll({ token, deviceId: 'dev-1', csrPem: await makeCsrPem('dev-1'), now: fixedNow })).chainPems.length, 2);
        assert.equal(await codeOf(service.enroll({ token, deviceId: 'dev-2', csrPem: await makeCsrPem('dev-2'), now: fixedNow })), 'TRUST_PAIRING_TOKEN_USED', 'used is told before another device\'s');
      });
    });

    it('a token tried for other devices is spent at the third such try; after two its own device still enrolls', async () => {
      await withTempDir(async (dir) => {
        const { store, service } = await setup(dir);
        const enrollAs = async (token: string, deviceId: string) => service.enroll({ token, deviceId, csrPem: await makeCsrPem(deviceId), now: fixedNow });
        const stolen = await createPairingToken({ store, deviceId: 'dev-1', now: fixedNow, random: systemRandom });
        const messages: string[] = [];
        for (let i = 0; i < pairingWrongDeviceTriesMax; i += 1) {
          const refusal = await enrollAs(stolen.token, `dev-guess-${i}`).then(() => undefined, (e: unknown) => e);
          assert.ok(SdcError.is(refusal, 'TRUST_PAIRING_DEVICE_MISMATCH'), String(refusal));
          messages.push(refusal.message);
        }
        assert.match(messages.at(-1)!, /now spent/);
        assert.doesNotMatch(messages[0]!, /now spent/);
        const own = await enrollAs(stolen.token, 'dev-1').then(() => undefined, (e: unknown) => e);
        assert.ok(SdcError.is(own, 'TRUST_PAIRING_TOKEN_USED'), String(own));
        assert.match(own.message, /spent by 3 tries for other device ids/);
        const typo = await createPairingToken({ store, deviceId: 'dev-2', now: fixedNow, random: systemRandom });
        for (const deviceId of ['dev-3', 'dev-4']) assert.equal(await codeOf(enrollAs(typo.token, deviceId)), 'TRUST_PAIRING_DEVICE_MISMATCH');
        assert.equal((await enrollAs(typo.token, 'dev-2')).chainPems.length, 2);
      });
    });

    it('of many concurrent claims for other devices, exactly the bound are told other-device; the token is spent', async () => {
      await withTempDir(async (dir) => {
        const store = makeStore(dir);
        const { token } = await createPairingToken({ store, deviceId: 'dev-1', now: fixedNow, random: systemRandom });
        const hash = hashPairingToken(token);
        const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => store.consume(hash, { deviceId: `dev-guess-${i}`, now: fixedNow })));
        assert.equal(outcomes.filter((o) => o.outcome === 'other-device').length, pairingWrongDeviceTriesMax);
        assert.equal(outcomes.filter((o) => o.outcome === 'already-used').length, 10 - pairingWrongDeviceTriesMax);
        assert.equal((await store.consume(hash, { deviceId: 'dev-1', now: fixedNow })).outcome, 'already-used');
      });
    });

    it('an expired token is told expired each time, and not marked used', async () => {
      await withTempDir(async (dir) => {
        const { store } = await setup(dir);
        const { token } = await createPairingToken({ store, deviceId: 'dev-1', now: fixedNow, random: systemRandom, ttlMs: minuteMs });
        const hash = hashPairingToken(token);
        const late = new Date(fixedNow.getTime() + minuteMs);
        for (const deviceId of ['dev-1', 'dev-2', 'dev-1']) {
          const result = await store.consume(hash, { deviceId, now: late });
          assert.equal(result.outcome, 'expired', deviceId);
          assert.equal(usedAtOf(result), null);
        }
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
        const claim = { deviceId: 'dev-1', now: fixedNow };
        const wrong = { deviceId: 'dev-2', now: fixedNow };
        const outcomes = await Promise.all([store.consume(hash, claim), store.consume(hash, wrong), store.consume(hash, claim), store.consume(hash, claim)]);
        // The wrong device's claim is told 'other-device' or, after the winner, 'already-used'; never consumed.
        assert.ok(['other-device', 'already-used'].includes(outcomes[1]!.outcome), outcomes[1]!.outcome);
        assert.deepEqual([outcomes[0], outcomes[2], outcomes[3]].map((o) => o!.outcome).sort(), ['already-used', 'already-used', 'consumed']);
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

  it('the JSON file keeps the count of tries for other devices; a file written before the count reads it as 0, a bad count is refused', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'pairing-tokens.json');
      const { token } = await createPairingToken({ store: new JsonFilePairingTokenStore(path), deviceId: 'dev-1', now: fixedNow, random: systemRandom });
      const hash = hashPairingToken(token);
      const file = JSON.parse(await readFile(path, 'utf8')) as { records: Array<Record<string, unknown>> };
      delete file.records[0]!['wrongDeviceTries'];
      await writeFile(path, JSON.stringify(file));
      // A store per try: the count is read back from the file each time, not kept in a process.
      const outcomes = [];
      for (let i = 0; i < pairingWrongDeviceTriesMax; i += 1) outcomes.push((await new JsonFilePairingTokenStore(path).consume(hash, { deviceId: `dev-guess-${i}`, now: fixedNow })));
      assert.deepEqual(outcomes.map((o) => o.outcome === 'unknown' ? undefined : o.record.wrongDeviceTries), [1, 2, 3]);
      assert.equal((await new JsonFilePairingTokenStore(path).consume(hash, { deviceId: 'dev-1', now: fixedNow })).outcome, 'already-used');
      file.records[0]!['wrongDeviceTries'] = -1;
      await writeFile(path, JSON.stringify(file));
      const refusal = await new JsonFilePairingTokenStore(path).consume(hash, { deviceId: 'dev-1', now: fixedNow }).then(() => undefined, (e: unknown) => e);
      assert.ok(SdcError.is(refusal, 'TRUST_STORE_CORRUPT'), String(refusal));
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

  it('spent and expired tokens take no place under the limit (the 4,925-pairings defect), and the refusal names the limit', async () => {
    for (const [name, makeStore] of [
      ['memory', () => new MemoryPairingTokenStore({ recordsMax: 3 })],
      ['JSON file', (dir: string) => new JsonFilePairingTokenStore(join(dir, 'p.json'), { recordsMax: 3 })],
    ] as const) {
      await withTempDir(async (dir) => {
        const store: PairingTokenStore = makeStore(dir);
        const created = await createPairingTokens({ store, deviceIds: ['d-1', 'd-2', 'd-3'], now: fixedNow, random: systemRandom });
        // Before the fix every record counted until a day after expiry, so a fleet enrolling in a row filled the store.
        for (const c of created) assert.equal((await store.consume(hashPairingToken(c.token), { deviceId: c.deviceId, now: fixedNow })).outcome, 'consumed', name);
        await createPairingTokens({ store, deviceIds: ['d-4', 'd-5', 'd-6'], now: fixedNow, random: systemRandom });
        const refusal = await createPairingToken({ store, deviceId: 'd-7', now: fixedNow, random: systemRandom }).then(() => undefined, (e: unknown) => e);
        assert.ok(SdcError.is(refusal, 'TRUST_PAIRING_CAPACITY'), `${name}: ${String(refusal)}`);
        assert.match(refusal.message, /3 outstanding .* 1 more would pass the limit of 3/);
        assert.deepEqual(refusal.details, { limit: 3, outstanding: 3, requested: 1 });
        // Once the three outstanding ones expire they free their places.
        const expired = new Date(fixedNow.getTime() + 15 * minuteMs);
        await createPairingTokens({ store, deviceIds: ['d-7', 'd-8', 'd-9'], now: expired, random: systemRandom });
      });
    }
  });

  it('a batch is stored whole or not at all; the table keeps at most as many spent records again as the limit', async () => {
    const store = new MemoryPairingTokenStore({ recordsMax: 4 });
    const batch = (deviceIds: string[], minute: number) => createPairingTokens({ store, deviceIds, now: new Date(fixedNow.getTime() + minute * minuteMs), random: systemRandom });
    const first = await batch(['a-1', 'a-2'], 0);
    assert.equal(await codeOf(batch(['b-1', 'b-2', 'b-3'], 0)), 'TRUST_PAIRING_CAPACITY');
    const fit = await batch(['b-1', 'b-2'], 0);
    assert.deepEqual(fit.map((c) => c.deviceId), ['b-1', 'b-2'], 'the refused batch left nothing behind: b-1 and b-2 fit');
    // Spend every token, then three more full batches: 16 spent records for a table of 2 x 4.
    const spent: Array<{ hash: string; deviceId: string }> = [];
    const spend = async (created: Array<{ token: string; deviceId: string }>, minute: number) => {
      for (const c of created) {
        spent.push({ hash: hashPairingToken(c.token), deviceId: c.deviceId });
        assert.equal((await store.consume(spent.at(-1)!.hash, { deviceId: c.deviceId, now: new Date(fixedNow.getTime() + minute * minuteMs) })).outcome, 'consumed');
      }
    };
    await spend([...first, ...fit], 0);
    for (let minute = 1; minute <= 3; minute++) await spend(await batch(['c-1', 'c-2', 'c-3', 'c-4'].map((d) => `${d}-${minute}`), minute), minute);
    assert.equal(spent.length, 16);
    // The oldest spent records were forgotten ("unknown"); the newest still answer "used".
    assert.equal((await store.consume(spent[0]!.hash, { deviceId: spent[0]!.deviceId, now: fixedNow })).outcome, 'unknown');
    assert.equal((await store.consume(spent.at(-1)!.hash, { deviceId: spent.at(-1)!.deviceId, now: fixedNow })).outcome, 'already-used');
  });

  it('a batch refuses a device id twice, an empty or oversized list, and an invalid id', async () => {
    const store = new MemoryPairingTokenStore();
    const batch = (deviceIds: string[]) => createPairingTokens({ store, deviceIds, now: fixedNow, random: systemRandom });
    assert.equal(await codeOf(batch(['d-1', 'd-1'])), 'TRUST_INVALID_ARGUMENT');
    assert.equal(await codeOf(batch([])), 'TRUST_INVALID_ARGUMENT');
    assert.equal(await codeOf(batch(deviceIdsFromPrefix({ prefix: 'x-', count: pairingTokensPerBatchMax }).concat('y'))), 'TRUST_INVALID_ARGUMENT');
    assert.equal(await codeOf(batch(['ok', 'Not-Ok'])), 'TRUST_DEVICE_ID_INVALID');
  });

  it('deviceIdsFromPrefix pads the index to the width of the last one', () => {
    assert.deepEqual(deviceIdsFromPrefix({ prefix: 'lab-', count: 3 }), ['lab-1', 'lab-2', 'lab-3']);
    assert.deepEqual(deviceIdsFromPrefix({ prefix: 'lab-', count: 10 }).slice(0, 2), ['lab-01', 'lab-02']);
    assert.deepEqual(deviceIdsFromPrefix({ prefix: 'p', count: 2, first: 999 }), ['p0999', 'p1000']);
    assert.throws(() => deviceIdsFromPrefix({ prefix: 'p', count: 0 }), /count must be/);
  });

  it('refuses a TTL outside 1 ms..24 h and an invalid device id', async () => {
    const store = new MemoryPairingTokenStore();
    assert.equal(await codeOf(createPairingToken({ store, deviceId: 'dev-1', now: fixedNow, random: systemRandom, ttlMs: 0 })), 'TRUST_INVALID_ARGUMENT');
    assert.equal(await codeOf(createPairingToken({ store, deviceId: 'a/b', now: fixedNow, random: systemRandom })), 'TRUST_DEVICE_ID_INVALID');
  });
});

