import { after, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { revokedSerialsOfCrl } from '../../trust/crl.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import { parseCertificate } from '../../trust/x509-provider.js';
import { revocationExpiredGraceMs, SqlRevocationStore } from './stores/sql-revocation-store.js';
import { closeHarnessAndPair, makeDeviceKey, makeHarness, refusalCodeOf, storePairs, type Harness } from './test-support.js';

/**
 * The revocation store's bound counts live revocations only (review h1, finding 2): at 100,000
 * rows every revocation failed TRUST_REVOCATION_CAPACITY, even when most rows were of certificates
 * long expired, and the CRL took the oldest 100,000 rows, silently leaving the newest out.
 */
const dayMs = 24 * 60 * 60 * 1000;
const { pairs } = storePairs();
for (const pair of pairs) {
  describe(`revocation store bound and CRL entries on ${pair.name}`, () => {
    let h: Harness | undefined;
    const harness = async (): Promise<Harness> => {
      h ??= await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
      return h;
    };
    after(() => closeHarnessAndPair(h, pair));
    beforeEach(async () => {
      const h = await harness();
      await h.db.execute('DELETE FROM revocations');
      await h.db.execute('DELETE FROM device_certificates');
    });

    /** A certificate on record expiring at `notAfterMs`, revoked `superseded` at `revokedAtMs`. */
    async function revokedCertificate(h: Harness, serial: string, notAfterMs: number, revokedAtMs: number): Promise<void> {
      await h.db.execute('INSERT INTO device_certificates (serial, device_id, not_after, issued_at) VALUES (?, ?, ?, ?)', [serial, 'dev-old', notAfterMs, 1]);
      await h.db.execute('INSERT INTO revocations (serial, device_id, reason, revoked_at) VALUES (?, ?, ?, ?)', [serial, 'dev-old', 'superseded', revokedAtMs]);
    }

    it('at its bound, deletes the revocations of expired certificates before refusing one; refuses only for live ones', async () => {
      const h = await harness();
      const now = h.clock.nowMs();
      const store = new SqlRevocationStore(h.db, { entriesMax: 5, clock: h.clock });
      for (let i = 0; i < 5; i += 1) await revokedCertificate(h, `dead0${i}`, now - revocationExpiredGraceMs - dayMs, now - 2 * dayMs);
      assert.equal(await store.revokeDevice('a1', 'keyCompromise', new Date(now), 'dev-x'), true, 'five expired entries do not fill the store');
      assert.deepEqual((await store.list()).map((entry) => entry.serialHex), ['a1']);
      assert.equal(await store.isRevoked('dead00'), false, 'expired ones deleted');
      for (let i = 2; i <= 5; i += 1) await store.revokeDevice(`a${i}`, 'keyCompromise', new Date(now + i), 'dev-x');
      assert.equal(await refusalCodeOf(store.revokeDevice('a6', 'keyCompromise', new Date(now + 6), 'dev-x')), 'TRUST_REVOCATION_CAPACITY', 'five live ones fill it');
    });

    it('refuses to list more live revocations than a CRL may hold (TRUST_CRL_INCOMPLETE) instead of dropping the newest', async () => {
      const h = await harness();
      const now = h.clock.nowMs();
      const store = new SqlRevocationStore(h.db, { entriesMax: 5, clock: h.clock });
      for (let i = 0; i < 7; i += 1) await revokedCertificate(h, `b${i}`, now + dayMs, now - 1_000 + i);
      assert.equal(await refusalCodeOf(store.list()), 'TRUST_CRL_INCOMPLETE');
      await h.db.execute('DELETE FROM revocations WHERE serial IN (?, ?)', ['b5', 'b6']);
      assert.deepEqual((await store.list()).map((entry) => entry.serialHex), ['b0', 'b1', 'b2', 'b3', 'b4']);
    });

    it('the CRL lists revocations of unexpired certificates (and of expired ones within the grace), not those long expired', async () => {
      const h = await harness();
      const now = h.clock.nowMs();
      await revokedCertificate(h, 'c0ffee01', now - revocationExpiredGraceMs - 1, now - 2 * dayMs);
      await revokedCertificate(h, 'c0ffee02', now - revocationExpiredGraceMs + 60_000, now - 2 * dayMs);
      const key = await makeDeviceKey('dev-crl');
      const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId: 'dev-crl' });
      const answer = await h.cp.devices.enroll({ deviceId: 'dev-crl', token, csrPem: key.csrPem });
      await h.cp.devices.revoke({ actor: 'root', deviceId: 'dev-crl', reason: 'keyCompromise' });
      const listed = await revokedSerialsOfCrl({ pem: await h.cp.devices.crlPem(), issuer: h.materials.pki.intermediate.certificate });
      assert.deepEqual([...listed].sort(), [normalizeSerialHex(parseCertificate(answer.certificate_pem).serialNumber), 'c0ffee02'].sort());
    });
  });
}
