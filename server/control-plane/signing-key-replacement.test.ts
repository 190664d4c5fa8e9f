// Security review 2026-12-05, finding 4: PUT /v1/users/me/signing-key replaced a user's approval
// signing key with a bearer token alone, so a leaked approver token let its holder put their own
// key in place and sign approvals the control plane and the device accept. Then replacing a key
// needed the current password; later the same evening a first key too (an approval key is what
// makes a second person's consent count, so a stolen token must not mint one either;
// docs/decisions/0005-approvals.md). The password is checked through the login limiter; refusals
// are typed and audited. Both store pairs (sql.js + embedded kv; MySQL + Redis with MYSQL_URL and
// REDIS_URL).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { authRateLimits } from './http/rate-limit.js';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

const provider = createNodeEd25519Provider();
const password = 'correct horse battery staple';
const newPublicKey = () => base64urlFromBytes(provider.publicKeyFromSeed(new Uint8Array(randomBytes(32))));

function suite(pair: StorePair): void {
  describe(`registering an approval signing key, first or replacement, needs the current password on ${pair.name}`, () => {
    let h: Harness;
    const tag = randomBytes(3).toString('hex');
    const put = async (token: string, body: object, from = '203.0.113.7') => {
      const answer = await h.cp.app.inject({ method: 'PUT', url: '/v1/users/me/signing-key', headers: { authorization: `Bearer ${token}` }, payload: body, remoteAddress: from });
      return { status: answer.statusCode, body: answer.json() as { kid?: string; error?: { code: string } }, text: answer.body };
    };
    const current = async (token: string) => (await h.cp.app.inject({ method: 'GET', url: '/v1/users/me/signing-key', headers: { authorization: `Bearer ${token}` } })).json() as { kid: string };
    const audited = async (name: string) => (await h.cp.auditStore.scan(1, 10_000))
      .filter((entry) => entry.subject === `user:${name}` && entry.kind.startsWith('user.signing_key'))
      .map((entry) => [entry.kind, entry.payload['code'] ?? entry.payload['proof']]);
    const account = async (name: string) => {
      await h.cp.auth.users.add({ name, role: 'approver', password, nowMs: h.clock.nowMs() });
      return (await h.cp.auth.login(name, password)).token;
    };

    before(async () => {
      h = await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('a first key: with the token alone or a wrong password refused (audited, no key), with the password registered', async () => {
      const name = `skr0${tag}`;
      const token = await account(name);
      const first = newPublicKey();
      const tokenOnly = await put(token, { public_key: first });
      assert.equal(tokenOnly.status, 403, tokenOnly.text);
      assert.equal(tokenOnly.body.error?.code, 'APPROVAL_KEY_PROOF_REQUIRED');
      const wrong = await put(token, { public_key: first, current_password: 'not the password at all' });
      assert.equal(wrong.status, 403, wrong.text);
      assert.equal(wrong.body.error?.code, 'API_CURRENT_PASSWORD_WRONG');
      const none = await h.cp.app.inject({ method: 'GET', url: '/v1/users/me/signing-key', headers: { authorization: `Bearer ${token}` } });
      assert.equal(none.statusCode, 409, 'no key was registered by the refused attempts');
      const registered = await put(token, { public_key: first, current_password: password });
      assert.equal(registered.status, 200, registered.text);
      assert.equal((await current(token)).kid, registered.body.kid);
      assert.deepEqual(await audited(name), [
        ['user.signing_key_refused', 'APPROVAL_KEY_PROOF_REQUIRED'], ['user.signing_key_refused', 'API_CURRENT_PASSWORD_WRONG'], ['user.signing_key_registered', 'password'],
      ]);
    });

    it('the same key again changes nothing and needs no password; another key with the token alone is refused and audited, the key kept', async () => {
      const name = `skr1${tag}`;
      const token = await account(name);
      const first = newPublicKey();
      const registered = await put(token, { public_key: first, current_password: password });
      assert.equal(registered.status, 200, registered.text);
      const kid = registered.body.kid!;
      assert.equal((await put(token, { public_key: first })).body.kid, kid, 'the same key again: no proof needed, nothing changes');

      const refused = await put(token, { public_key: newPublicKey() });
      assert.equal(refused.status, 403, refused.text);
      assert.equal(refused.body.error?.code, 'APPROVAL_KEY_PROOF_REQUIRED');
      assert.equal((await current(token)).kid, kid, 'the registered key is still the current one');
      assert.deepEqual(await audited(name), [['user.signing_key_registered', 'password'], ['user.signing_key_refused', 'APPROVAL_KEY_PROOF_REQUIRED']]);
    });

    it('with the current password the key is replaced (audited with its proof); a wrong password is refused (API_CURRENT_PASSWORD_WRONG), audited, nothing changed', async () => {
      const name = `skr2${tag}`;
      const token = await account(name);
      const kid = (await put(token, { public_key: newPublicKey(), current_password: password })).body.kid!;
      const wrong = await put(token, { public_key: newPublicKey(), current_password: 'not the password at all' });
      assert.equal(wrong.status, 403, wrong.text);
      assert.equal(wrong.body.error?.code, 'API_CURRENT_PASSWORD_WRONG');
      assert.equal((await current(token)).kid, kid);
      const replaced = await put(token, { public_key: newPublicKey(), current_password: password });
      assert.equal(replaced.status, 200, replaced.text);
      assert.notEqual(replaced.body.kid, kid);
      assert.equal((await current(token)).kid, replaced.body.kid);
      assert.deepEqual(await audited(name), [
        ['user.signing_key_registered', 'password'], ['user.signing_key_refused', 'API_CURRENT_PASSWORD_WRONG'], ['user.signing_key_registered', 'password'],
      ]);
    });

    it('password guesses through this route count as login attempts: past the per-account limit even the right password is refused (429)', async () => {
      const name = `skr3${tag}`;
      const token = await account(name);
      await put(token, { public_key: newPublicKey(), current_password: password });
      for (let i = 0; i < authRateLimits.loginAttemptsPerAccountMax; i += 1) {
        const guess = await put(token, { public_key: newPublicKey(), current_password: `guess number ${i}` }, `198.51.100.${i + 1}`);
        assert.equal(guess.body.error?.code, 'API_CURRENT_PASSWORD_WRONG', guess.text);
      }
      const limited = await put(token, { public_key: newPublicKey(), current_password: password }, '192.0.2.99');
      assert.equal(limited.status, 429, limited.text);
      assert.equal(limited.body.error?.code, 'API_RATE_LIMITED');
      // Audited like the other refusals (review 2026-12-05, finding 8), the key unchanged.
      const refusals = (await audited(name)).filter(([kind]) => kind === 'user.signing_key_refused').map(([, code]) => code);
      assert.equal(refusals.length, authRateLimits.loginAttemptsPerAccountMax + 1);
      assert.equal(refusals.at(-1), 'API_RATE_LIMITED');
      // The same limit guards the login itself: the guesses here locked the account's logins too.
      const login = await h.cp.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { name, password }, remoteAddress: '192.0.2.100' });
      assert.equal(login.statusCode, 429, login.body);
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('registering an approval signing key on mysql + redis', { skip: skipped }, () => {});
