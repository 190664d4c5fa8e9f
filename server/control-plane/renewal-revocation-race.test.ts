import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { kvKeys } from '../bus-contract/streams.js';
import { createEnrollmentCheck } from '../gateway/enrollment-check.js';
import { createRevocationCheck } from '../gateway/revocation-check.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import { createEmbeddedKeyValueStore } from '../stores/kv/redis-key-value-store.js';
import type { SqlDatabase } from '../stores/sql/sql-port.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import { parseCertificate } from '../../trust/x509-provider.js';
import { closeHarnessAndPair, makeDeviceKey, makeHarness, refusalCodeOf, storePairs, type Harness, type SqlTarget } from './test-support.js';

/**
 * A renewal racing a revocation (review h1, finding 1): whichever commits first, the revoked device
 * ends with no certificate a gateway admits and no enrolled-device key. The races are forced with
 * hooks: `beforeNextTransaction` runs a call before the next SQL transaction starts (after the
 * caller's checks, before its writes), `beforeCertificateKey` before the next certificate key is
 * written to the key/value store (after a renewal's commit, before its publication).
 */
const hooks: { beforeNextTransaction?: () => Promise<unknown>; beforeCertificateKey?: () => Promise<unknown> } = {};

function armedSql(base: SqlTarget): SqlTarget {
  return {
    ...base,
    open: async (dir) => {
      const db = await base.open(dir);
      return new Proxy(db, {
        get(target, property, receiver) {
          const value = Reflect.get(target, property, receiver) as unknown;
          if (property !== 'transaction') return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
          return async (...args: Parameters<SqlDatabase['transaction']>) => {
            const hook = hooks.beforeNextTransaction;
            hooks.beforeNextTransaction = undefined;
            if (hook !== undefined) await hook();
            return target.transaction(...args);
          };
        },
      });
    },
  };
}

function armedKv(store: KeyValueStore): KeyValueStore {
  const certificateKeyPrefix = kvKeys.deviceCertificate('');
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (property !== 'set') return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      return async (...args: Parameters<KeyValueStore['set']>) => {
        const hook = hooks.beforeCertificateKey;
        if (hook !== undefined && args[0].startsWith(certificateKeyPrefix)) {
          hooks.beforeCertificateKey = undefined;
          await hook();
        }
        return target.set(...args);
      };
    },
  });
}

const serialOf = (certPem: string): string => normalizeSerialHex(parseCertificate(certPem).serialNumber);
const presentedOf = (certPem: string) => ({ certDer: new Uint8Array(parseCertificate(certPem).rawData) });

const { pairs } = storePairs();
for (const pair of pairs) {
  describe(`renewal racing revocation on ${pair.name}`, () => {
    let h: Harness | undefined;
    const harness = async (): Promise<Harness> => {
      h ??= await makeHarness(armedSql(pair.sql), {
        // The pair's removeKeys kept, so that close() removes the harness's keys on Redis (5 sdc:revoked keys were left each run).
        kv: Object.assign(
          (keyPrefix: string) => armedKv(pair.kv?.(keyPrefix) ?? createEmbeddedKeyValueStore({ keyPrefix: `${keyPrefix}h8-${randomBytes(3).toString('hex')}:` })),
          pair.kv?.removeKeys === undefined ? {} : { removeKeys: pair.kv.removeKeys },
        ),
      });
      return h;
    };
    after(() => closeHarnessAndPair(h, pair));

    async function enrolled(deviceId: string): Promise<{ h: Harness; csrPem: string; certPem: string }> {
      const h = await harness();
      const key = await makeDeviceKey(deviceId);
      const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId });
      const answer = await h.cp.devices.enroll({ deviceId, token, csrPem: key.csrPem });
      return { h, csrPem: key.csrPem, certPem: answer.certificate_pem };
    }

    /** Every certificate on record for the device: none admitted by a gateway, each revoked; no enrolled-device key. */
    async function assertNothingAdmitted(h: Harness, deviceId: string): Promise<string[]> {
      const kv = h.cp.context.kv;
      const serials = (await h.db.query<{ serial: string }>('SELECT serial FROM device_certificates WHERE device_id = ? ORDER BY issued_at', [deviceId])).map((row) => row.serial);
      const admits = createEnrollmentCheck({ kv });
      const revokedInKv = createRevocationCheck({ kv });
      for (const serial of serials) {
        const refusal = await admits(deviceId, serial);
        assert.notEqual(refusal, undefined, `certificate ${serial} of the revoked device is admitted by the gateway's enrollment check`);
        assert.equal(await revokedInKv(serial), true, `certificate ${serial} has no revoked key`);
        assert.equal(await h.cp.devices.revocations.isRevoked(serial), true, `certificate ${serial} is not revoked in SQL`);
      }
      assert.equal(await kv.get(kvKeys.device(deviceId)), null, 'the enrolled-device key is back');
      assert.equal((await h.cp.devices.get(deviceId)).status, 'revoked');
      return serials;
    }

    it('a revocation committing after the renewal\'s checks: the renewal is refused API_DEVICE_REVOKED, its certificate never recorded nor admitted', async () => {
      const { h, csrPem, certPem } = await enrolled('dev-race-a');
      hooks.beforeNextTransaction = () => h.cp.devices.revoke({ actor: 'root', deviceId: 'dev-race-a', reason: 'keyCompromise' });
      const code = await refusalCodeOf(h.cp.devices.renew({ deviceId: 'dev-race-a', csrPem, presented: presentedOf(certPem) }));
      assert.equal(hooks.beforeNextTransaction, undefined, 'the revocation ran');
      assert.equal(code, 'API_DEVICE_REVOKED');
      assert.deepEqual(await assertNothingAdmitted(h, 'dev-race-a'), [serialOf(certPem)], 'only the enrolled certificate is on record');
    });

    it('a renewal committing after the revocation\'s read: the revocation covers the renewed certificate too', async () => {
      const { h, csrPem, certPem } = await enrolled('dev-race-b');
      let renewed: string | undefined;
      hooks.beforeNextTransaction = async () => {
        renewed = (await h.cp.devices.renew({ deviceId: 'dev-race-b', csrPem, presented: presentedOf(certPem) })).certificate_pem;
      };
      const { serial } = await h.cp.devices.revoke({ actor: 'root', deviceId: 'dev-race-b', reason: 'keyCompromise' });
      assert.ok(renewed !== undefined, 'the renewal ran');
      assert.equal(serial, serialOf(renewed), 'the revocation names the certificate current at its commit');
      assert.deepEqual((await assertNothingAdmitted(h, 'dev-race-b')).sort(), [serialOf(certPem), serialOf(renewed)].sort());
    });

    it('a revocation between the renewal\'s commit and its publication: the keys are withdrawn, the renewal refused', async () => {
      const { h, csrPem, certPem } = await enrolled('dev-race-c');
      hooks.beforeCertificateKey = () => h.cp.devices.revoke({ actor: 'root', deviceId: 'dev-race-c', reason: 'keyCompromise' });
      const code = await refusalCodeOf(h.cp.devices.renew({ deviceId: 'dev-race-c', csrPem, presented: presentedOf(certPem) }));
      assert.equal(hooks.beforeCertificateKey, undefined, 'the revocation ran');
      assert.equal(code, 'API_DEVICE_REVOKED');
      assert.equal((await assertNothingAdmitted(h, 'dev-race-c')).length, 2);
    });
  });
}
