import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { kvKeys } from '../bus-contract/streams.js';
import { parseCertificate } from '../../trust/x509-provider.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import RedisMock from 'ioredis-mock';
import { makeDeviceKey, makeHarness, mysqlTarget, sqlJsTarget, type Harness, type SqlTarget } from './test-support.js';

const serialOf = (certPem: string): string => normalizeSerialHex(parseCertificate(certPem).serialNumber);

function suite(target: SqlTarget): void {
  describe(`enrolled-device keys on ${target.name}`, () => {
    let h: Harness;
    const key = (deviceId: string) => h.cp.context.kv.get(kvKeys.device(deviceId));

    async function enroll(deviceId: string): Promise<string> {
      const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId });
      const answer = await h.cp.devices.enroll({ deviceId, token, csrPem: (await makeDeviceKey(deviceId)).csrPem });
      return normalizeSerialHex(parseCertificate(answer.certificate_pem).serialNumber);
    }

    before(async () => {
      h = await makeHarness(target);
    });
    after(async () => {
      // systemScheduler's timers are unref'd: without a ref'd one, stopping the started consumers
      // (blocked in a read) would leave the event loop empty and the test runner would cancel the hook.
      const keepAlive = setInterval(() => undefined, 1_000);
      try {
        await h.close();
        await target.cleanup();
      } finally {
        clearInterval(keepAlive);
      }
    });

    it('sets the key at enrollment (value: the current serial), not at pairing', async () => {
      await h.cp.devices.createPairingToken({ actor: 'root', deviceId: 'dev-paired-only' });
      assert.equal(await key('dev-paired-only'), null);
      const serial = await enroll('dev-a');
      assert.equal(await key('dev-a'), serial);
      assert.equal((await h.cp.devices.get('dev-a')).cert_serial, serial);
    });

    it('deletes the key on revocation; a new pairing sets it again', async () => {
      await enroll('dev-b');
      await h.cp.devices.revoke({ actor: 'root', deviceId: 'dev-b', reason: 'keyCompromise' });
      assert.equal(await key('dev-b'), null);
      const serial = await enroll('dev-b');
      assert.equal(await key('dev-b'), serial);
    });

    it('re-publishes every enrolled device when it starts (a wiped store heals), and no revoked or pending one', async () => {
      const serialC = await enroll('dev-c');
      await enroll('dev-d');
      await h.cp.devices.revoke({ actor: 'root', deviceId: 'dev-d' });
      for (const id of ['dev-a', 'dev-b', 'dev-c']) await h.cp.context.kv.del(kvKeys.device(id));
      await h.cp.start();
      assert.equal(await key('dev-c'), serialC);
      assert.equal(await key('dev-a'), (await h.cp.devices.get('dev-a')).cert_serial);
      assert.equal(await key('dev-b'), (await h.cp.devices.get('dev-b')).cert_serial);
      assert.equal(await key('dev-d'), null);
      assert.equal(await key('dev-paired-only'), null);
    });

    it('re-publishes across more devices than one batch reads', async () => {
      const rows = Array.from({ length: 1_203 }, (_, i) => `dev-bulk-${String(i).padStart(5, '0')}`);
      await h.db.transaction(async (tx) => {
        for (const id of rows) {
          await tx.execute("INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES (?, 'enrolled', ?, ?, ?, ?)", [id, 1, 'ab', 2, 'k']);
        }
      });
      const { published } = await h.cp.devices.publishEnrolledDevices();
      assert.equal(published, rows.length + 3);
      assert.equal(await key(rows[0]!), 'ab');
      assert.equal(await key(rows.at(-1)!), 'ab');
    });

    it('publishes each certificate it issues (TTL until notAfter) and, when one is revoked or superseded, its revoked key instead', async () => {
      const deviceKey = await makeDeviceKey('dev-certs');
      const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId: 'dev-certs' });
      const first = await h.cp.devices.enroll({ deviceId: 'dev-certs', token, csrPem: deviceKey.csrPem });
      const renewOnce = (certPem: string) => h.cp.devices.renew({ deviceId: 'dev-certs', csrPem: deviceKey.csrPem, presented: { certDer: new Uint8Array(parseCertificate(certPem).rawData) } });
      const second = await renewOnce(first.certificate_pem);
      const third = await renewOnce(second.certificate_pem);
      const [s1, s2, s3] = [serialOf(first.certificate_pem), serialOf(second.certificate_pem), serialOf(third.certificate_pem)];
      const certKey = (serial: string) => h.cp.context.kv.get(kvKeys.deviceCertificate(serial));
      const revokedKey = (serial: string) => h.cp.context.kv.get(kvKeys.revoked(serial));
      assert.deepEqual([await certKey(s1), await certKey(s2), await certKey(s3)], [null, 'dev-certs', 'dev-certs'], 'the first was superseded by the second renewal');
      assert.deepEqual([await revokedKey(s1) !== null, await revokedKey(s2), await revokedKey(s3)], [true, null, null]);
      const ttlMs = await h.cp.context.kv.ttlMs(kvKeys.deviceCertificate(s3));
      const notAfterMs = parseCertificate(third.certificate_pem).notAfter.getTime();
      assert.ok(ttlMs !== null && ttlMs <= notAfterMs - h.clock.nowMs() && ttlMs > notAfterMs - h.clock.nowMs() - 60_000, `ttl ${ttlMs}`);
      await h.cp.devices.revoke({ actor: 'root', deviceId: 'dev-certs', reason: 'keyCompromise' });
      assert.deepEqual([await certKey(s2), await certKey(s3)], [null, null]);
      assert.deepEqual([await revokedKey(s2) !== null, await revokedKey(s3) !== null], [true, true]);
    });

    it('re-publishes from SQL what a wiped store lost (revoked serials, current certificates, devices) once its marker key is gone', async () => {
      const kept = await enroll('dev-wiped');
      await enroll('dev-e');
      const { serial: revokedSerial } = await h.cp.devices.revoke({ actor: 'root', deviceId: 'dev-e' });
      // A revocation of a certificate long expired: TLS refuses that certificate anyway, so it is not re-published.
      await h.db.execute('INSERT INTO device_certificates (serial, device_id, not_after, issued_at) VALUES (?, ?, ?, ?)', ['dead01', 'dev-old', 5, 1]);
      await h.db.execute('INSERT INTO revocations (serial, device_id, reason, revoked_at) VALUES (?, ?, ?, ?)', ['dead01', 'dev-old', 'superseded', 2]);
      assert.equal(await h.cp.devices.trust.publishIfWiped(), undefined, 'nothing lost: the marker of the last publish is there');
      await new RedisMock().flushall(); // this file's only key/value store: the whole keyspace is this control plane's
      const counts = await h.cp.devices.trust.publishIfWiped();
      assert.ok(counts !== undefined && counts.revoked >= 1 && counts.certificates >= 1 && counts.devices >= 1, JSON.stringify(counts));
      assert.equal(await h.cp.context.kv.get(kvKeys.deviceCertificate(kept)), 'dev-wiped');
      assert.equal(await key('dev-wiped'), kept);
      assert.notEqual(await h.cp.context.kv.get(kvKeys.revoked(revokedSerial)), null);
      assert.equal(await h.cp.context.kv.get(kvKeys.deviceCertificate(revokedSerial)), null);
      assert.equal(await h.cp.context.kv.get(kvKeys.revoked('dead01')), null);
      assert.notEqual(await h.cp.context.kv.get(kvKeys.trustPublished), null);
      assert.equal(await h.cp.devices.trust.publishIfWiped(), undefined);
    });
  });
}

suite(sqlJsTarget);
const mysqlUrl = process.env['MYSQL_URL'];
if (mysqlUrl !== undefined && mysqlUrl !== '') suite(mysqlTarget(mysqlUrl));
else describe('enrolled-device keys on mysql', { skip: 'MYSQL_URL is not set; the same suite runs on sql.js above' }, () => {});
