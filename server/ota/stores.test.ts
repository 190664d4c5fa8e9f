import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import { FileArtifactStore } from './artifact-store.js';
import { FileHighWaterStore } from './high-water.js';

const directories: string[] = [];
after(async () => { for (const dir of directories) await rm(dir, { recursive: true, force: true }); });
async function temporary(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-ota-stores-'));
  directories.push(dir);
  return dir;
}

async function* chunks(...parts: Uint8Array[]): AsyncIterable<Uint8Array> {
  for (const part of parts) yield part;
}

describe('FileArtifactStore', () => {
  it('stores an artifact under its SHA-256 with its SHA-512 and length, and streams it back', async () => {
    const dir = await temporary();
    const store = new FileArtifactStore(join(dir, 'artifacts'));
    const a = new Uint8Array(1000).fill(7);
    const b = new Uint8Array(24).fill(9);
    const stored = await store.put(chunks(a, b), { bytesMax: 1024 });
    const whole = Buffer.concat([a, b]);
    assert.deepEqual(stored, { length: 1024, sha256: createHash('sha256').update(whole).digest('hex'), sha512: createHash('sha512').update(whole).digest('hex') });
    assert.deepEqual(await readFile(join(dir, 'artifacts', stored.sha256)), whole);
    const opened = await store.open(stored.sha256);
    assert.equal(opened?.length, 1024);
    assert.equal(await store.open('../../etc/passwd'), undefined, 'only digests name files');
  });

  it('refuses one byte over the limit and keeps nothing, not even a temporary file', async () => {
    const dir = await temporary();
    const store = new FileArtifactStore(join(dir, 'artifacts'));
    await assert.rejects(store.put(chunks(new Uint8Array(1000), new Uint8Array(25)), { bytesMax: 1024 }), (error) => SdcError.is(error, 'OTA_UPLOAD_TOO_LARGE'));
    assert.deepEqual(await readdir(join(dir, 'artifacts')), []);
  });
});

describe('FileHighWaterStore', () => {
  it('only ever raises a mark, survives a new instance (a restart), and is private to the owner', async () => {
    const dir = await temporary();
    const path = join(dir, 'tuf', 'high-water.json');
    const store = new FileHighWaterStore(path);
    assert.deepEqual(await store.read(), { root: 0, targets: 0, snapshot: 0, timestamp: 0 });
    await store.raise({ timestamp: 5, snapshot: 2 });
    await store.raise({ timestamp: 3, targets: 1 });
    assert.deepEqual(await new FileHighWaterStore(path).read(), { root: 0, targets: 1, snapshot: 2, timestamp: 5 });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
  });

  it('refuses a damaged mark file rather than reading it as no mark at all', async () => {
    const dir = await temporary();
    const path = join(dir, 'high-water.json');
    await writeFile(path, '{"timestamp": "five"}');
    await assert.rejects(new FileHighWaterStore(path).read(), (error) => SdcError.is(error, 'STORE_CORRUPT'));
  });
});
