import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { makeDeviceKey, makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';
import { TelemetryRowWriter } from './telemetry-rows.js';

/**
 * Issue 13's fleet column: GET /v1/devices and GET /v1/devices/{id} carry each device's risk
 * score, the one its newest telemetry sample was scored with (what policy rules see as
 * `riskScore`), on sql.js and on MySQL + Redis; null before any telemetry. The OpenAPI document
 * describes both fields.
 */
const password = 'correct horse battery staple';

function suite(pair: StorePair): void {
  describe(`device risk scores on ${pair.name}`, () => {
    let h: Harness;
    let token = '';
    const call = async (method: 'GET' | 'POST', url: string, body?: object) => {
      const response = await h.cp.app.inject({ method, url, headers: token === '' ? {} : { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { payload: body }) });
      return { status: response.statusCode, json: () => response.json() as Record<string, any>, text: response.body };
    };

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }) });
      await h.cp.auth.users.add({ name: 'admin', role: 'admin', password, nowMs: h.clock.nowMs() });
      token = (await call('POST', '/v1/auth/login', { name: 'admin', password })).json().token as string;
      for (const device of ['risk-a', 'risk-b', 'risk-c']) {
        const { csrPem } = await makeDeviceKey(device);
        const pairing = await call('POST', `/v1/devices/${device}/pairing-tokens`, {});
        const enrolled = await call('POST', '/v1/enroll', { device_id: device, token: pairing.json().token, csr_pem: csrPem });
        assert.equal(enrolled.status, 201, enrolled.text);
      }
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('the list and the detail show the newest sample\'s score and time; a device without telemetry has null', async () => {
      const writer = new TelemetryRowWriter(h.db);
      const t = h.clock.nowMs();
      // Written out of time order: the newest by sample time wins, not the last inserted.
      await Promise.all([
        writer.insert({ deviceId: 'risk-a', sampledAtMs: t - 2_000, metricsJson: '{}', riskScore: 12.5 }),
        writer.insert({ deviceId: 'risk-a', sampledAtMs: t, metricsJson: '{}', riskScore: 81 }),
        writer.insert({ deviceId: 'risk-b', sampledAtMs: t - 1_000, metricsJson: '{}', riskScore: 40 }),
      ]);
      await writer.insert({ deviceId: 'risk-a', sampledAtMs: t - 5_000, metricsJson: '{}', riskScore: 3 });
      await writer.insert({ deviceId: 'risk-b', sampledAtMs: t - 3_000, metricsJson: '{}', riskScore: 99 });
      const list = await call('GET', '/v1/devices?limit=10');
      assert.equal(list.status, 200, list.text);
      const byId = new Map((list.json().items as Array<Record<string, any>>).map((item) => [item.id as string, item]));
      assert.deepEqual([...byId.keys()], ['risk-a', 'risk-b', 'risk-c']);
      assert.equal(byId.get('risk-a')?.risk_score, 81);
      assert.equal(byId.get('risk-a')?.risk_scored_at_ms, t);
      assert.equal(byId.get('risk-b')?.risk_score, 40);
      assert.equal(byId.get('risk-b')?.risk_scored_at_ms, t - 1_000);
      assert.equal(byId.get('risk-c')?.risk_score, null);
      assert.equal(byId.get('risk-c')?.risk_scored_at_ms, null);
      // The other fields are still there (the response schema lists them all).
      assert.equal(byId.get('risk-a')?.status, 'enrolled');
      assert.deepEqual(byId.get('risk-a')?.tags, []);
      assert.equal(typeof byId.get('risk-a')?.cert_serial, 'string');
      const one = await call('GET', '/v1/devices/risk-a');
      assert.equal(one.status, 200, one.text);
      assert.equal(one.json().risk_score, 81);
      assert.equal((await call('GET', '/v1/devices/risk-c')).json().risk_score, null);
      // A page boundary does not lose a device's score (the lookup is per page).
      const first = await call('GET', '/v1/devices?limit=1');
      const second = await call('GET', `/v1/devices?limit=1&cursor=${encodeURIComponent(first.json().next_cursor as string)}`);
      assert.equal(second.json().items[0].id, 'risk-b');
      assert.equal(second.json().items[0].risk_score, 40);
    });

    it('OpenAPI describes risk_score on the device views', async () => {
      const openapi = (await call('GET', '/openapi.json')).json();
      const text = JSON.stringify(openapi.paths['/v1/devices'].get.responses);
      assert.match(text, /"risk_score"/);
      assert.match(JSON.stringify(openapi.paths['/v1/devices/{id}'].get.responses), /"risk_scored_at_ms"/);
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('device risk scores on mysql + redis', { skip: skipped }, () => {});
