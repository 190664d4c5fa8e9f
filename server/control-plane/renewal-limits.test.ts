import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { pemFromPrivateSeed } from '../../runtime/ed25519-node.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import { parseCertificate } from '../../trust/x509-provider.js';
import { SdcError } from '../../core/errors/index.js';
import { authRateLimits } from './http/rate-limit.js';
import { renewalLimits } from './devices.js';
import { closeHarnessAndPair, makeDeviceKey, makeHarness, refusalCodeOf, storePairs, type Harness } from './test-support.js';

/**
 * Renewals are bounded (review h1, finding 2): every renewal revokes the device's previous
 * certificate, so 400 renewals from one device made 399 revocations, and at the store's capacity
 * every revocation failed. Per device at most renewalLimits.certificatesPerWindowMax certificates a
 * day; per route, attempts per device once its certificate verified, and refused attempts per
 * address. The route takes connections without a client certificate, so a count spent before the
 * certificate is verified is one anyone can spend (h12's review, 2026-12-06): 601 anonymous
 * requests from one address refused every device's renewal, 6 naming a device refused that one.
 */
const serialOf = (certPem: string): string => normalizeSerialHex(parseCertificate(certPem).serialNumber);
const presentedOf = (certPem: string) => ({ certDer: new Uint8Array(parseCertificate(certPem).rawData) });

/** POST over HTTPS (from 127.0.0.1) trusting the deployment root, with the device's certificate as the TLS client certificate. */
function postWithCertificate(url: string, body: unknown, options: { caPem: string; certPem: string; keyPem: string }): Promise<{ status: number; json: any; retryAfter: string | undefined }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST', ca: options.caPem, minVersion: 'TLSv1.3', cert: options.certPem, key: options.keyPem, agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')), retryAfter: res.headers['retry-after'] as string | undefined }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const { pairs } = storePairs();
for (const pair of pairs) {
  describe(`renewal limits on ${pair.name}`, () => {
    let h: Harness | undefined;
    let serverUrl = '';
    const harness = async (): Promise<Harness> => {
      if (h === undefined) {
        h = await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
        serverUrl = (await h.cp.listen({ host: '127.0.0.1', port: 0, tls: true })).url;
      }
      return h;
    };
    after(() => closeHarnessAndPair(h, pair));

    async function enrolled(deviceId: string): Promise<{ h: Harness; csrPem: string; certPem: string; keyPem: string }> {
      const h = await harness();
      const key = await makeDeviceKey(deviceId);
      const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId });
      const answer = await h.cp.devices.enroll({ deviceId, token, csrPem: key.csrPem });
      return { h, csrPem: key.csrPem, certPem: answer.certificate_pem, keyPem: pemFromPrivateSeed(key.seed) };
    }

    /** The device renews over HTTPS with its certificate (from 127.0.0.1). */
    const renewOverTls = (deviceId: string, device: { h: Harness; csrPem: string; certPem: string; keyPem: string }) =>
      postWithCertificate(new URL(`/v1/devices/${deviceId}/renew`, serverUrl).href, { csr_pem: device.csrPem },
        { caPem: device.h.materials.rootCaPem, certPem: device.certPem, keyPem: device.keyPem });

    /** A renewal request with no client certificate (inject: no TLS), from `from`. */
    const anonymous = async (h: Harness, deviceId: string, from: string, csrPem: string) => {
      const response = await h.cp.app.inject({ method: 'POST', url: `/v1/devices/${deviceId}/renew`, payload: { csr_pem: csrPem }, remoteAddress: from });
      return { status: response.statusCode, code: (response.json() as { error: { code: string } }).error.code, retryAfter: response.headers['retry-after'] as string | undefined };
    };

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

    it('601 anonymous renewal requests from one address refuse nothing to a device renewing from another address', async () => {
      const device = await enrolled('dev-honest');
      const statuses = new Map<string, number>();
      for (let i = 0; i < 601; i += 1) {
        const { status, code } = await anonymous(device.h, `x${i}`, '203.0.113.9', device.csrPem);
        statuses.set(`${status} ${code}`, (statuses.get(`${status} ${code}`) ?? 0) + 1);
      }
      // The address's own refusals stop it: its first ones are refused for the missing certificate,
      // the rest by its address limit, and none of them counted for any device or the service.
      const refusedByAddress = statuses.get('429 API_RATE_LIMITED') ?? 0;
      assert.ok(refusedByAddress > 0 && (statuses.get('401 API_CLIENT_CERT_REQUIRED') ?? 0) + refusedByAddress === 601, JSON.stringify([...statuses]));
      const renewal = await renewOverTls('dev-honest', device);
      assert.equal(renewal.status, 201, JSON.stringify(renewal.json));
      assert.notEqual(serialOf(renewal.json.certificate_pem), serialOf(device.certPem));
    });

    it('anonymous requests naming a device do not spend its count; the device itself is still limited when it renews too often', async () => {
      const device = await enrolled('dev-victim');
      const anonymousCodes: string[] = [];
      for (let i = 0; i < 2 * authRateLimits.renewalAttemptsPerDeviceMax; i += 1) {
        // From two addresses, each under its own limit: every one is refused for its missing certificate.
        anonymousCodes.push((await anonymous(device.h, 'dev-victim', `198.51.100.${i % 2}`, device.csrPem)).code);
      }
      assert.deepEqual(anonymousCodes, Array<string>(anonymousCodes.length).fill('API_CLIENT_CERT_REQUIRED'));
      // Every renewal of the device's own up to the per-device limit is accepted (the retry of a
      // lost answer each time: the same certificate), the next is refused.
      const answers: Array<[number, string | undefined]> = [];
      let retryAfter: string | undefined;
      for (let i = 0; i < authRateLimits.renewalAttemptsPerDeviceMax + 1; i += 1) {
        const renewal = await renewOverTls('dev-victim', device);
        answers.push([renewal.status, renewal.json.error?.code]);
        retryAfter = renewal.retryAfter;
      }
      assert.deepEqual(answers, [...Array(authRateLimits.renewalAttemptsPerDeviceMax).fill([201, undefined]), [429, 'API_RATE_LIMITED']]);
      assert.ok(retryAfter !== undefined && Number(retryAfter) > 0, `retry-after ${retryAfter}`);
    });

    it('refused renewal attempts count against their address only, checked first', async () => {
      const h = await harness();
      const csrPem = (await makeDeviceKey('dev-route')).csrPem;
      const refusals = authRateLimits.renewalRefusalsPerSourceMax;
      const answers = [];
      for (let i = 0; i < refusals + 2; i += 1) answers.push(await anonymous(h, `dev-route-${i}`, '192.0.2.77', csrPem));
      assert.ok(answers.slice(0, refusals).every(({ status, code }) => status === 401 && code === 'API_CLIENT_CERT_REQUIRED'), JSON.stringify(answers.slice(0, refusals)));
      for (const { status, code, retryAfter } of answers.slice(refusals)) {
        assert.deepEqual([status, code], [429, 'API_RATE_LIMITED']);
        assert.ok(retryAfter !== undefined && Number(retryAfter) > 0, `retry-after ${retryAfter}`);
      }
      assert.equal((await anonymous(h, 'dev-route-0', '192.0.2.78', csrPem)).code, 'API_CLIENT_CERT_REQUIRED', 'another address is not limited by this one');
    });
  });
}
