import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiClient, ApiError, tokenExpiryMs, tokenExpiryOnLocalClockMs, type Fetch } from './api.js';

function jwtWithExp(expS: number): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'EdDSA' })}.${part({ sub: 'alice', exp: expS })}.c2ln`;
}

function answer(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

describe('the console\'s API client', () => {
  it('keeps the token in memory after login and sends it as a bearer token', async () => {
    const seen: Array<{ path: string; auth: string | undefined }> = [];
    const fetch: Fetch = async (path, init) => {
      seen.push({ path, auth: (init.headers as Record<string, string>).authorization });
      return path === '/v1/auth/login' ? answer(200, { token: jwtWithExp(2_000), role: 'operator' }) : answer(200, { items: [] });
    };
    const api = new ApiClient({ fetch, onSessionEnd: () => assert.fail('no session end') });
    const session = await api.login('alice', 'pw', 0);
    assert.deepEqual([session.name, session.role, session.expiresAtMs], ['alice', 'operator', 2_000_000]);
    await api.get('/v1/devices');
    assert.deepEqual(seen, [{ path: '/v1/auth/login', auth: undefined }, { path: '/v1/devices', auth: `Bearer ${session.token}` }]);
  });

  it('forgets the token and asks again when the API refuses it (expired, user removed)', async () => {
    let ended = '';
    const fetch: Fetch = async (path) => path === '/v1/auth/login'
      ? answer(200, { token: jwtWithExp(2_000), role: 'admin' })
      : answer(401, { error: { code: 'JWT_EXPIRED', message: 'token expired', trace_id: 't1' } });
    const api = new ApiClient({ fetch, onSessionEnd: (reason) => { ended = reason; } });
    await api.login('alice', 'pw', 0);
    await assert.rejects(api.get('/v1/devices'), (error: unknown) => error instanceof ApiError && error.code === 'JWT_EXPIRED' && error.traceId === 't1');
    assert.equal(api.session, undefined);
    assert.match(ended, /JWT_EXPIRED/);
  });

  it('reports refusals and network failures with a code, and a wrong password without ending anything', async () => {
    let ended = false;
    const refusing = new ApiClient({ fetch: async () => answer(401, { error: { code: 'API_LOGIN_FAILED', message: 'unknown user name or wrong password', trace_id: 't2' } }), onSessionEnd: () => { ended = true; } });
    await assert.rejects(refusing.login('alice', 'nope', 0), (error: unknown) => error instanceof ApiError && error.code === 'API_LOGIN_FAILED');
    assert.equal(ended, false);
    const down = new ApiClient({ fetch: async () => { throw new TypeError('fetch failed'); }, onSessionEnd: () => undefined });
    await assert.rejects(down.login('alice', 'pw', 0), (error: unknown) => error instanceof ApiError && error.code === 'VIEWER_NETWORK');
    const notJson = new ApiClient({ fetch: async () => new Response('<html>bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }), onSessionEnd: () => undefined });
    await assert.rejects(notJson.login('alice', 'pw', 0), (error: unknown) => error instanceof ApiError && error.code === 'HTTP_502');
  });

  it('reads a token\'s expiry, and nothing from a malformed one', () => {
    assert.equal(tokenExpiryMs(jwtWithExp(1_700_000_000)), 1_700_000_000_000);
    for (const bad of ['', 'a', 'a.b.c', 'a.!!!.c', `a.${Buffer.from('{"exp":"soon"}').toString('base64url')}.c`]) assert.equal(tokenExpiryMs(bad), undefined, bad);
    // On this page's clock: the token's lifetime from when it arrived, whatever the server's clock says.
    const claims = (c: object) => `h.${Buffer.from(JSON.stringify(c)).toString('base64url')}.s`;
    assert.equal(tokenExpiryOnLocalClockMs(claims({ iat: 1_700_000_000, exp: 1_700_000_900 }), 5_000_000_000_000), 5_000_000_900_000);
    assert.equal(tokenExpiryOnLocalClockMs(claims({ exp: 1_700_000_900 }), 5), 1_700_000_900_000, 'no iat: the exp');
    assert.equal(tokenExpiryOnLocalClockMs(claims({ iat: 10, exp: 5 }), 5), 5_000, 'exp before iat: the exp as given');
  });
});
