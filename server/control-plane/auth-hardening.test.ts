import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../../core/errors/index.js';
import { ConcurrencyGate } from './concurrency-gate.js';
import { authRateLimits } from './http/rate-limit.js';
import { tokenSubjectLimits } from './token-subjects.js';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

/**
 * Issue 16, findings 7 and 9: logins and pairing-token guesses were not throttled, and a token
 * for a user that does not exist (or no longer holds the role) was accepted. Rate limits are
 * counted in the key/value store on the injected clock; tests move windows with the clock.
 */
function suite(pair: StorePair): void {
  describe(`login and token hardening on ${pair.name}`, () => {
    let h: Harness;
    const password = 'padmin password 123';

    const call = async (method: 'GET' | 'POST', url: string, options: { token?: string; payload?: object; from?: string } = {}) => {
      const response = await h.cp.app.inject({
        method, url, remoteAddress: options.from ?? '192.0.2.1',
        headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
        ...(options.payload === undefined ? {} : { payload: options.payload }),
      });
      return { status: response.statusCode, headers: response.headers, body: response.body, json: () => response.json() as Record<string, any> };
    };
    const login = (name: string, pw: string, from?: string) => call('POST', '/v1/auth/login', { payload: { name, password: pw }, ...(from === undefined ? {} : { from }) });
    const auditCount = async (kind: string) => (await h.cp.auditStore.scan(1, 10_000)).filter((e) => e.kind === kind).length;
    /** Moves the injected clock into the next rate-limit window. */
    const nextWindow = () => h.clock.advance(authRateLimits.windowMs);

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }) });
      await h.cp.auth.users.add({ name: 'padmin', role: 'admin', password, nowMs: h.clock.nowMs() });
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('16.7: locks an account after loginAttemptsPerAccountMax attempts from any address, with 429 and Retry-After, until the window ends', async () => {
      nextWindow();
      const failedBefore = await auditCount('auth.login_failed');
      for (let i = 0; i < authRateLimits.loginAttemptsPerAccountMax; i += 1) {
        const wrong = await login('padmin', 'wrong password!!', `198.51.100.${i + 1}`);
        assert.equal(wrong.json().error.code, 'API_LOGIN_FAILED');
      }
      const locked = await login('padmin', password, '203.0.113.9');
      assert.equal(locked.status, 429, locked.body);
      assert.equal(locked.json().error.code, 'API_RATE_LIMITED');
      const retryAfterS = Number(locked.headers['retry-after']);
      assert.ok(Number.isSafeInteger(retryAfterS) && retryAfterS >= 1 && retryAfterS <= authRateLimits.windowMs / 1000, `retry-after ${String(locked.headers['retry-after'])}`);
      // The refused attempt ran no password check and wrote no audit entry.
      assert.equal(await auditCount('auth.login_failed'), failedBefore + authRateLimits.loginAttemptsPerAccountMax);
      nextWindow();
      assert.equal((await login('padmin', password, '203.0.113.9')).status, 200);
    });

    it('16.7: a successful login clears the account\'s count', async () => {
      nextWindow();
      for (let i = 0; i < authRateLimits.loginAttemptsPerAccountMax - 1; i += 1) await login('padmin', 'wrong password!!', `198.51.100.${i + 1}`);
      assert.equal((await login('padmin', password)).status, 200);
      for (let i = 0; i < authRateLimits.loginAttemptsPerAccountMax - 1; i += 1) {
        assert.equal((await login('padmin', 'wrong password!!', `198.51.100.${i + 1}`)).json().error.code, 'API_LOGIN_FAILED');
      }
    });

    it('16.7: 120 concurrent wrong-password logins from one address: only loginAttemptsPerSourceMax run a password check', async () => {
      nextWindow();
      const failedBefore = await auditCount('auth.login_failed');
      const answers = await Promise.all(Array.from({ length: 120 }, (_, i) => login(`guess-${i}`, 'wrong password!!', '192.0.2.66')));
      const codes = answers.map((a) => a.json().error.code as string);
      assert.equal(codes.filter((c) => c === 'API_LOGIN_FAILED').length, authRateLimits.loginAttemptsPerSourceMax);
      assert.equal(codes.filter((c) => c === 'API_RATE_LIMITED').length, 120 - authRateLimits.loginAttemptsPerSourceMax);
      assert.equal(await auditCount('auth.login_failed'), failedBefore + authRateLimits.loginAttemptsPerSourceMax);
      // Another address is not affected; the same one is again in the next window.
      assert.equal((await login('padmin', password, '192.0.2.67')).status, 200);
      nextWindow();
      assert.equal((await login('padmin', password, '192.0.2.66')).status, 200);
    });

    // 16.7's enrollment limits (guessed pairing tokens) are in enrollment-limits.test.ts.

    it('16.9: an admin-role token signed with the real key for a user that does not exist is refused', async () => {
      const ghost = await h.cp.auth.authority.issue({ sub: 'ghost', role: 'admin' });
      const answer = await call('GET', '/v1/audit', { token: ghost });
      assert.equal(answer.status, 401, answer.body);
      assert.equal(answer.json().error.code, 'API_TOKEN_SUBJECT_INVALID');
      assert.equal((await call('POST', '/v1/users', { token: ghost, payload: { name: 'mallory', role: 'admin', password: 'mallory password 1' } })).json().error.code, 'API_TOKEN_SUBJECT_INVALID');
      assert.deepEqual(await h.db.query('SELECT name FROM users WHERE name = ?', ['mallory']), []);
    });

    it('16.9: a removed user\'s and a demoted user\'s tokens stop working within the cache TTL', async () => {
      nextWindow();
      await h.cp.auth.users.add({ name: 'leaver', role: 'admin', password: 'leaver password 1', nowMs: h.clock.nowMs() });
      await h.cp.auth.users.add({ name: 'demoted', role: 'admin', password: 'demoted password 1', nowMs: h.clock.nowMs() });
      const leaver = (await login('leaver', 'leaver password 1')).json().token as string;
      const demoted = (await login('demoted', 'demoted password 1')).json().token as string;
      assert.equal((await call('GET', '/v1/audit', { token: leaver })).status, 200);
      assert.equal((await call('GET', '/v1/audit', { token: demoted })).status, 200);
      await h.db.execute('DELETE FROM users WHERE name = ?', ['leaver']);
      await h.db.execute("UPDATE users SET role = 'viewer' WHERE name = ?", ['demoted']);
      h.clock.advance(tokenSubjectLimits.cacheTtlMs);
      assert.equal((await call('GET', '/v1/audit', { token: leaver })).json().error.code, 'API_TOKEN_SUBJECT_INVALID');
      // The demoted user's admin token is refused everywhere, even on a viewer route.
      assert.equal((await call('GET', '/v1/audit', { token: demoted })).json().error.code, 'API_TOKEN_SUBJECT_INVALID');
      assert.equal((await call('GET', '/v1/devices', { token: demoted })).json().error.code, 'API_TOKEN_SUBJECT_INVALID');
      const fresh = (await login('demoted', 'demoted password 1')).json();
      assert.equal(fresh.role, 'viewer');
      assert.equal((await call('GET', '/v1/devices', { token: fresh.token as string })).status, 200);
      assert.equal((await call('GET', '/v1/audit', { token: fresh.token as string })).json().error.code, 'API_FORBIDDEN');
    });
  });
}

describe('16.7: the scrypt gate bounds running and waiting password checks', () => {
  it('runs runningMax at once, queues waitingMax in order, refuses the next at once', async () => {
    const gate = new ConcurrencyGate({ runningMax: 2, waitingMax: 2, refusal: () => new SdcError('API_AUTH_BUSY', 'busy', { retryAfterS: 1 }) });
    const releases: Array<() => void> = [];
    const started: number[] = [];
    const task = (i: number) => gate.run(() => new Promise<number>((resolve) => { started.push(i); releases.push(() => resolve(i)); }));
    const running = [task(1), task(2), task(3), task(4)];
    await assert.rejects(task(5), (error: unknown) => SdcError.is(error, 'API_AUTH_BUSY'));
    assert.deepEqual(started, [1, 2]);
    assert.deepEqual([gate.running, gate.waiting], [2, 2]);
    releases[0]!();
    assert.equal(await running[0], 1);
    await Promise.resolve();
    assert.deepEqual(started, [1, 2, 3]);
    for (let i = 1; i < 4; i += 1) {
      for (let spin = 0; spin < 10 && releases[i] === undefined; spin += 1) await Promise.resolve();
      releases[i]!();
    }
    assert.deepEqual(await Promise.all(running), [1, 2, 3, 4]);
    assert.deepEqual([gate.running, gate.waiting], [0, 0]);
  });
});

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('login and token hardening on mysql + redis', { skip: skipped }, () => {});
