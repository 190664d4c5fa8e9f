import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import { parseCertificate } from '../../trust/x509-provider.js';
import { SdcError } from '../../core/errors/index.js';
import { authRateLimits } from './http/rate-limit.js';
import { renewalLimits } from './devices.js';
import { makeDeviceKey, makeHarness, refusalCodeOf, storePairs, type Harness } from './test-support.js';

/**
 * Renewals are bounded (review h1, finding 2): every renewal revokes the device's previous
 * certificate, so 400 renewals from one device made 399 revocations, and at the store's capacity
 * every revocation failed. Per device at most renewalLimits.certificatesPerWindowMax certificates a
 * day; per route, attempts per device, address and service, before any certificate is verified.
 */
const serialOf = (certPem: string): string => normalizeSerialHex(parseCertificate(certPem).serialNumber);
const presentedOf = (certPem: string) => ({ certDer: new Uint8Array(parseCertificate(certPem).rawData) });

const { pairs } = storePairs();
for (const pair of pairs) {
  describe(`renewal limits on ${pair.name}`, () => {
    let h: Harness | undefined;
    const harness = async (): Promise<Harness> => {
      h ??= await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
      return h;
    };
    after(async () => {
      const keepAlive = setInterval(() => undefined, 1_000);
      try {
        await h?.close();
        await pair.sql.cleanup();
      } finally {
        clearInterval(keepAlive);
      }
    });

    async function enrolled(deviceId: string): Promise<{ h: Harness; csrPem: string; certPem: string }> {
      const h = await harness();
      const key = await makeDeviceKey(deviceId);
      const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId });
      const answer = await h.cp.devices.enroll({ deviceId, token, csrPem: key.csrPem });
      return { h, csrPem: key.csrPem, certPem: answer.certificate_pem };
    }

    const revocationsOf = async (h: Harness, deviceId: string): Promise<number> =>
      Number((await h.db.query<{ n: number }>('SELECT COUNT(*) AS n FROM revocations WHERE device_id = ?', [deviceId]))[0]!.n);

    it('accepts the retry of a lost answer, but renewals from one certificate in a loop stop at the window\'s maximum, and so do its revocations', async () => {
      const { h, csrPem, certPem } = await enrolled('dev-loop');
      const codes: string[] = [];
      let lastAccepted = '';
      let refusal: unknown;
      for (let i = 0; i < 3 * renewalLimits.certificatesPerWindowMax; i += 1) {
        try {
          lastAccepted = serialOf((await h.cp.devices.renew({ deviceId: 'dev-loop', csrPem, presented: presentedOf(certPem) })).certificate_pem);
          codes.push('accepted');
        } catch (error) {
          refusal = error;
          codes.push(SdcError.is(error) ? error.code : String(error));
        }
      }
      assert.ok(SdcError.is(refusal, 'API_RENEWAL_TOO_SOON'));
      const retryAfterS = refusal.details['retryAfterS'];
      assert.ok(typeof retryAfterS === 'number' && retryAfterS > 0 && retryAfterS <= renewalLimits.windowMs / 1000, String(retryAfterS));
      assert.equal((await h.cp.devices.get('dev-loop')).cert_serial, lastAccepted, 'a refused renewal changes nothing');
      const accepted = renewalLimits.certificatesPerWindowMax - 1; // the enrollment's certificate counts
      assert.deepEqual(codes, [...Array<string>(accepted).fill('accepted'), ...Array<string>(codes.length - accepted).fill('API_RENEWAL_TOO_SOON')]);
      assert.equal(await revocationsOf(h, 'dev-loop'), accepted - 1, 'each retry superseded the certificate the one before it issued');
      h.clock.advance(renewalLimits.windowMs);
      assert.equal(await refusalCodeOf(h.cp.devices.renew({ deviceId: 'dev-loop', csrPem, presented: presentedOf(certPem) })), 'accepted', 'a day later');
    });

    it('rate-limits the renewal route per device before verifying anything: API_RATE_LIMITED with Retry-After', async () => {
      const h = await harness();
      const csrPem = (await makeDeviceKey('dev-route')).csrPem;
      const statuses: Array<[number, string, string | undefined]> = [];
      for (let i = 0; i < authRateLimits.renewalAttemptsPerDeviceMax + 2; i += 1) {
        const response = await h.cp.app.inject({ method: 'POST', url: '/v1/devices/dev-route/renew', payload: { csr_pem: csrPem } });
        statuses.push([response.statusCode, (response.json() as { error: { code: string } }).error.code, response.headers['retry-after'] as string | undefined]);
      }
      const refusedFirst = statuses.slice(0, authRateLimits.renewalAttemptsPerDeviceMax);
      assert.ok(refusedFirst.every(([status, code]) => status === 401 && code === 'API_CLIENT_CERT_REQUIRED'), JSON.stringify(refusedFirst));
      for (const [status, code, retryAfter] of statuses.slice(authRateLimits.renewalAttemptsPerDeviceMax)) {
        assert.deepEqual([status, code], [429, 'API_RATE_LIMITED']);
        assert.ok(retryAfter !== undefined && Number(retryAfter) > 0, `retry-after ${retryAfter}`);
      }
      const other = await h.cp.app.inject({ method: 'POST', url: '/v1/devices/dev-route-other/renew', payload: { csr_pem: csrPem } });
      assert.notEqual(other.statusCode, 429, 'another device is not limited by this one');
    });
  });
}
