import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCrl, readVerifiedCrl } from '../../trust/crl.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import { parseCertificate } from '../../trust/x509-provider.js';
import { createRevocationCheck } from '../gateway/revocation-check.js';
import { crlReadCacheMs, crlRepublishIntervalMsDefault } from './devices.js';
import { SqlCrlStore, storedCrlsKeptMax } from './stores/sql-crl-store.js';
import { makeDeviceKey, makeHarness, openSecondControlPlane, sqlJsTargetCountingReads, storePairs, type Harness, type SecondControlPlane, type StorePair } from './test-support.js';

/**
 * Two control planes on one database (decision 0021, 2026-12-06 h14): a revocation made on one is
 * in the CRL the other serves on GET /v1/crl and writes to its CRL file, once the other's read
 * cache (crlReadCacheMs) has passed, not only when the other re-signs (up to 8 h before). Before,
 * each replica served the CRL it signed last.
 */
let storedCrlReads = 0;
const { pairs } = storePairs();

function suite(pair: StorePair): void {
  describe(`GET /v1/crl serves the highest CRL any replica stored (${pair.name})`, () => {
    let h: Harness;
    let second: SecondControlPlane;
    let secondUrl = '';
    const secondCrlPath = () => join(h.dir, 'second-crl.pem');
    // On sql.js the database counts the reads of the stored CRL (the mysql pair is not counted).
    const target = pair.sql.name === 'mysql' ? pair.sql : sqlJsTargetCountingReads('SELECT crl_number, this_update_ms', () => { storedCrlReads += 1; });

    before(async () => {
      h = await makeHarness(target, pair.kv === undefined ? {} : { kv: pair.kv });
      second = await openSecondControlPlane(h, pair, { crlPath: join(h.dir, 'second-crl.pem') });
      ({ url: secondUrl } = await second.cp.listen({ host: '127.0.0.1', port: 0, tls: false }));
    });
    after(async () => {
      await second?.close();
      await h?.close();
      await pair.sql.cleanup();
    });

    const fetchCrl = async (): Promise<Set<string>> => {
      const response = await fetch(`${secondUrl}/v1/crl`);
      assert.equal(response.status, 200);
      return (await readVerifiedCrl({ pem: await response.text(), issuer: h.materials.pki.intermediate.certificate })).serials;
    };
    const enroll = async (deviceId: string): Promise<string> => {
      const key = await makeDeviceKey(deviceId);
      const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId });
      await h.cp.devices.enroll({ deviceId, token, csrPem: key.csrPem });
      return normalizeSerialHex((await h.cp.devices.get(deviceId)).cert_serial!);
    };

    it('a revocation on the first control plane is in the CRL the second serves and writes, after the read cache', async () => {
      const serial = await enroll('crl-replica-1');
      // The second signs (and caches) a CRL without it first: what it served before, until it re-signed.
      assert.equal((await fetchCrl()).has(serial), false);
      await h.cp.devices.revoke({ actor: 'root', deviceId: 'crl-replica-1', reason: 'keyCompromise' });
      h.clock.advance(crlReadCacheMs);
      assert.equal((await fetchCrl()).has(serial), true, 'the second control plane serves the CRL the first signed at the revocation');
      await second.cp.devices.republishCrl();
      const onDisk = await readVerifiedCrl({ pem: await readFile(secondCrlPath(), 'utf8'), issuer: h.materials.pki.intermediate.certificate });
      assert.equal(onDisk.serials.has(serial), true, "the second control plane's CRL file holds it too");
    });

    it('a fetch storm reads the stored CRL once per cache period, and old rows are pruned', async () => {
      h.clock.advance(crlReadCacheMs);
      const before = storedCrlReads;
      await Promise.all(Array.from({ length: 20 }, () => fetchCrl()));
      if (pair.sql.name !== 'mysql') assert.equal(storedCrlReads - before, 1);
      for (let i = 0; i < storedCrlsKeptMax + 3; i += 1) {
        const deviceId = `crl-replica-prune-${i}`;
        await enroll(deviceId);
        await h.cp.devices.revoke({ actor: 'root', deviceId, reason: 'superseded' });
      }
      const [rows] = await h.db.query<{ n: number }>('SELECT COUNT(*) AS n FROM crls');
      assert.equal(Number(rows?.n), storedCrlsKeptMax);
    });

    it('a revocation whose CRL was never stored is signed into one by the next republish on any replica', async () => {
      const serial = await enroll('crl-replica-lost');
      // The revocation committed with its number, and the process ended before its CRL was stored:
      // the number is taken and the row inserted as the revocation's transaction does.
      await h.db.transaction(async (tx) => {
        await h.cp.devices.revocations.revokeDeviceIn(tx, serial, 'keyCompromise', new Date(h.clock.nowMs()), 'crl-replica-lost');
        await h.cp.devices.revocations.nextCrlNumberIn(tx);
      });
      // One republish interval on (decision 0021, h7: no pass signs within the spacing of the last CRL stored).
      h.clock.advance(crlRepublishIntervalMsDefault);
      await second.cp.devices.republishCrl();
      h.clock.advance(crlReadCacheMs);
      assert.equal((await fetchCrl()).has(serial), true);
    });

    it('a re-enrollment whose CRL signing fails still has the superseded certificate in the CRL after the next republish (review h20, finding 1)', async () => {
      const superseded = await enroll('crl-replica-superseded');
      await enroll('crl-replica-superseded');
      // Storing the CRL fails once, as a failed signing would: the republish that signs the
      // superseded certificate's CRL fails (logged by the timer), and the next one signs it.
      const { store, storeIn } = SqlCrlStore.prototype;
      const failing = async () => { throw new Error('CRL store failed (test)'); };
      SqlCrlStore.prototype.store = failing;
      SqlCrlStore.prototype.storeIn = failing;
      h.clock.advance(crlRepublishIntervalMsDefault);
      try {
        await assert.rejects(second.cp.devices.republishCrl(), /CRL store failed/);
      } finally {
        SqlCrlStore.prototype.store = store;
        SqlCrlStore.prototype.storeIn = storeIn;
      }
      await second.cp.devices.republishCrl();
      h.clock.advance(crlReadCacheMs);
      assert.equal((await fetchCrl()).has(superseded), true);
    });

    it('renewals sign no CRL each: the gateways refuse the superseded certificates at once, and the next republish on any replica signs one CRL listing them all (h12)', async () => {
      const devices = ['crl-renew-1', 'crl-renew-2', 'crl-renew-3'];
      const certificates = new Map<string, { certPem: string; csrPem: string; superseded: string }>();
      for (const deviceId of devices) {
        const key = await makeDeviceKey(deviceId);
        const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId });
        const enrolled = (await h.cp.devices.enroll({ deviceId, token, csrPem: key.csrPem })).certificate_pem;
        // A renewal keeps the certificate it presented (a lost answer can be retried): the second
        // renewal, presenting the first's certificate, supersedes the enrolled one.
        const renewed = await h.cp.devices.renew({ deviceId, csrPem: key.csrPem, presented: { certDer: new Uint8Array(parseCertificate(enrolled).rawData) } });
        certificates.set(deviceId, { certPem: renewed.certificate_pem, csrPem: key.csrPem, superseded: normalizeSerialHex(parseCertificate(enrolled).serialNumber) });
      }
      await h.cp.devices.republishCrl();
      const storedAbove = async (n: bigint): Promise<number> => {
        const [row] = await h.db.query<{ n: number | string }>('SELECT COUNT(*) AS n FROM crls WHERE crl_number > ?', [Number(n)]);
        return Number(row?.n);
      };
      const [top] = await h.db.query<{ n: number | string }>('SELECT MAX(crl_number) AS n FROM crls');
      const before = BigInt(top!.n);
      const superseded: string[] = [];
      for (const deviceId of devices) {
        const { certPem, csrPem, superseded: serial } = certificates.get(deviceId)!;
        superseded.push(serial);
        await h.cp.devices.renew({ deviceId, csrPem, presented: { certDer: new Uint8Array(parseCertificate(certPem).rawData) } });
      }
      assert.equal(await storedAbove(before), 0, 'no CRL signed by the renewals');
      const revokedInKv = createRevocationCheck({ kv: h.cp.context.kv });
      for (const serial of superseded) assert.equal(await revokedInKv(serial), true, `superseded ${serial} refused by the gateways at once`);
      // Within the spacing of the CRL stored above, no pass signs (decision 0021, h7), on either replica.
      await second.cp.devices.republishCrl();
      assert.equal(await storedAbove(before), 0, 'nothing signed within the spacing');
      h.clock.advance(crlRepublishIntervalMsDefault);
      // The first control plane could end here (its renewals committed, nothing signed): the other's republish signs.
      await second.cp.devices.republishCrl();
      await h.cp.devices.republishCrl();
      assert.equal(await storedAbove(before), 1, 'one CRL for the three renewals');
      h.clock.advance(crlReadCacheMs);
      const listed = await fetchCrl();
      for (const serial of superseded) assert.equal(listed.has(serial), true, `superseded ${serial} listed`);
    });

    it('a stored row above the highest that is not our CRL is skipped, the next one below served (review h20, finding 2)', async () => {
      const serial = await enroll('crl-replica-garbage');
      await h.cp.devices.revoke({ actor: 'root', deviceId: 'crl-replica-garbage', reason: 'keyCompromise' });
      const [top] = await h.db.query<{ n: number | string }>('SELECT MAX(crl_number) AS n FROM crls');
      await h.db.execute('INSERT INTO crls (crl_number, pem, this_update_ms, next_update_ms) VALUES (?, ?, ?, ?)',
        [Number(top!.n) + 1, 'garbage', h.clock.nowMs(), h.clock.nowMs() + 86_400_000]);
      try {
        h.clock.advance(crlReadCacheMs);
        // fetchCrl asserts a 200 whose body is a CRL our intermediate signed.
        assert.equal((await fetchCrl()).has(serial), true);
      } finally {
        await h.db.execute('DELETE FROM crls WHERE crl_number = ?', [Number(top!.n) + 1]);
      }
    });

    it('a stored CRL numbered above the CRL-number counter (a counters table restored from an older backup) is passed: the next revocation\'s CRL is numbered above it and served', async () => {
      const serial = await enroll('crl-replica-counter-behind');
      const [top] = await h.db.query<{ n: number | string }>('SELECT MAX(crl_number) AS n FROM crls');
      const ahead = BigInt(top!.n) + 10n;
      const planted = await createCrl({ issuer: h.materials.pki.intermediate, entries: await h.cp.devices.revocations.list(), crlNumber: ahead, now: new Date(h.clock.nowMs()) });
      await h.db.execute('INSERT INTO crls (crl_number, pem, this_update_ms, next_update_ms) VALUES (?, ?, ?, ?)',
        [Number(ahead), planted.pem, planted.thisUpdate.getTime(), planted.nextUpdate.getTime()]);
      const revoked = await h.cp.devices.revoke({ actor: 'root', deviceId: 'crl-replica-counter-behind', reason: 'keyCompromise' });
      assert.ok(BigInt(revoked.crl_number) > ahead, `CRL ${revoked.crl_number} is numbered above the stored ${ahead}`);
      h.clock.advance(crlReadCacheMs);
      assert.equal((await fetchCrl()).has(serial), true, 'the CRL served lists the revocation');
      const [counter] = await h.db.query<{ value: number | string }>("SELECT value FROM counters WHERE name = 'crl_number'");
      assert.equal(BigInt(counter!.value), BigInt(revoked.crl_number), 'the counter follows');
    });
  });
}

for (const pair of pairs) suite(pair);
