// Bulk provisioning (issue 15): POST /v1/pairing-tokens creates a fleet's tokens in one
// transaction, spent tokens free their place under the limit, and a batch past the limit is
// refused whole with TRUST_PAIRING_CAPACITY naming the limit. On sql.js, and on MySQL + Redis
// when MYSQL_URL and REDIS_URL are set.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { makeDeviceKey, makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

const adminPassword = 'correct horse battery staple';
/** Small, so that the limit is reached in a test; the production default is 100,000. */
const pairingTokensMax = 60;

function suite(pair: StorePair): void {
  describe(`bulk pairing tokens on ${pair.name}`, () => {
    let h: Harness;
    let admin = '';

    const call = async (method: 'GET' | 'POST', url: string, options: { token?: string; body?: unknown } = {}) => {
      const response = await h.cp.app.inject({
        method, url, headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
        ...(options.body === undefined ? {} : { payload: options.body as object }),
      });
      return { status: response.statusCode, json: () => response.json() as Record<string, any>, headers: response.headers };
    };
    const countRows = async (sql: string): Promise<number> => Number((await h.db.query<{ n: number }>(sql))[0]?.n ?? 0);

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv ? { kv: pair.kv } : {}), controlPlane: { pairingTokensMax } });
      await h.cp.auth.users.add({ name: 'root', role: 'admin', password: adminPassword, nowMs: h.clock.nowMs() });
      await h.cp.auth.users.add({ name: 'op', role: 'operator', password: 'operator password 1', nowMs: h.clock.nowMs() });
      admin = (await call('POST', '/v1/auth/login', { body: { name: 'root', password: adminPassword } })).json().token as string;
    });
    after(async () => {
      // systemScheduler's timers are unref'd; keep the loop alive while the consumers stop.
      const keepAlive = setInterval(() => undefined, 1_000);
      try {
        await h.close();
        await pair.sql.cleanup();
      } finally {
        clearInterval(keepAlive);
      }
    });

    it('prefix + count: one token per device, ids zero-padded, pending devices registered, one audit entry each, shown once', async () => {
      const created = await call('POST', '/v1/pairing-tokens', { token: admin, body: { prefix: 'lab-', count: 40, ttl_ms: 600_000 } });
      assert.equal(created.status, 201, JSON.stringify(created.json()));
      assert.equal(created.headers['cache-control'], 'no-store');
      const items = created.json().items as Array<{ device_id: string; token: string; expires_at_ms: number }>;
      assert.equal(items.length, 40);
      assert.equal(items[0]!.device_id, 'lab-01');
      assert.equal(items[39]!.device_id, 'lab-40');
      assert.equal(new Set(items.map((i) => i.token)).size, 40);
      for (const item of items) {
        assert.match(item.token, /^sdcpt_[A-Za-z0-9_-]{43}$/);
        assert.equal(item.expires_at_ms, h.clock.nowMs() + 600_000);
      }
      assert.equal((await h.cp.devices.get('lab-17')).status, 'pending');
      assert.equal(await countRows("SELECT COUNT(*) AS n FROM pairing_tokens WHERE device_id LIKE 'lab-%'"), 40);
      assert.equal(await countRows("SELECT COUNT(*) AS n FROM audit_log WHERE kind = 'pairing.token_created'"), 40);
      // A token from the batch enrolls its device, and only its device.
      const answer = await h.cp.devices.enroll({ deviceId: 'lab-17', token: items[16]!.token, csrPem: (await makeDeviceKey('lab-17')).csrPem });
      assert.match(answer.certificate_pem, /BEGIN CERTIFICATE/);
    });

    it('a batch past the limit is refused whole (503 TRUST_PAIRING_CAPACITY naming the limit); enrollments free places', async () => {
      // 39 outstanding (40 created, one spent); 22 more would make 61 > 60.
      const refused = await call('POST', '/v1/pairing-tokens', { token: admin, body: { prefix: 'more-', count: 22 } });
      assert.equal(refused.status, 503);
      const error = refused.json().error as { code: string; message: string };
      assert.equal(error.code, 'TRUST_PAIRING_CAPACITY');
      assert.match(error.message, /39 outstanding .* 22 more would pass the limit of 60/);
      assert.match(error.message, /--pairing-tokens-max/);
      assert.equal(await countRows("SELECT COUNT(*) AS n FROM pairing_tokens WHERE device_id LIKE 'more-%'"), 0, 'none of the batch stored');
      // 21 fit exactly; then a single token is refused too.
      assert.equal((await call('POST', '/v1/pairing-tokens', { token: admin, body: { prefix: 'more-', count: 21 } })).status, 201);
      const single = await call('POST', '/v1/devices/one-more/pairing-tokens', { token: admin, body: {} });
      assert.equal(single.json().error.code, 'TRUST_PAIRING_CAPACITY');
      // Spent tokens take no place: enroll two devices, and two new tokens fit.
      const list = await call('POST', '/v1/pairing-tokens', { token: admin, body: { device_ids: ['x-1'] } });
      assert.equal(list.status, 503);
      for (const id of ['lab-01', 'lab-02']) {
        const [row] = await h.db.query<{ token_hash: string }>('SELECT token_hash FROM pairing_tokens WHERE device_id = ?', [id]);
        await h.db.execute('UPDATE pairing_tokens SET used_at = ? WHERE token_hash = ?', [h.clock.nowMs(), row!.token_hash]);
      }
      const freed = await call('POST', '/v1/pairing-tokens', { token: admin, body: { device_ids: ['x-1', 'x-2'] } });
      assert.equal(freed.status, 201, JSON.stringify(freed.json()));
      // Expired tokens take no place either.
      h.clock.advance(15 * 60_000);
      assert.equal((await call('POST', '/v1/pairing-tokens', { token: admin, body: { prefix: 'later-', count: 50 } })).status, 201);
    });

    it('refuses bad bodies with API_VALIDATION and operators with 403', async () => {
      const bodies: unknown[] = [
        {}, { prefix: 'a-' }, { count: 3 }, { prefix: 'a-', count: 2, device_ids: ['a-1'] }, { device_ids: ['a-1', 'a-1'] },
        { device_ids: [] }, { prefix: 'A-', count: 2 }, { prefix: 'a-', count: 10_001 }, { device_ids: ['Bad'] },
      ];
      for (const body of bodies) {
        const answer = await call('POST', '/v1/pairing-tokens', { token: admin, body });
        assert.equal(answer.status, 400, JSON.stringify(body));
        assert.equal(answer.json().error.code, 'API_VALIDATION', JSON.stringify(body));
      }
      const op = (await call('POST', '/v1/auth/login', { body: { name: 'op', password: 'operator password 1' } })).json().token as string;
      assert.equal((await call('POST', '/v1/pairing-tokens', { token: op, body: { prefix: 'a-', count: 1 } })).status, 403);
    });
  });
}

const { pairs, skipped } = storePairs();
// storePairs says why the MySQL + Redis run is skipped; the same suite runs on sql.js then.
if (skipped !== undefined) describe('bulk pairing tokens on mysql + redis', () => { it.skip(skipped, () => undefined); });
for (const pair of pairs) suite(pair);
