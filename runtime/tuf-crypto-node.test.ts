import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SdcError } from '../core/errors/index.js';
import type { TufPublicKey } from '../core/tuf/crypto-port.js';
import { parseMetadata } from '../core/tuf/metadata.js';
import { verifyThreshold } from '../core/tuf/roles.js';
import { Updater, type FetchOutcome, type StepResult, type Workflow } from '../core/tuf/updater.js';
import { createNodeTufCrypto } from './tuf-crypto-node.js';

const crypto = createNodeTufCrypto();
const vectorDir = new URL('../core/tuf/vectors/tuf-on-ci-0.11/', import.meta.url);
const vector = (path: string): Uint8Array => new Uint8Array(readFileSync(new URL(path, vectorDir)));
const message = new TextEncoder().encode('signed bytes');

function pemOf(key: import('node:crypto').KeyObject): string {
  return key.export({ format: 'pem', type: 'spki' }).toString();
}

test('verifies ed25519, ecdsa-sha2-nistp256, rsassa-pss-sha256 and rsa-pkcs1v15-sha256, and nothing tampered or mislabelled', () => {
  const ed = generateKeyPairSync('ed25519');
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const cases: Array<{ key: TufPublicKey; signature: Uint8Array }> = [
    {
      key: { keyid: 'ed', keytype: 'ed25519', scheme: 'ed25519', publicValue: Buffer.from(ed.publicKey.export({ format: 'jwk' }).x!, 'base64url').toString('hex') },
      signature: sign(null, message, ed.privateKey),
    },
    { key: { keyid: 'ec', keytype: 'ecdsa', scheme: 'ecdsa-sha2-nistp256', publicValue: pemOf(ec.publicKey) }, signature: sign('sha256', message, { key: ec.privateKey, dsaEncoding: 'der' }) },
    {
      key: { keyid: 'pss', keytype: 'rsa', scheme: 'rsassa-pss-sha256', publicValue: pemOf(rsa.publicKey) },
      signature: sign('sha256', message, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }),
    },
    { key: { keyid: 'pkcs1', keytype: 'rsa', scheme: 'rsa-pkcs1v15-sha256', publicValue: pemOf(rsa.publicKey) }, signature: sign('sha256', message, rsa.privateKey) },
  ];
  for (const { key, signature } of cases) {
    assert.equal(crypto.verify(key, message, signature), true, key.scheme);
    assert.equal(crypto.verify(key, new TextEncoder().encode('signed bytez'), signature), false, `${key.scheme} tampered`);
    const flipped = Uint8Array.from(signature);
    flipped[flipped.length - 1]! ^= 1;
    assert.equal(crypto.verify(key, message, flipped), false, `${key.scheme} flipped bit`);
    assert.equal(crypto.verify({ ...key, keytype: 'other' }, message, signature), false, `${key.scheme} wrong key type`);
    assert.equal(crypto.verify({ ...key, publicValue: 'not a key' }, message, signature), false, `${key.scheme} malformed key`);
    assert.equal(crypto.verify(key, message, new Uint8Array(0)), false, `${key.scheme} empty signature`);
  }
  // A PSS signature is not a PKCS#1 v1.5 one: the scheme the metadata names is the one checked.
  assert.equal(crypto.verify({ ...cases[3]!.key }, message, cases[2]!.signature), false);
  assert.equal(crypto.verify({ keyid: 'x', keytype: 'ecdsa', scheme: 'ecdsa-sha2-nistp384', publicValue: cases[1]!.key.publicValue }, message, cases[1]!.signature), false);
});

test('digests: sha256 and sha512 computed, unknown algorithms unsupported', () => {
  assert.equal(Buffer.from(crypto.digest('sha256', new Uint8Array(0))!).toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(crypto.digest('sha512', new Uint8Array(0))!.byteLength, 64);
  assert.equal(crypto.digest('md5', new Uint8Array(0)), undefined);
  assert.equal(crypto.digest('__proto__', new Uint8Array(0)), undefined);
});

test('third-party vector: tuf-on-ci 0.11 ECDSA signatures verify over our OLPC canonical form; an empty "sig" counts for nothing', () => {
  const root = parseMetadata(vector('initial_root.json'), 'root');
  verifyThreshold({ roleName: 'root', role: root.signed.roles.root, keys: root.signed.keys, envelope: root, crypto });
  const timestamp = parseMetadata(vector('metadata/timestamp.json'), 'timestamp');
  verifyThreshold({ roleName: 'timestamp', role: root.signed.roles.timestamp, keys: root.signed.keys, envelope: timestamp, crypto });
  const targets = parseMetadata(vector('metadata/1.targets.json'), 'targets');
  const delegated = parseMetadata(vector('metadata/2.delegatedrole.json'), 'targets');
  const role = targets.signed.delegations!.roles![0]!;
  verifyThreshold({ roleName: 'delegatedrole', role, keys: targets.signed.delegations!.keys, envelope: delegated, crypto });
  // Wrong role keys: the timestamp is not signed by the root key.
  assert.throws(() => verifyThreshold({ roleName: 'timestamp', role: root.signed.roles.root, keys: root.signed.keys, envelope: timestamp, crypto }),
    (e) => SdcError.is(e, 'TUF_SIGNATURE_THRESHOLD'));
  // Threshold 2 of the delegated role's keys: one real signature and one empty one are not enough.
  assert.throws(() => verifyThreshold({ roleName: 'delegatedrole', role: { ...role, threshold: 2 }, keys: targets.signed.delegations!.keys, envelope: delegated, crypto }),
    (e) => SdcError.is(e, 'TUF_SIGNATURE_THRESHOLD'));
});

test('third-party vector: the whole client workflow downloads delegatedrole/artifact from the tuf-on-ci repository at its time', () => {
  const files = new Map<string, Uint8Array>([['root.json', vector('initial_root.json')]]);
  const targets = new Map<string, Uint8Array>();
  const requests: string[] = [];
  const serve = (url: string): FetchOutcome => {
    const path = url.slice('http://repo/'.length);
    requests.push(path);
    try {
      return { ok: true, bytes: vector(path) };
    } catch {
      return { ok: false, status: 404, error: new SdcError('TUF_DOWNLOAD_FAILED', `HTTP 404 ${path}`) };
    }
  };
  const updater = new Updater({
    metadataBaseUrl: 'http://repo/metadata', targetBaseUrl: 'http://repo/targets/', nowMs: Date.parse('2025-02-09T09:17:23Z'), crypto,
  });
  const result = drive(updater.downloadTarget('delegatedrole/artifact'), files, targets, serve);
  assert.deepEqual(result, { fileName: 'delegatedrole%2Fartifact', downloaded: true });
  assert.equal(new TextDecoder().decode(targets.get('delegatedrole%2Fartifact')), 'artifact for tuf-on-ci repository\n');
  assert.deepEqual(requests, [
    'metadata/2.root.json', 'metadata/timestamp.json', 'metadata/2.snapshot.json', 'metadata/1.targets.json',
    'metadata/2.delegatedrole.json', 'targets/delegatedrole/45f337ee451b4c098d121d09cc224bacc7794503ac58a47a78cfe7ebefb7fab3.artifact',
  ]);
  assert.deepEqual([...files.keys()].sort(), ['delegatedrole.json', 'root.json', 'snapshot.json', 'targets.json', 'timestamp.json']);
  // Twenty years on, the same repository is a freeze: refused as expired.
  const late = new Updater({ metadataBaseUrl: 'http://repo/metadata', nowMs: Date.parse('2045-01-01T00:00:00Z'), crypto });
  assert.throws(() => drive(late.refresh(), new Map([['root.json', vector('initial_root.json')]]), new Map(), serve), (e) => SdcError.is(e, 'TUF_EXPIRED'));
});

/** A synchronous driver over maps: enough for a workflow whose fetches answer at once. */
function drive<T>(workflow: Workflow<T>, files: Map<string, Uint8Array>, targets: Map<string, Uint8Array>, serve: (url: string) => FetchOutcome): T {
  let next = workflow.next();
  while (!next.done) {
    const step = next.value;
    let result: StepResult;
    if (step.kind === 'read-metadata') result = files.get(step.fileName);
    else if (step.kind === 'write-metadata') files.set(step.fileName, step.bytes);
    else if (step.kind === 'delete-metadata') files.delete(step.fileName);
    else if (step.kind === 'read-target') result = targets.get(step.fileName);
    else if (step.kind === 'write-target') targets.set(step.fileName, step.bytes);
    else result = serve(step.url);
    next = workflow.next(result);
  }
  return next.value;
}
