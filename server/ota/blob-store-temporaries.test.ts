// The embedded blob store removes the temporary files of writes that never finished (a PUT the
// control plane stopped or crashed during), once they are older than any write can run, and never
// the file of a write in progress here, however old it looks.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedBlobStore, embeddedTemporaryLimits } from './blob-store.js';

describe('embedded blob store: stale temporary files', () => {
  let root: string;
  let blobs: string;
  /** The store's clock, pinned: only the files' mtimes set here decide what is stale. */
  const nowMs = Date.UTC(2026, 11, 6, 10, 0, 0);
  const staleMs = nowMs - embeddedTemporaryLimits.staleAfterMs - 60_000;
  const freshMs = nowMs - embeddedTemporaryLimits.staleAfterMs + 60_000;

  const storeOf = (directory: string, examinedMax?: number) => new EmbeddedBlobStore({
    directory, publicBaseUrl: 'http://127.0.0.1:1', credentials: { accessKeyId: 'SDCTEST', secretAccessKey: 'x'.repeat(32) },
    clock: { nowMs: () => nowMs }, putBytesMax: 1 << 20, ...(examinedMax === undefined ? {} : { temporariesExaminedPerPassMax: examinedMax }),
  });
  const leave = async (directory: string, name: string, mtimeMs: number): Promise<void> => {
    await writeFile(join(directory, name), 'left over');
    await utimes(join(directory, name), mtimeMs / 1000, mtimeMs / 1000);
  };
  const temporaries = async (directory: string): Promise<string[]> => (await readdir(directory)).filter((name) => name.endsWith('.tmp')).sort();

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sdc-blob-tmp-'));
    blobs = join(root, 'blobs');
    await mkdir(blobs);
  });
  after(async () => { await rm(root, { recursive: true, force: true }); });

  it('removes a leftover older than the bound, keeps a fresh one and the file of a write in progress (however old)', async () => {
    const store = storeOf(blobs);
    const stalePut = '.put-00112233445566aa.tmp';
    const staleMeta = `${'ab'.repeat(32)}.json.tmp`;
    const freshPut = '.put-00112233445566bb.tmp';
    await leave(blobs, stalePut, staleMs);
    await leave(blobs, staleMeta, staleMs);
    await leave(blobs, freshPut, freshMs);
    await leave(blobs, 'notes.tmp', staleMs); // not a name the store writes: not its to remove

    // A write whose body has not all arrived: its temporary file is made as old as the leftover.
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    const writing = store.put('kept/in-flight', (async function* () {
      yield new Uint8Array([1, 2, 3]);
      await gate;
      yield new Uint8Array([4]);
    })(), { bytesMax: 1024 });
    let inFlight: string | undefined;
    for (let tries = 0; inFlight === undefined; tries += 1) {
      assert.ok(tries < 5_000, 'the write never made its temporary file');
      for (const name of await temporaries(blobs)) {
        if (![stalePut, staleMeta, freshPut, 'notes.tmp'].includes(name) && (await stat(join(blobs, name))).size === 3) inFlight = name;
      }
      if (inFlight === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await utimes(join(blobs, inFlight), staleMs / 1000, staleMs / 1000);

    assert.equal(await store.removeStaleTemporaries(), 2);
    assert.deepEqual(await temporaries(blobs), [freshPut, inFlight, 'notes.tmp'].sort());
    release();
    assert.equal((await writing).length, 4, 'the write in progress finished whole');
    assert.deepEqual(await temporaries(blobs), [freshPut, 'notes.tmp'].sort());
    assert.equal((await store.head('kept/in-flight'))?.length, 4);
  });

  it('looks at a bounded number of temporary files per pass and reaches every stale one over the passes', async () => {
    const directory = join(root, 'bounded');
    await mkdir(directory);
    const store = storeOf(directory, 2);
    const fresh = ['.put-aaaaaaaaaaaaaaa1.tmp', '.put-aaaaaaaaaaaaaaa2.tmp', '.put-aaaaaaaaaaaaaaa3.tmp'];
    const stale = ['.put-bbbbbbbbbbbbbbb1.tmp', '.put-bbbbbbbbbbbbbbb2.tmp', '.put-bbbbbbbbbbbbbbb3.tmp'];
    for (const name of fresh) await leave(directory, name, freshMs);
    for (const name of stale) await leave(directory, name, staleMs);
    const removedPerPass: number[] = [];
    for (let pass = 0; pass < 4; pass += 1) removedPerPass.push(await store.removeStaleTemporaries());
    assert.ok(removedPerPass.every((removed) => removed <= 2), `at most 2 per pass: ${removedPerPass.join(', ')}`);
    assert.equal(removedPerPass.reduce((sum, removed) => sum + removed, 0), 3);
    assert.deepEqual(await temporaries(directory), fresh);
  });

  it('a store whose directory does not exist yet removes nothing', async () => {
    assert.equal(await storeOf(join(root, 'never-made')).removeStaleTemporaries(), 0);
  });
});
