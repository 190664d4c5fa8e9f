import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { apiKeepAliveTimeoutMs } from './control-plane.js';
import { makeHarness, sqlJsTarget } from './test-support.js';

/** One GET on a kept-alive connection: the status and the Keep-Alive header the API answered with. */
function get(url: string): Promise<{ status: number; keepAlive: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { connection: 'keep-alive' } }, (res) => {
      res.resume();
      const header = res.headers['keep-alive'];
      res.on('end', () => resolve({ status: res.statusCode ?? 0, keepAlive: typeof header === 'string' ? header : undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('API keep-alive (issue 17)', () => {
  it('tells clients it keeps idle connections 72 s, far above a client pool idle time (Node: 4-5 s)', async () => {
    const h = await makeHarness(sqlJsTarget);
    try {
      const { url } = await h.cp.listen({ host: '127.0.0.1', port: 0, tls: false });
      const answer = await get(`${url}/v1/devices`);
      assert.equal(answer.status, 401);
      // Node's client pool closes an idle connection at this hint minus 1 s. With Node's server
      // default the hint was timeout=5: one second of event-loop lag in a client was enough to send
      // a request on a connection the API had just closed (ECONNRESET).
      assert.equal(answer.keepAlive, `timeout=${apiKeepAliveTimeoutMs / 1000}`);
      assert.ok(apiKeepAliveTimeoutMs >= 60_000);
    } finally {
      await h.close();
    }
  });
});
