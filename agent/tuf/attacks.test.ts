import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError, type ErrorCode } from '../../core/errors/index.js';
import type { TufJsonObject } from '../../core/tuf/olpc-json.js';
import { defaultTufTimeouts } from './driver.js';
import { FakeBody } from './testing/fake-fetcher.js';
import { TestClient } from './testing/harness.js';
import { sha256Hex, signEnvelope, TestTufRepository } from './testing/tuf-repository.js';

/**
 * One test per attack the TUF specification lists (section 1.5.2), each asserting that the client
 * refuses with the typed error for that attack and keeps its trusted state. Time is virtual:
 * expiry moves the client's clock, slow retrieval runs the download limits on virtual timers.
 */

const nowMs = Date.UTC(2026, 0, 1);
const dayMs = 86_400_000;
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const refusedWith = (code: ErrorCode) => (error: unknown): boolean => {
  assert.ok(SdcError.is(error), `expected an SdcError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  return true;
};

function repositoryWithTarget(path = 'app.bin', content = 'good release'): TestTufRepository {
  const repo = new TestTufRepository({ nowMs });
  repo.addTarget('targets', path, bytes(content));
  repo.release();
  return repo;
}

test('arbitrary installation: bytes other than the signed target, or metadata signed by an unknown key, are refused and never stored', async () => {
  const repo = repositoryWithTarget();
  const client = new TestClient(repo);
  repo.artifacts.set('app.bin', bytes('evil release')); // same length, other bytes
  await assert.rejects(client.download('app.bin'), refusedWith('TUF_LENGTH_OR_HASH_MISMATCH'));
  assert.equal(client.targets.files.size, 0);

  const attacker = repo.newKey();
  repo.addTarget('targets', 'backdoor.bin', bytes('backdoor'));
  repo.targets['version'] = 3;
  repo.published.get('targets')!.set(3, signEnvelope(repo.targets, [attacker]));
  (repo.snapshot['meta'] as TufJsonObject)['targets.json'] = { version: 3 };
  repo.publishSnapshot({ bump: true });
  repo.publishTimestamp({ bump: true });
  await assert.rejects(client.download('backdoor.bin'), refusedWith('TUF_SIGNATURE_THRESHOLD'));
  assert.equal(client.storedVersion('targets.json'), 2);
  assert.equal(client.targets.files.size, 0);
});

test('endless data: an endless timestamp stops at its byte limit, and a target longer than signed at its length', async () => {
  const repo = repositoryWithTarget();
  const client = new TestClient(repo);
  let endless: FakeBody | undefined;
  client.bodies.set('metadata/timestamp.json', () => {
    endless = new FakeBody();
    const chunk = new Uint8Array(1_024).fill(0x20);
    const pump = (): void => {
      if (endless!.destroyed) return;
      endless!.push(chunk);
      setImmediate(pump);
    };
    setImmediate(pump);
    return endless;
  });
  await assert.rejects(client.refresh({ timestampBytesMax: 16_384 }), refusedWith('TUF_TOO_LARGE'));
  assert.equal(endless?.destroyed, true, 'the stream was stopped');

  client.bodies.clear();
  repo.artifacts.set('app.bin', new Uint8Array(1_000_000));
  await assert.rejects(client.download('app.bin'), refusedWith('TUF_TOO_LARGE'));
  assert.equal(client.targets.files.size, 0);
});

test('extraneous dependencies: a role cannot supply a target outside the paths delegated to it', async () => {
  const repo = new TestTufRepository({ nowMs });
  repo.addDelegation('targets', { name: 'apps', paths: ['apps/*'] });
  repo.addDelegation('targets', { name: 'libs', paths: ['libs/*'] });
  repo.addTarget('apps', 'libs/ssl.so', bytes('a dependency the apps role slipped in'));
  repo.addTarget('apps', 'apps/editor', bytes('editor'));
  repo.publishAll();
  repo.release();
  const client = new TestClient(repo);
  await assert.rejects(client.download('libs/ssl.so'), refusedWith('TUF_TARGET_NOT_FOUND'));
  assert.ok(!repo.requests.some((path) => path.endsWith('.apps.json')), 'the apps role is not even asked about libs/');
  assert.equal(client.targets.files.size, 0);
  await client.download('apps/editor'); // the role's own paths still work
});

test('fast-forward: a forged high version is refused and does not raise the floor for the real next version', async () => {
  const repo = repositoryWithTarget();
  const client = new TestClient(repo);
  await client.refresh();
  const forged = { ...repo.timestamp, version: 1_000_000 };
  repo.overrides.set('metadata/timestamp.json', () => ({ status: 200, bytes: signEnvelope(forged, [repo.newKey()]) }));
  await assert.rejects(client.refresh(), refusedWith('TUF_SIGNATURE_THRESHOLD'));
  assert.equal(client.storedVersion('timestamp.json'), 2);
  repo.overrides.clear();
  repo.release();
  await client.refresh();
  assert.equal(client.storedVersion('timestamp.json'), 3);
});

test('indefinite freeze: validly signed but expired metadata replayed after its expiry is refused', async () => {
  const repo = repositoryWithTarget();
  const client = new TestClient(repo);
  await client.refresh();
  // The repository (or a freezing attacker) keeps serving the same files; the client's clock moves past their expiry.
  client.time.advance(31 * dayMs);
  await assert.rejects(client.download('app.bin'), refusedWith('TUF_EXPIRED'));
  assert.equal(client.targets.files.size, 0);
  // A timestamp alone re-signed fresh does not thaw an expired snapshot.
  repo.root['expires'] = repo.timestamp['expires'] = '2030-01-01T00:00:00Z';
  repo.publishRoot();
  repo.publishTimestamp({ bump: true });
  await assert.rejects(client.refresh(), refusedWith('TUF_EXPIRED'));
});

test('malicious mirrors: a mirror that edits signed metadata is refused by signature', async () => {
  const repo = repositoryWithTarget();
  const client = new TestClient(repo);
  const edited = JSON.parse(new TextDecoder().decode(repo.latest('targets'))) as { signed: TufJsonObject };
  (edited.signed['targets'] as TufJsonObject)['app.bin'] = { length: 12, hashes: { sha256: sha256Hex(bytes('evil release')) } };
  repo.overrides.set('metadata/2.targets.json', () => ({ status: 200, bytes: bytes(JSON.stringify(edited)) }));
  repo.artifacts.set('app.bin', bytes('evil release'));
  await assert.rejects(client.download('app.bin'), refusedWith('TUF_SIGNATURE_THRESHOLD'));
  assert.equal(client.metadata.files.has('targets.json'), false);
});

test('mix-and-match: a snapshot or targets file of another version than the one signed for is refused', async () => {
  const repo = repositoryWithTarget();
  const client = new TestClient(repo);
  const oldSnapshot = repo.latest('snapshot', 2);
  repo.release();
  repo.overrides.set('metadata/3.snapshot.json', () => ({ status: 200, bytes: oldSnapshot }));
  await assert.rejects(client.refresh(), refusedWith('TUF_VERSION_MISMATCH'));
  assert.equal(client.metadata.files.has('snapshot.json'), false);

  // With hashes in the timestamp, a substituted snapshot fails before its signature is even read.
  repo.overrides.clear();
  repo.publishSnapshot({ bump: true, withHashes: true });
  repo.publishTimestamp({ bump: true });
  repo.overrides.set('metadata/4.snapshot.json', () => ({ status: 200, bytes: repo.latest('snapshot', 3) }));
  await assert.rejects(client.refresh(), refusedWith('TUF_LENGTH_OR_HASH_MISMATCH'));

  repo.overrides.clear();
  await client.refresh();
  const currentTargets = repo.latest('targets');
  repo.release();
  repo.overrides.set('metadata/4.targets.json', () => ({ status: 200, bytes: currentTargets }));
  await assert.rejects(client.refresh(), refusedWith('TUF_ROLLBACK')); // version 3 where the snapshot says 4
});

test('rollback: an older timestamp, or a snapshot listing an older targets version, is refused and the trusted versions stay', async () => {
  const repo = repositoryWithTarget();
  const client = new TestClient(repo);
  repo.release();
  await client.refresh();
  assert.equal(client.storedVersion('timestamp.json'), 3);
  const oldTimestamp = repo.latest('timestamp', 2);
  repo.overrides.set('metadata/timestamp.json', () => ({ status: 200, bytes: oldTimestamp }));
  await assert.rejects(client.refresh(), refusedWith('TUF_ROLLBACK'));
  assert.equal(client.storedVersion('timestamp.json'), 3);

  repo.overrides.clear();
  (repo.snapshot['meta'] as TufJsonObject)['targets.json'] = { version: 1 };
  repo.publishSnapshot({ bump: true });
  repo.publishTimestamp({ bump: true });
  await assert.rejects(client.refresh(), refusedWith('TUF_ROLLBACK'));
  assert.equal(client.storedVersion('snapshot.json'), 3);
});

test('slow retrieval: a silent repository and one trickling bytes are both cut off by the download limits (virtual time)', async () => {
  const repo = repositoryWithTarget();
  const hashPath = `targets/${sha256Hex(bytes('good release'))}.app.bin`;
  for (const mode of ['silent', 'trickle'] as const) {
    const client = new TestClient(repo);
    let body: FakeBody | undefined;
    client.bodies.set(hashPath, () => {
      body = new FakeBody();
      if (mode === 'trickle') {
        // One byte just inside the idle limit, forever: only the whole-download limit stops it.
        const drip = (): void => {
          if (body!.destroyed) return;
          body!.push(new Uint8Array([0x41]));
          client.time.schedule(defaultTufTimeouts.idleTimeoutMs - 1, drip);
        };
        client.time.schedule(defaultTufTimeouts.idleTimeoutMs - 1, drip);
      }
      return body;
    });
    let settled = false;
    const download = client.download('app.bin');
    const markSettled = (): void => {
      settled = true;
    };
    download.then(markSettled, markSettled);
    const startMs = client.time.nowMs();
    for (let step = 0; !settled && step < 10_000; step++) {
      await new Promise((resolve) => setImmediate(resolve));
      client.time.advance(1_000);
    }
    await assert.rejects(download, refusedWith('TUF_DOWNLOAD_TIMEOUT'));
    assert.equal(body?.destroyed, true, `${mode}: the connection was dropped`);
    assert.equal(client.targets.files.size, 0);
    const limitMs = mode === 'silent' ? defaultTufTimeouts.idleTimeoutMs : defaultTufTimeouts.totalTimeoutMs;
    // Cut off at its limit (plus the second of virtual time the loop advances per turn), not before.
    assert.ok(client.time.nowMs() - startMs >= limitMs && client.time.nowMs() - startMs <= limitMs + 2_000,
      `${mode}: cut off after ${client.time.nowMs() - startMs} ms of virtual time, limit ${limitMs}`);
  }
});

test('wrong software: the signed bytes of another target served for the one asked for are refused', async () => {
  const repo = new TestTufRepository({ nowMs });
  repo.addTarget('targets', 'firmware-model-a.bin', bytes('firmware for model A'));
  repo.addTarget('targets', 'firmware-model-b.bin', bytes('firmware for model B'));
  repo.release();
  const client = new TestClient(repo);
  const hashA = sha256Hex(bytes('firmware for model A'));
  repo.overrides.set(`targets/${hashA}.firmware-model-a.bin`, () => ({ status: 200, bytes: bytes('firmware for model B') }));
  await assert.rejects(client.download('firmware-model-a.bin'), refusedWith('TUF_LENGTH_OR_HASH_MISMATCH'));
  assert.equal(client.targets.files.size, 0);
});

test('key compromise below threshold: one of two required root keys cannot rotate root, and one signature cannot count twice', async () => {
  const repo = new TestTufRepository({ nowMs });
  const second = repo.newKey();
  repo.addKey('root', second);
  repo.addKey('root', repo.newKey());
  repo.setThreshold('root', 2);
  repo.publishRoot(repo.signers.get('root')!.slice(0, 2)); // v2: 2-of-3, properly signed
  const client = new TestClient(repo);
  await client.refresh();
  assert.equal(client.storedVersion('root.json'), 2);

  const [stolen] = repo.signers.get('root')!;
  const attackerTimestampKey = repo.newKey();
  repo.rotateKeys('timestamp');
  repo.signers.set('timestamp', [attackerTimestampKey]);
  repo.publishRoot([stolen!]); // v3 signed by the stolen key alone
  await assert.rejects(client.refresh(), refusedWith('TUF_SIGNATURE_THRESHOLD'));
  assert.equal(client.storedVersion('root.json'), 2);

  const message = signEnvelope(repo.root, [stolen!]);
  const duplicated = JSON.parse(new TextDecoder().decode(message)) as { signatures: TufJsonObject[] };
  duplicated.signatures.push(duplicated.signatures[0]!);
  repo.published.get('root')!.set(3, bytes(JSON.stringify(duplicated)));
  await assert.rejects(client.refresh(), refusedWith('TUF_METADATA_INVALID'));
  assert.equal(client.storedVersion('root.json'), 2);
});
