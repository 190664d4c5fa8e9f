import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { JwtAuthority } from './jwt-authority.js';
import { MemoryJwtKeyStore, type JwtKeyStore, type StoredKeyRing } from './jwt-key-store.js';
import { FileJwtKeyStore } from './jwt-file-key-store.js';
import { JWT_ALG, JWT_TYP, jwkThumbprint } from './jwt-keys.js';
import { JwtVerifier } from './jwt-verifier.js';
import { FakeClock, rejectionCode, seededRandom } from './jwt-test-support.js';

const startMs = Date.UTC(2030, 0, 1);
const dayMs = 24 * 60 * 60 * 1000;
const hourMs = 60 * 60 * 1000;

function authority(clock: FakeClock, store: JwtKeyStore = new MemoryJwtKeyStore(), seed = 'authority') {
  return JwtAuthority.create({ store, clock, issuer: 'sdc-control', audience: 'sdc-gateway', random: seededRandom(seed) });
}

test('issued token carries the profile: Ed25519 alg, kid, typ, iss, aud, sub, role, iat, exp, jti', async () => {
  const clock = new FakeClock(startMs + 500);
  const jwt = await authority(clock);
  const token = await jwt.issue({ sub: 'alice', role: 'operator', ttlMs: 10 * 60 * 1000, claims: { site: 'lab' } });
  assert.deepEqual(decodeProtectedHeader(token), { alg: JWT_ALG, kid: jwt.activeKid, typ: JWT_TYP });
  const payload = decodeJwt(token);
  assert.equal(payload.iss, 'sdc-control');
  assert.equal(payload.aud, 'sdc-gateway');
  assert.equal(payload.sub, 'alice');
  assert.equal(payload.role, 'operator');
  assert.equal(payload.site, 'lab');
  assert.equal(payload.iat, Math.floor(startMs / 1000));
  assert.equal(payload.exp, Math.floor(startMs / 1000) + 600);
  assert.equal(typeof payload.jti, 'string');
});

test('jwks publishes public keys only, with kid = RFC 7638 thumbprint, alg and use', async () => {
  const clock = new FakeClock(startMs);
  const jwt = await authority(clock);
  const { keys } = jwt.jwks();
  assert.equal(keys.length, 1);
  const [key] = keys;
  assert.ok(key);
  assert.deepEqual(Object.keys(key).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x']);
  assert.equal(key.alg, 'Ed25519');
  assert.equal(key.use, 'sig');
  assert.equal(key.kid, await jwkThumbprint(key));
  assert.equal(key.kid, jwt.activeKid);
});

test('rotation: due after rotationIntervalMs, the previous key stays published for tokenTtlMsMax + skew, then is dropped', async () => {
  const clock = new FakeClock(startMs);
  const store = new MemoryJwtKeyStore();
  const jwt = await authority(clock, store);
  const firstKid = jwt.activeKid;

  clock.advance(7 * dayMs - 1);
  await jwt.rotateIfDue(clock.nowMs());
  assert.equal(jwt.activeKid, firstKid, 'not due one millisecond early');

  clock.advance(1);
  await jwt.rotateIfDue(clock.nowMs());
  const secondKid = jwt.activeKid;
  assert.notEqual(secondKid, firstKid);
  assert.deepEqual(jwt.jwks().keys.map((k) => k.kid), [secondKid, firstKid]);

  const overlapMs = hourMs + 30_000;
  clock.advance(overlapMs - 1);
  assert.deepEqual(jwt.jwks().keys.map((k) => k.kid), [secondKid, firstKid], 'still published at the end of the overlap');
  clock.advance(1);
  assert.deepEqual(jwt.jwks().keys.map((k) => k.kid), [secondKid], 'hidden once the overlap has passed');
  await jwt.rotateIfDue(clock.nowMs());
  assert.deepEqual((await store.load())?.keys.map((k) => k.kid), [secondKid], 'and dropped from the stored ring');
});

test('issue rotates when due, and the new key is saved before it signs', async () => {
  const clock = new FakeClock(startMs);
  const store = new MemoryJwtKeyStore();
  const jwt = await authority(clock, store);
  clock.advance(8 * dayMs);
  const token = await jwt.issue({ sub: 'alice', role: 'operator' });
  const { kid } = decodeProtectedHeader(token);
  assert.equal((await store.load())?.keys[0]?.kid, kid);
});

test('rotateNow in a burst keeps at most keysMax keys', async () => {
  const clock = new FakeClock(startMs);
  const store = new MemoryJwtKeyStore();
  const jwt = await JwtAuthority.create({ store, clock, issuer: 'i', audience: 'a', keysMax: 3, random: seededRandom('burst') });
  const kids = [jwt.activeKid];
  for (let i = 0; i < 4; i++) kids.unshift(await jwt.rotateNow());
  assert.deepEqual(jwt.jwks().keys.map((k) => k.kid), kids.slice(0, 3));
  assert.equal((await store.load())?.keys.length, 3);
});

test('concurrent issues at a due rotation rotate once', async () => {
  const clock = new FakeClock(startMs);
  const store = new MemoryJwtKeyStore();
  const jwt = await authority(clock, store);
  clock.advance(7 * dayMs);
  const tokens = await Promise.all(Array.from({ length: 5 }, () => jwt.issue({ sub: 's', role: 'r' })));
  assert.equal(new Set(tokens.map((t) => decodeProtectedHeader(t).kid)).size, 1);
  assert.equal((await store.load())?.keys.length, 2);
});

test('issue refuses bad arguments with JWT_ARGUMENT_INVALID', async () => {
  const clock = new FakeClock(startMs);
  const jwt = await authority(clock);
  assert.equal(await rejectionCode(jwt.issue({ sub: '', role: 'r' })), 'JWT_ARGUMENT_INVALID');
  assert.equal(await rejectionCode(jwt.issue({ sub: 's', role: 'r', ttlMs: hourMs + 1 })), 'JWT_ARGUMENT_INVALID');
  assert.equal(await rejectionCode(jwt.issue({ sub: 's', role: 'r', ttlMs: 999 })), 'JWT_ARGUMENT_INVALID');
  assert.equal(await rejectionCode(jwt.issue({ sub: 's', role: 'r', claims: { exp: 1 } })), 'JWT_ARGUMENT_INVALID');
  assert.equal(await rejectionCode(jwt.issue({ sub: 's', role: 'r', claims: { n: 1n } })), 'JWT_ARGUMENT_INVALID');
  assert.equal(await rejectionCode(jwt.issue({ sub: 's', role: 'r', claims: { big: 'x'.repeat(9000) } })), 'JWT_ARGUMENT_INVALID');
});

test('create refuses options out of bounds', async () => {
  const clock = new FakeClock(startMs);
  const store = new MemoryJwtKeyStore();
  const base = { store, clock, issuer: 'i', audience: 'a' };
  assert.equal(await rejectionCode(JwtAuthority.create({ ...base, clockSkewMs: 5 * 60 * 1000 + 1 })), 'JWT_ARGUMENT_INVALID');
  assert.equal(await rejectionCode(JwtAuthority.create({ ...base, rotationIntervalMs: hourMs })), 'JWT_ARGUMENT_INVALID');
  assert.equal(await rejectionCode(JwtAuthority.create({ ...base, tokenTtlMs: 2 * hourMs })), 'JWT_ARGUMENT_INVALID');
  assert.equal(await rejectionCode(JwtAuthority.create({ ...base, issuer: '' })), 'JWT_ARGUMENT_INVALID');
});

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-jwt-'));
  try {
    await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('file store: the ring survives a reload, the file is 0600 and a new directory 0700', async () => {
  await withTempDir(async (dir) => {
    const clock = new FakeClock(startMs);
    const path = join(dir, 'keys', 'jwt-ring.json');
    const first = await authority(clock, new FileJwtKeyStore({ path }));
    clock.advance(7 * dayMs);
    const token = await first.issue({ sub: 'alice', role: 'operator' });
    // Generation 1 made the first key, generation 2 the rotation.
    assert.equal((await stat(new FileJwtKeyStore({ path }).generationPath(2))).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'keys'))).mode & 0o777, 0o700);

    const reloaded = await authority(clock, new FileJwtKeyStore({ path }), 'another seed');
    assert.equal(reloaded.activeKid, first.activeKid);
    assert.deepEqual(reloaded.jwks(), first.jwks());
    assert.equal(reloaded.jwks().keys.length, 2);
    const again = await reloaded.issue({ sub: 'alice', role: 'operator' });
    assert.equal(decodeProtectedHeader(again).kid, decodeProtectedHeader(token).kid);
  });
});

test('file store: absent file loads as undefined; unsafe mode, bad JSON and a tampered key are refused', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'ring.json');
    const store = new FileJwtKeyStore({ path });
    assert.equal(await store.load(), undefined);

    const clock = new FakeClock(startMs);
    await authority(clock, store);
    const ring = (await store.load()) as StoredKeyRing;
    // The ring is its newest generation file (decision 0016).
    const file = store.generationPath(1);

    await chmod(file, 0o644);
    assert.equal(await rejectionCode(store.load()), 'JWT_KEY_STORE_INVALID');

    await writeFile(file, '{not json', { mode: 0o600 });
    await chmod(file, 0o600);
    assert.equal(await rejectionCode(store.load()), 'JWT_KEY_STORE_INVALID');

    const [key] = ring.keys;
    assert.ok(key);
    const other = (await authority(new FakeClock(startMs), new MemoryJwtKeyStore(), 'other')).jwks().keys[0];
    assert.ok(other);
    const tampered = { version: 1, keys: [{ ...key, privateJwk: { ...key.privateJwk, x: other.x } }] };
    await writeFile(file, JSON.stringify(tampered));
    assert.equal(await rejectionCode(authority(clock, store)), 'JWT_KEY_STORE_INVALID');
  });
});

/** A verifier for `jwt`'s tokens, reading its ring as a control plane's does (server/control-plane/auth.ts). */
function verifierOf(jwt: JwtAuthority, clock: FakeClock): JwtVerifier {
  return JwtVerifier.create({
    issuer: 'sdc-control', audience: 'sdc-gateway', clock, minRefreshIntervalMs: 5_000,
    fetchJwks: async () => {
      await jwt.reload();
      return jwt.jwks();
    },
  });
}

test('file store shared by two authorities started at once on an empty folder: one key, and each verifies the other\'s token', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'jwt', 'keys.json');
    const clock = new FakeClock(startMs);
    const [a, b] = await Promise.all([
      authority(clock, new FileJwtKeyStore({ path }), 'replica a'),
      authority(clock, new FileJwtKeyStore({ path }), 'replica b'),
    ]);
    assert.equal(a.activeKid, b.activeKid);
    assert.deepEqual(a.jwks(), b.jwks());
    assert.equal(a.jwks().keys.length, 1);
    assert.equal((await new FileJwtKeyStore({ path }).load())?.keys[0]?.kid, a.activeKid);
    const fromA = await a.issue({ sub: 'alice', role: 'operator' });
    assert.equal((await verifierOf(b, clock).verify(fromA)).sub, 'alice');
  });
});

test('file store shared by two authorities started in turn: both rotate at once after 7 days to one new key; tokens cross', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'jwt', 'keys.json');
    const clock = new FakeClock(startMs);
    const a = await authority(clock, new FileJwtKeyStore({ path }), 'replica a');
    clock.advance(hourMs);
    const b = await authority(clock, new FileJwtKeyStore({ path }), 'replica b');
    assert.equal(b.activeKid, a.activeKid);
    const first = a.activeKid;
    const verifyAtA = verifierOf(a, clock);
    const verifyAtB = verifierOf(b, clock);

    clock.advance(7 * dayMs);
    await Promise.all([a.rotateIfDue(clock.nowMs()), b.rotateIfDue(clock.nowMs())]);
    assert.notEqual(a.activeKid, first);
    assert.equal(a.activeKid, b.activeKid);
    assert.deepEqual(a.jwks(), b.jwks());
    assert.equal(a.jwks().keys.length, 2, 'the retired key stays published for its tokens');

    const fromA = await a.issue({ sub: 'alice', role: 'operator' });
    const fromB = await b.issue({ sub: 'bob', role: 'viewer' });
    assert.equal((await verifyAtB.verify(fromA)).sub, 'alice');
    assert.equal((await verifyAtA.verify(fromB)).sub, 'bob');
  });
});

test('file store shared by two authorities: a rotation one makes verifies at the other (it re-reads the ring on the unknown kid), and the other then signs with it', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'jwt', 'keys.json');
    const clock = new FakeClock(startMs);
    const a = await authority(clock, new FileJwtKeyStore({ path }), 'replica a');
    const b = await authority(clock, new FileJwtKeyStore({ path }), 'replica b');
    const verifyAtB = verifierOf(b, clock);
    const before = await a.issue({ sub: 'alice', role: 'operator' });
    assert.equal((await verifyAtB.verify(before)).sub, 'alice');

    clock.advance(10_000);
    const rotated = await a.rotateNow();
    const after = await a.issue({ sub: 'alice', role: 'operator' });
    assert.equal(decodeProtectedHeader(after).kid, rotated);
    assert.equal((await verifyAtB.verify(after)).sub, 'alice');
    assert.equal((await verifyAtB.verify(before)).sub, 'alice', 'the retired key still verifies');
    assert.equal(b.activeKid, rotated);
  });
});

test('file store shared by two authorities: a rotateNow elsewhere is adopted by rotateIfDue within reloadIntervalMs', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'jwt', 'keys.json');
    const clock = new FakeClock(startMs);
    const a = await authority(clock, new FileJwtKeyStore({ path }), 'replica a');
    const b = await authority(clock, new FileJwtKeyStore({ path }), 'replica b');
    const rotated = await a.rotateNow();
    await b.rotateIfDue(clock.nowMs());
    assert.notEqual(b.activeKid, rotated, 'read within the interval: not yet');
    clock.advance(60_000);
    await b.rotateIfDue(clock.nowMs());
    assert.equal(b.activeKid, rotated);
  });
});

test('verifier on a shared ring: a flood of unknown kids reads the ring at most once per refresh interval', async () => {
  const clock = new FakeClock(startMs);
  let loads = 0;
  const inner = new MemoryJwtKeyStore();
  const store: JwtKeyStore = {
    load: async () => { loads++; return inner.load(); },
    save: (ring) => inner.save(ring),
    update: (change) => inner.update(change),
  };
  const jwt = await authority(clock, store);
  const verifier = verifierOf(jwt, clock);
  const foreign = await authority(clock, new MemoryJwtKeyStore(), 'forger');
  const forged = await foreign.issue({ sub: 'mallory', role: 'admin' });
  loads = 0;
  for (let i = 0; i < 50; i++) {
    assert.equal(await rejectionCode(verifier.verify(forged)), 'JWT_UNKNOWN_KID');
    clock.advance(100);
  }
  // 5 s of virtual time, one read per 5 s interval.
  assert.equal(loads, 1);
});

test('file store: a ring written before generation files (at the path itself) is loaded, and the next change becomes generation 1', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'ring.json');
    const clock = new FakeClock(startMs);
    const memory = new MemoryJwtKeyStore();
    const old = await authority(clock, memory, 'legacy');
    await writeFile(path, JSON.stringify(await memory.load()), { mode: 0o600 });
    const store = new FileJwtKeyStore({ path });
    const loaded = await authority(clock, store);
    assert.equal(loaded.activeKid, old.activeKid);
    clock.advance(7 * dayMs);
    await loaded.rotateIfDue(clock.nowMs());
    assert.equal((await stat(store.generationPath(1))).mode & 0o777, 0o600);
    assert.equal((await store.load())?.keys.length, 2);
  });
});

// Review h2, finding 6: a clock stepped back made rotateIfDue skip the re-read until the clock
// passed the reading of the last one, so another replica's rotation went unseen for that long.
test('file store shared by two authorities: after the wall clock steps back, rotateIfDue re-reads the ring at once', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'jwt', 'keys.json');
    const clock = new FakeClock(startMs);
    const a = await authority(clock, new FileJwtKeyStore({ path }), 'replica a');
    const b = await authority(clock, new FileJwtKeyStore({ path }), 'replica b');
    clock.advance(-hourMs);
    const rotated = await a.rotateNow();
    await b.rotateIfDue(clock.nowMs());
    assert.equal(b.activeKid, rotated, 'read at the first call after the step');
    const again = await a.rotateNow();
    await b.rotateIfDue(clock.nowMs());
    assert.equal(b.activeKid, rotated, 'then once per reloadIntervalMs from the new reading, as before');
    clock.advance(60_000);
    await b.rotateIfDue(clock.nowMs());
    assert.equal(b.activeKid, again);
  });
});
