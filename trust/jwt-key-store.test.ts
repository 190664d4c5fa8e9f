import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryJwtKeyStore, parseStoredKeyRing, type JwtKeyStore, type StoredKeyRing } from './jwt-key-store.js';
import { FileJwtKeyStore } from './jwt-file-key-store.js';
import { generatePrivateJwk, jwkThumbprint } from './jwt-keys.js';
import { rejectionCode, seededRandom } from './jwt-test-support.js';

async function ringOf(count: number, seed: string): Promise<StoredKeyRing> {
  const random = seededRandom(seed);
  const keys = [];
  for (let i = 0; i < count; i++) {
    const privateJwk = generatePrivateJwk(random);
    keys.push({ kid: await jwkThumbprint(privateJwk), createdAtMs: 1000 * (count - i), retiredAtMs: i === 0 ? null : 1000 * (count - i + 1), privateJwk });
  }
  return { version: 1, keys };
}

/** The JwtKeyStore contract; each adapter supplies a fresh store and its cleanup. */
function contract(name: string, open: () => Promise<{ store: JwtKeyStore; close: () => Promise<void> }>): void {
  test(`${name}: empty, round trip, replace, and a copy the caller cannot mutate`, async () => {
    const { store, close } = await open();
    try {
      assert.equal(await store.load(), undefined);
      const first = await ringOf(2, 'a');
      await store.save(first);
      assert.deepEqual(await store.load(), first);
      const second = await ringOf(3, 'b');
      await store.save(second);
      assert.deepEqual(await store.load(), second);
      const loaded = (await store.load()) as unknown as { keys: unknown[] };
      loaded.keys.length = 0;
      assert.deepEqual(await store.load(), second);
    } finally {
      await close();
    }
  });

  test(`${name}: refuses to save a ring with two active keys`, async () => {
    const { store, close } = await open();
    try {
      const ring = await ringOf(2, 'c');
      const bad = { version: 1 as const, keys: ring.keys.map((k) => ({ ...k, retiredAtMs: null })) };
      assert.equal(await rejectionCode(store.save(bad)), 'JWT_KEY_STORE_INVALID');
    } finally {
      await close();
    }
  });
}

/** Two writers each adding one retired key at once through `update`: both keys end in the ring. */
async function bothUpdatesLand(first: JwtKeyStore, second: JwtKeyStore, reader: JwtKeyStore): Promise<void> {
  const base = await ringOf(1, 'base');
  await first.save(base);
  const extra = async (seed: string) => {
    const [key] = (await ringOf(1, seed)).keys;
    assert.ok(key);
    return { ...key, retiredAtMs: key.createdAtMs };
  };
  const [a, b] = [await extra('writer a'), await extra('writer b')];
  const add = (store: JwtKeyStore, key: typeof a) => store.update(async (current) =>
    current === undefined || current.keys.some((k) => k.kid === key.kid) ? undefined : { version: 1, keys: [...current.keys, key] });
  await Promise.all([add(first, a), add(second, b), add(first, a), add(second, b)]);
  const kids = (await reader.load())?.keys.map((k) => k.kid).sort();
  assert.deepEqual(kids, [base.keys[0]?.kid, a.kid, b.kid].sort());
}

test('memory: updates at once both land', async () => {
  const store = new MemoryJwtKeyStore();
  await bothUpdatesLand(store, store, store);
});

test('file: two stores on one path updating at once both land (neither overwrites the other)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-jwt-store-'));
  try {
    const path = join(dir, 'ring.json');
    await bothUpdatesLand(new FileJwtKeyStore({ path }), new FileJwtKeyStore({ path }), new FileJwtKeyStore({ path }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

contract('memory', async () => ({ store: new MemoryJwtKeyStore(), close: async () => undefined }));
contract('file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-jwt-store-'));
  return { store: new FileJwtKeyStore({ path: join(dir, 'ring.json') }), close: () => rm(dir, { recursive: true, force: true }) };
});

test('parseStoredKeyRing refuses malformed rings', async () => {
  const [key] = (await ringOf(1, 'd')).keys;
  assert.ok(key);
  const cases: unknown[] = [
    null,
    { version: 2, keys: [] },
    { version: 1, keys: [{ ...key, kid: 'short' }] },
    { version: 1, keys: [{ ...key, createdAtMs: -1 }] },
    { version: 1, keys: [{ ...key, retiredAtMs: key.createdAtMs - 1 }] },
    { version: 1, keys: [{ ...key, privateJwk: { ...key.privateJwk, crv: 'Ed448' } }] },
    { version: 1, keys: [key, { ...key, retiredAtMs: key.createdAtMs }] },
    { version: 1, keys: Array(65).fill(key) },
  ];
  for (const value of cases) assert.throws(() => parseStoredKeyRing(value), { code: 'JWT_KEY_STORE_INVALID' });
});

test('file: a ring from before generations is adopted by the first change, and its file (old private keys) is removed then', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-jwt-store-'));
  try {
    const path = join(dir, 'ring.json');
    const legacy = await ringOf(2, 'legacy');
    await writeFile(path, `${JSON.stringify(legacy)}\n`, { mode: 0o600 });
    const store = new FileJwtKeyStore({ path });
    assert.deepEqual(await store.load(), legacy);
    const [extra] = (await ringOf(1, 'next')).keys;
    assert.ok(extra);
    const next = await store.update(async (current) => (current === undefined ? undefined : { version: 1, keys: [...current.keys, { ...extra, retiredAtMs: extra.createdAtMs }] }));
    assert.deepEqual(next?.keys.slice(0, 2), legacy.keys);
    assert.deepEqual((await readdir(dir)).sort(), ['ring.json.1']);
    assert.deepEqual(await new FileJwtKeyStore({ path }).load(), next);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a key ring folder that cannot be listed is refused JWT_KEY_STORE_UNAVAILABLE, not taken for an empty ring', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-jwt-unavailable-'));
  try {
    // A file where the ring's folder should be: listing it fails with ENOTDIR, which is no "no ring".
    const notAFolder = join(dir, 'jwt');
    await writeFile(notAFolder, 'not a folder');
    const store = new FileJwtKeyStore({ path: join(notAFolder, 'keys.json') });
    assert.equal(await rejectionCode(store.load()), 'JWT_KEY_STORE_UNAVAILABLE');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
