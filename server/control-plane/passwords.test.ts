import { test } from 'node:test';
import assert from 'node:assert/strict';
import { systemRandom } from '../../runtime/system.js';
import { failedCheckPadding, hashNeedsUpgrade, hashPassword, passwordHashDefaults, passwordLimits, verifyPassword, verifyPasswordPadded } from './passwords.js';

/** New password hashes use OWASP's scrypt minimum; hashes made before (N = 2^15) still verify and are marked for an upgrade. */
test('new hashes use N = 2^17, r = 8, p = 1 and fit the memory bound; N = 2^15 hashes still verify and need an upgrade', async () => {
  assert.deepEqual({ ...passwordHashDefaults }, { N: 2 ** 17, r: 8, p: 1 });
  // One real hash at the production cost (about 128 MiB): maxmem must admit it.
  const hash = await hashPassword('correct horse battery', systemRandom);
  assert.match(hash, /^scrypt\$131072\$8\$1\$/);
  assert.equal(await verifyPassword('correct horse battery', hash), true);
  assert.equal(hashNeedsUpgrade(hash), false);

  const old = await hashPassword('correct horse battery', systemRandom, { N: 2 ** 15, r: 8, p: 1 });
  assert.equal(await verifyPassword('correct horse battery', old), true);
  assert.equal(await verifyPassword('wrong horse battery', old), false);
  assert.equal(hashNeedsUpgrade(old), true);
  assert.equal(hashNeedsUpgrade(old, { N: 2 ** 15, r: 8, p: 1 }), false);
  assert.equal(hashNeedsUpgrade('not a hash'), false);
});

// Review h12 finding 4: an unknown name costs one check at the current cost (a dummy hash made at
// it), but a wrong password for a user whose hash was made at N = 2^15 cost a quarter of that, so
// the time told such users from unknown names. A failed check is now padded up to the current cost.
test('a failed check of a cheaper hash is padded to the cost of one at the current parameters; an unknown name\'s dummy is at them', async () => {
  const at = (N: number, r = 8, p = 1) => `scrypt$${N}$${r}$${p}$AAAAAAAAAAAAAAAAAAAAAA$${'A'.repeat(43)}`;
  assert.deepEqual(failedCheckPadding(at(2 ** 15)), { params: { N: 2 ** 15, r: 8, p: 1 }, runs: 3 }, '4 x 2^15 = one check at 2^17');
  assert.deepEqual(failedCheckPadding(at(2 ** 17)), { params: { N: 2 ** 17, r: 8, p: 1 }, runs: 0 });
  assert.deepEqual(failedCheckPadding(at(2 ** 18)).runs, 0, 'a dearer hash is not padded');
  assert.deepEqual(failedCheckPadding(at(2 ** 16, 4)), { params: { N: 2 ** 16, r: 4, p: 1 }, runs: 3 });
  assert.deepEqual(failedCheckPadding('not a hash'), { params: { ...passwordHashDefaults }, runs: 1 }, 'no scrypt ran for it: one at the current cost');
  assert.equal(failedCheckPadding(at(2)).runs, 16, 'bounded');

  // The same at a test's cheap cost: stored at 2^8, current 2^10.
  const current = { N: 2 ** 10, r: 8, p: 1 };
  const old = await hashPassword('correct horse battery', systemRandom, { N: 2 ** 8, r: 8, p: 1 });
  const runs = async (password: string, stored: string) => {
    const seen: number[] = [];
    const ok = await verifyPasswordPadded(password, stored, current, (run) => seen.push(run.N));
    return { ok, seen };
  };
  assert.deepEqual(await runs('wrong horse battery', old), { ok: false, seen: [2 ** 8, 2 ** 8, 2 ** 8] });
  assert.deepEqual(await runs('correct horse battery', old), { ok: true, seen: [] });
  const dummy = await hashPassword('not-a-real-password', systemRandom, current);
  assert.deepEqual(await runs('wrong horse battery', dummy), { ok: false, seen: [] }, 'the unknown name\'s dummy: one check at the current cost');
  assert.deepEqual(await runs('x'.repeat(passwordLimits.lengthMax + 1), old), { ok: false, seen: [] }, 'too long: no scrypt on any path');
});
