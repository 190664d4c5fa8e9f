import { test } from 'node:test';
import assert from 'node:assert/strict';
import { systemRandom } from '../../runtime/system.js';
import { hashNeedsUpgrade, hashPassword, passwordHashDefaults, verifyPassword } from './passwords.js';

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
