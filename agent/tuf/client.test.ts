import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../../core/errors/index.js';
import { TestClient } from './testing/harness.js';
import { sha256Hex, signEnvelope, TestTufRepository, type TestKeyType } from './testing/tuf-repository.js';

const nowMs = Date.UTC(2026, 0, 1);
const dayMs = 86_400_000;
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (data: Uint8Array | undefined): string | undefined => (data === undefined ? undefined : new TextDecoder().decode(data));

for (const keyType of ['ed25519', 'ecdsa', 'rsa'] as const satisfies readonly TestKeyType[]) {
  test(`refresh and download with ${keyType} keys: exact bytes stored under non-versioned names`, async () => {
    const repo = new TestTufRepository({ nowMs, keyType });
    repo.addTarget('targets', 'dir/app.bin', bytes('release 1'));
    repo.release();
    const client = new TestClient(repo);
    const result = await client.download('dir/app.bin');
    assert.deepEqual(result, { fileName: 'dir%2Fapp.bin', downloaded: true });
    assert.equal(text(client.targets.files.get('dir%2Fapp.bin')), 'release 1');
    assert.deepEqual([...client.metadata.files.keys()].sort(), ['root.json', 'snapshot.json', 'targets.json', 'timestamp.json']);
    assert.deepEqual(client.metadata.files.get('timestamp.json'), repo.latest('timestamp'));
    assert.deepEqual(client.metadata.files.get('snapshot.json'), repo.latest('snapshot'));
    assert.deepEqual(client.metadata.files.get('targets.json'), repo.latest('targets'));
  });
}

test('asks only for what the workflow needs: versioned names under consistent snapshots, no re-download of unchanged metadata or cached targets', async () => {
  const repo = new TestTufRepository({ nowMs });
  repo.addTarget('targets', 'a.txt', bytes('A'));
  repo.release();
  const client = new TestClient(repo);
  await client.refresh();
  assert.deepEqual(repo.requests, ['metadata/2.root.json', 'metadata/timestamp.json', 'metadata/2.snapshot.json', 'metadata/2.targets.json']);
  repo.requests.length = 0;
  await client.refresh(); // nothing new: the stored snapshot and targets are still current
  assert.deepEqual(repo.requests, ['metadata/2.root.json', 'metadata/timestamp.json']);
  repo.requests.length = 0;
  await client.download('a.txt');
  const hash = sha256Hex(bytes('A'));
  assert.deepEqual(repo.requests, ['metadata/2.root.json', 'metadata/timestamp.json', `targets/${hash}.a.txt`]);
  repo.requests.length = 0;
  assert.deepEqual(await client.download('a.txt'), { fileName: 'a.txt', downloaded: false });
  assert.deepEqual(repo.requests, ['metadata/2.root.json', 'metadata/timestamp.json']);
});

test('a stored targets file is checked against the hashes the snapshot lists: re-signed under the same version, it is fetched again', async () => {
  const repo = new TestTufRepository({ nowMs });
  repo.addTarget('targets', 'a.txt', bytes('A'));
  repo.publishTargets('targets', { bump: true, withHashes: true });
  repo.publishSnapshot({ bump: true });
  repo.publishTimestamp({ bump: true });
  const client = new TestClient(repo);
  await client.refresh();
  repo.addTarget('targets', 'b.txt', bytes('B')); // same targets version 2, other content
  repo.publishTargets('targets', { withHashes: true });
  repo.publishSnapshot({ bump: true });
  repo.publishTimestamp({ bump: true });
  repo.requests.length = 0;
  await client.download('b.txt');
  assert.ok(repo.requests.includes('metadata/2.targets.json'), repo.requests.join(' '));
  assert.deepEqual(client.metadata.files.get('targets.json'), repo.latest('targets'));
});

test('without consistent snapshots, metadata and targets are fetched under their plain names', async () => {
  const repo = new TestTufRepository({ nowMs, consistentSnapshot: false });
  repo.addTarget('targets', 'a.txt', bytes('A'));
  repo.release();
  const client = new TestClient(repo);
  await client.download('a.txt');
  assert.deepEqual(repo.requests, ['metadata/2.root.json', 'metadata/timestamp.json', 'metadata/snapshot.json', 'metadata/targets.json', 'targets/a.txt']);
});

test('root rotation one version at a time: each new root needs the old threshold and its own', async () => {
  const repo = new TestTufRepository({ nowMs });
  const client = new TestClient(repo);
  const oldRootKeys = repo.signers.get('root')!;
  repo.rotateKeys('root', 2);
  repo.setThreshold('root', 2);
  repo.publishRoot([...oldRootKeys, ...repo.signers.get('root')!]); // v2: old 1-of-1 and new 2-of-2
  repo.rotateKeys('root', 1);
  repo.setThreshold('root', 1);
  repo.publishRoot(); // v3 signed only by its own new key: v2's threshold of 2 is not met
  await assert.rejects(client.refresh(), (e) => SdcError.is(e, 'TUF_SIGNATURE_THRESHOLD'));
  assert.equal(client.storedVersion('root.json'), 2, 'v2 was verified and stored before v3 was refused');
  assert.deepEqual(repo.requests.slice(0, 2), ['metadata/2.root.json', 'metadata/3.root.json']);
});

test('a new root must be the next version', async () => {
  const repo = new TestTufRepository({ nowMs });
  const client = new TestClient(repo);
  repo.root['version'] = 3;
  repo.published.get('root')!.set(2, signEnvelope(repo.root, repo.signers.get('root')!));
  await assert.rejects(client.refresh(), (e) => SdcError.is(e, 'TUF_VERSION_MISMATCH'));
  assert.equal(client.storedVersion('root.json'), 1);
});

test('fast-forward recovery: revoking a timestamp key deletes the stored timestamp and snapshot, so a lower version is accepted', async () => {
  const repo = new TestTufRepository({ nowMs });
  const client = new TestClient(repo);
  const [compromised] = repo.signers.get('timestamp')!;
  repo.addKey('timestamp', repo.newKey());
  repo.publishRoot(); // v2: two timestamp keys, threshold 1
  repo.timestamp['version'] = 1_000; // fast-forwarded, signed by both keys
  repo.publishTimestamp();
  await client.refresh();
  assert.equal(client.storedVersion('timestamp.json'), 1_000);

  // A key only added revokes nothing: the stored timestamp still verifies and stays the floor.
  repo.addKey('timestamp', repo.newKey());
  repo.publishRoot(); // v3
  repo.timestamp['version'] = 1;
  repo.publishTimestamp();
  await assert.rejects(client.refresh(), (e) => SdcError.is(e, 'TUF_ROLLBACK'));
  assert.equal(client.storedVersion('timestamp.json'), 1_000);
  assert.ok(client.metadata.files.has('snapshot.json'));

  // Revoking the compromised key is a rotation. The stored v1000 still verifies under the key
  // that stays, so only the deletion of section 5.3.11 lets version 1 in.
  repo.removeKey('timestamp', compromised!.keyid);
  repo.publishRoot(); // v4
  repo.publishTimestamp();
  await client.refresh();
  assert.equal(client.storedVersion('timestamp.json'), 1);
  assert.equal(client.storedVersion('root.json'), 4);
});

test('delegations: pre-order depth-first search in order, terminating stops the search, paths match per segment', async () => {
  const repo = new TestTufRepository({ nowMs });
  repo.addDelegation('targets', { name: 'a', paths: ['apps/*'] });
  repo.addDelegation('a', { name: 'a-child', paths: ['apps/*'] });
  repo.addDelegation('targets', { name: 'b', paths: ['apps/*'], terminating: true });
  repo.addDelegation('targets', { name: 'c', paths: ['apps/*'] });
  repo.addDelegation('targets', { name: 'deep', paths: ['*'] }); // one segment: never matches apps/x
  repo.addTarget('c', 'apps/x', bytes('from c'));
  repo.publishAll();
  repo.release();
  const client = new TestClient(repo);
  await assert.rejects(client.download('apps/x'), (e) => SdcError.is(e, 'TUF_TARGET_NOT_FOUND'));
  const roles = repo.requests.filter((path) => /^metadata\/\d+\.(a|a-child|b|c|deep)\.json$/.test(path)).map((path) => path.split('.')[1]);
  assert.deepEqual(roles, ['a', 'a-child', 'b'], 'a, its child, then b, which terminates before c');
  assert.ok(client.metadata.files.has('a-child.json'));
  assert.ok(!client.metadata.files.has('c.json'));
});

test('succinct hash bins: the target is looked up in its one bin, named from the SHA-256 of its path', async () => {
  const repo = new TestTufRepository({ nowMs });
  const bins = repo.addSuccinctDelegation('targets', 3, 'bin');
  const path = 'firmware/board.img';
  const bin = `bin-${(parseInt(sha256Hex(bytes(path)).slice(0, 2), 16) >> 5).toString(16)}`;
  assert.ok(bins.includes(bin));
  repo.addTarget(bin, path, bytes('image'));
  repo.publishAll();
  repo.release();
  const client = new TestClient(repo);
  await client.download(path);
  assert.equal(text(client.targets.files.get('firmware%2Fboard.img')), 'image');
  const binRequests = repo.requests.filter((request) => /bin-/.test(request));
  assert.deepEqual(binRequests, [`metadata/1.${bin}.json`]);
  // A path listed in a bin other than its own is never consulted: a path belongs to one bin only.
  const ownBin = `bin-${(parseInt(sha256Hex(bytes('elsewhere.bin')).slice(0, 2), 16) >> 5).toString(16)}`;
  const wrongBin = bins.find((name) => name !== ownBin)!;
  repo.addTarget(wrongBin, 'elsewhere.bin', bytes('x'));
  repo.publishTargets(wrongBin, { bump: true });
  repo.release();
  await assert.rejects(client.download('elsewhere.bin'), (e) => SdcError.is(e, 'TUF_TARGET_NOT_FOUND'));
});

// Review h1 of the OTA path, finding 6: python-tuf and go-tuf treat a hash bin as terminating.
test('a hash bin terminates the search: a bin without the path ends it, no role queued higher up is asked', async () => {
  const repo = new TestTufRepository({ nowMs });
  repo.addDelegation('targets', { name: 'binned', paths: ['*'] });
  repo.addDelegation('targets', { name: 'later', paths: ['*'] });
  const bins = repo.addSuccinctDelegation('binned', 1, 'bin');
  repo.addTarget('later', 'app.bin', bytes('from later'));
  repo.publishAll();
  repo.release();
  const client = new TestClient(repo);
  await assert.rejects(client.download('app.bin'), (e) => SdcError.is(e, 'TUF_TARGET_NOT_FOUND'));
  const asked = repo.requests.filter((path) => /^metadata\/\d+\.(binned|later|bin-\d)\.json$/.test(path)).map((path) => path.split('.')[1]);
  assert.equal(asked.length, 2);
  assert.equal(asked[0], 'binned');
  assert.ok(bins.includes(asked[1]!), `then its bin, not later: ${asked.join(', ')}`);
});

test('path_hash_prefixes and unusual role names are quoted in URLs and file names', async () => {
  const repo = new TestTufRepository({ nowMs });
  const prefix = sha256Hex(bytes('f.txt')).slice(0, 2);
  repo.addDelegation('targets', { name: '../evil/?#', path_hash_prefixes: [prefix] });
  repo.addTarget('../evil/?#', 'f.txt', bytes('F'));
  repo.publishAll();
  repo.release();
  const client = new TestClient(repo);
  await client.download('f.txt');
  assert.ok(repo.requests.includes('metadata/1...%2Fevil%2F%3F%23.json'));
  assert.ok(client.metadata.files.has('..%2Fevil%2F%3F%23.json'));
  assert.equal(text(client.targets.files.get('f.txt')), 'F');
});

test('expired local metadata blocks the update, not the client: fresh metadata recovers it', async () => {
  const repo = new TestTufRepository({ nowMs, lifetimeMs: dayMs });
  const late = new TestClient(repo, { nowMs: nowMs + 2 * dayMs });
  await assert.rejects(late.refresh(), (e) => SdcError.is(e, 'TUF_EXPIRED'));
  repo.root['expires'] = repo.timestamp['expires'] = repo.snapshot['expires'] = repo.targets['expires'] = '2030-01-01T00:00:00Z';
  repo.publishRoot();
  repo.release();
  await late.refresh();
  assert.equal(late.storedVersion('timestamp.json'), 2);
});
