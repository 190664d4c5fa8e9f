import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { authRateLimits } from './http/rate-limit.js';
import { pairingWrongDeviceTriesMax } from '../../trust/pairing-tokens.js';
import { closeHarnessAndPair, makeDeviceKey, makeHarness, storePairs, type Harness } from './test-support.js';

/**
 * Enrollment limits count what only the caller could have done (review h1 of 32269b0, finding 2;
 * docs/decisions/0020, "Enrollments"). They used to count every refused enrollment per device
 * and per address before the token was looked up: ten made-up tokens naming a device, from any
 * addresses, refused its genuine token for the rest of the minute, and one host behind a site's
 * NAT spending its address's refusals stalled the site. Now a token that holds for the device
 * (exists, names it, unused, unexpired) skips the address count and counts only its own refusals
 * per device; any other token counts for its address before it runs.
 */
const { pairs } = storePairs();
for (const pair of pairs) {
  describe(`enrollment limits on ${pair.name}`, () => {
    let h: Harness | undefined;
    const harness = async (): Promise<Harness> => {
      h ??= await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
      return h;
    };
    after(() => closeHarnessAndPair(h, pair));

    /** Moves the injected clock into the next rate-limit window, so each test starts with no counts. */
    const freshWindow = async (): Promise<Harness> => {
      const h = await harness();
      h.clock.advance(authRateLimits.windowMs);
      return h;
    };
    const madeUpToken = (i: number) => `sdcpt_${String(i).padStart(43, 'A')}`;
    const enroll = async (h: Harness, options: { deviceId: string; token: string; csrPem: string; from: string }) => {
      const response = await h.cp.app.inject({
        method: 'POST', url: '/v1/enroll', remoteAddress: options.from,
        payload: { device_id: options.deviceId, token: options.token, csr_pem: options.csrPem },
      });
      const body = response.json() as { error?: { code: string } };
      return { status: response.statusCode, code: body.error?.code ?? 'OK', retryAfter: response.headers['retry-after'] };
    };
    /** A device with a fresh pairing token and a CSR naming it. */
    const paired = async (h: Harness, deviceId: string) => {
      const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId });
      return { deviceId, token, csrPem: (await makeDeviceKey(deviceId)).csrPem };
    };

    it('made-up tokens naming a device, from many addresses, do not refuse its genuine token', async () => {
      const h = await freshWindow();
      const device = await paired(h, 'lab-0007');
      // Three times the former per-device limit, each from its own address (none reaches its own limit).
      for (let i = 0; i < 3 * authRateLimits.enrollmentFailuresPerDeviceMax; i += 1) {
        assert.equal((await enroll(h, { ...device, token: madeUpToken(i), from: `198.51.100.${i + 1}` })).code, 'TRUST_PAIRING_TOKEN_INVALID');
      }
      const genuine = await enroll(h, { ...device, from: '203.0.113.7' });
      assert.equal(genuine.status, 201, genuine.code);
    });

    it('behind one NAT: another host\'s refusals use up the address, but a genuine token from it is enrolled', async () => {
      const h = await freshWindow();
      const nat = '192.0.2.200';
      const device = await paired(h, 'site-0001');
      const other = await paired(h, 'site-0002');
      for (let i = 0; i < authRateLimits.enrollmentFailuresPerSourceMax; i += 1) {
        assert.equal((await enroll(h, { ...other, token: madeUpToken(i), from: nat })).code, 'TRUST_PAIRING_TOKEN_INVALID');
      }
      // The misbehaving host itself is cut off...
      const cutOff = await enroll(h, { ...other, token: madeUpToken(99), from: nat });
      assert.equal(cutOff.status, 429);
      assert.equal(cutOff.code, 'API_RATE_LIMITED');
      // ...and the devices holding genuine tokens behind the same address are not.
      const genuine = await enroll(h, { ...device, from: nat });
      assert.equal(genuine.status, 201, genuine.code);
      assert.equal((await enroll(h, { ...other, from: nat })).status, 201);
    });

    it('many bad tokens from one address: only enrollmentFailuresPerSourceMax run, then 429 with Retry-After', async () => {
      const h = await freshWindow();
      const codes: string[] = [];
      for (let i = 0; i < 40; i += 1) {
        const deviceId = `dev-g${i}`;
        codes.push((await enroll(h, { deviceId, token: madeUpToken(i), csrPem: (await makeDeviceKey(deviceId)).csrPem, from: '192.0.2.99' })).code);
      }
      const max = authRateLimits.enrollmentFailuresPerSourceMax;
      assert.deepEqual(codes.slice(0, max), Array(max).fill('TRUST_PAIRING_TOKEN_INVALID'));
      assert.deepEqual(codes.slice(max), Array(40 - max).fill('API_RATE_LIMITED'));
      const limited = await enroll(h, { deviceId: 'dev-g0', token: madeUpToken(0), csrPem: (await makeDeviceKey('dev-g0')).csrPem, from: '192.0.2.99' });
      assert.ok(Number(limited.retryAfter) >= 1 && Number(limited.retryAfter) <= authRateLimits.windowMs / 1000, String(limited.retryAfter));
      // Another address is not affected.
      assert.equal((await enroll(h, { deviceId: 'dev-g0', token: madeUpToken(0), csrPem: (await makeDeviceKey('dev-g0')).csrPem, from: '192.0.2.98' })).code, 'TRUST_PAIRING_TOKEN_INVALID');
    });

    it('a concurrent burst of bad tokens from one address: only enrollmentFailuresPerSourceMax run', async () => {
      const h = await freshWindow();
      const { csrPem } = await makeDeviceKey('dev-burst');
      const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => enroll(h, { deviceId: 'dev-burst', token: madeUpToken(i), csrPem, from: '192.0.2.77' })));
      const codes = answers.map((a) => a.code);
      assert.equal(codes.filter((c) => c === 'TRUST_PAIRING_TOKEN_INVALID').length, authRateLimits.enrollmentFailuresPerSourceMax);
      assert.equal(codes.filter((c) => c === 'API_RATE_LIMITED').length, 60 - authRateLimits.enrollmentFailuresPerSourceMax);
    });

    it('tokens that do not hold for the device (another device\'s, used) count for the address, not the device', async () => {
      const h = await freshWindow();
      const from = '192.0.2.150';
      const victim = await paired(h, 'dev-victim');
      const used = await paired(h, 'dev-used');
      assert.equal((await enroll(h, { ...used, from: '192.0.2.151' })).status, 201);
      const codes: string[] = [];
      const others: Array<Awaited<ReturnType<typeof paired>>> = [];
      for (let i = 0; i < authRateLimits.enrollmentFailuresPerSourceMax; i += 1) {
        // Alternately another device's (unused) token and an already used one, both naming the victim.
        const other = await paired(h, `dev-other-${i}`);
        others.push(other);
        codes.push((await enroll(h, { ...victim, token: i % 2 === 0 ? other.token : used.token, from })).code);
      }
      assert.deepEqual([...new Set(codes)].sort(), ['TRUST_PAIRING_DEVICE_MISMATCH', 'TRUST_PAIRING_TOKEN_USED']);
      assert.equal((await enroll(h, { ...victim, token: used.token, from })).code, 'API_RATE_LIMITED');
      assert.equal((await enroll(h, { ...victim, from })).status, 201);
      // Review h9, finding 4: a token refused for naming the wrong device is not spent; its own device enrolls with it (from the same address: it holds).
      const mistyped = await enroll(h, { ...others[0]!, from });
      assert.equal(mistyped.status, 201, mistyped.code);
    });

    it('a token tried for other device ids is spent at the third such try, from whatever addresses; two are forgiven', async () => {
      const h = await freshWindow();
      const stolen = await paired(h, 'dev-stolen');
      const typo = await paired(h, 'dev-typo');
      const tryFor = async (device: { token: string }, deviceId: string, from: string) => {
        const response = await h.cp.app.inject({
          method: 'POST', url: '/v1/enroll', remoteAddress: from,
          payload: { device_id: deviceId, token: device.token, csr_pem: (await makeDeviceKey(deviceId)).csrPem },
        });
        return response.json() as { error: { code: string; message: string } };
      };
      // Guesses at the stolen token's device id, each from its own address (none near its limit).
      const guesses = [];
      for (let i = 0; i < pairingWrongDeviceTriesMax; i += 1) guesses.push(await tryFor(stolen, `dev-guess-${i}`, `198.51.100.${200 + i}`));
      assert.deepEqual(guesses.map((g) => g.error.code), Array(pairingWrongDeviceTriesMax).fill('TRUST_PAIRING_DEVICE_MISMATCH'));
      assert.match(guesses.at(-1)!.error.message, /now spent/, 'the refusal (and its log line) says the token was spent');
      const own = await enroll(h, { ...stolen, from: '203.0.113.50' });
      assert.equal(own.code, 'TRUST_PAIRING_TOKEN_USED', 'spent: even its own device is refused');
      assert.equal((await tryFor(stolen, 'dev-guess-9', '198.51.100.250')).error.code, 'TRUST_PAIRING_TOKEN_USED');
      // An installer's two typos: the token still enrolls its device.
      for (const deviceId of ['dev-tpyo', 'dev-typ0']) assert.equal((await tryFor(typo, deviceId, '203.0.113.51')).error.code, 'TRUST_PAIRING_DEVICE_MISMATCH');
      const enrolled = await enroll(h, { ...typo, from: '203.0.113.51' });
      assert.equal(enrolled.status, 201, enrolled.code);
    });

    it('a genuine token\'s own refusals count for its device only, up to enrollmentFailuresPerDeviceMax', async () => {
      const h = await freshWindow();
      const from = '192.0.2.160';
      const device = await paired(h, 'dev-badcsr');
      const foreignCsr = (await makeDeviceKey('dev-someone-else')).csrPem;
      for (let i = 0; i < authRateLimits.enrollmentFailuresPerDeviceMax; i += 1) {
        assert.equal((await enroll(h, { ...device, csrPem: foreignCsr, from })).code, 'TRUST_CSR_SUBJECT_MISMATCH');
      }
      // The token was not spent (the CSR is checked first), but its holder is now refused for the window...
      const limited = await enroll(h, { ...device, from });
      assert.equal(limited.status, 429);
      assert.equal(limited.code, 'API_RATE_LIMITED');
      // ...while the address is not: another device's genuine token from it enrolls.
      const neighbour = await paired(h, 'dev-neighbour');
      assert.equal((await enroll(h, { ...neighbour, from })).status, 201);
      h.clock.advance(authRateLimits.windowMs);
      assert.equal((await enroll(h, { ...device, from })).status, 201);
    });
  });
}
