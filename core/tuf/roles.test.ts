import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { createNodeTufCrypto } from '../../runtime/tuf-crypto-node.js';
import { SdcError } from '../errors/index.js';
import { parseMetadata } from './metadata.js';
import { canonicalBytes, type TufJson } from './olpc-json.js';
import { delegatedRoleKeys, keyMaterial, verifyThreshold, matchesPathPattern, rolesForTarget, succinctRoleForTarget } from './roles.js';
import { TrustedSet } from './trusted-set.js';

const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());
const utf8 = new TextEncoder();

test('path patterns match per segment as fnmatch does: * never crosses /', () => {
  const cases: ReadonlyArray<readonly [string, string, boolean]> = [
    ['targets/file.txt', 'targets/*.txt', true],
    ['targets/a/file.txt', 'targets/*.txt', false],
    ['targets/a/file.txt', 'targets/*/*.txt', true],
    ['file.txt', '*', true],
    ['dir/file.txt', '*', false],
    ['a1.bin', 'a?.bin', true],
    ['a12.bin', 'a?.bin', false],
    ['ab.bin', '[ab]b.bin', true],
    ['cb.bin', '[!ab]b.bin', true],
    ['ab.bin', '[!ab]b.bin', false],
    ['x[y', 'x[y', true], // an unclosed [ is literal
    ['a.b', 'a.b', true],
    ['axb', 'a.b', false], // . is literal, not a regex wildcard
    ['(x)+', '(x)+', true],
    ['', '', true],
    ['a', '[z-a]', false], // an invalid range matches nothing, and does not throw
  ];
  for (const [path, pattern, expected] of cases) assert.equal(matchesPathPattern(path, pattern), expected, `${path} ~ ${pattern}`);
});

test('roles for a target keep the delegator order; path_hash_prefixes use the SHA-256 of the path', () => {
  const prefix = Buffer.from(sha256(utf8.encode('bin/tool'))).toString('hex').slice(0, 3);
  const delegations = {
    keys: new Map(),
    roles: [
      { name: 'first', keyids: [], threshold: 1, terminating: false, paths: ['bin/*'] },
      { name: 'other', keyids: [], threshold: 1, terminating: false, paths: ['lib/*'] },
      { name: 'hashed', keyids: [], threshold: 1, terminating: true, pathHashPrefixes: ['zzz', prefix] },
    ],
  };
  assert.deepEqual(rolesForTarget(delegations, 'bin/tool', sha256), [{ name: 'first', terminating: false }, { name: 'hashed', terminating: true }]);
  assert.equal(delegatedRoleKeys(delegations, 'other')?.threshold, 1);
  assert.equal(delegatedRoleKeys(delegations, 'nobody'), undefined);
});

test('succinct roles: the bin is the top bit_length bits of the hash, named with a fixed-width hex suffix', () => {
  const succinct = { keyids: ['k'], threshold: 1, bitLength: 8, namePrefix: 'bin' };
  const digest = sha256(utf8.encode('some/target'));
  assert.equal(succinctRoleForTarget(succinct, 'some/target', sha256), `bin-${digest[0]!.toString(16).padStart(2, '0')}`);
  const wide = { ...succinct, bitLength: 12 };
  const expected = ((digest[0]! << 4) | (digest[1]! >> 4)).toString(16).padStart(3, '0');
  assert.equal(succinctRoleForTarget(wide, 'some/target', sha256), `bin-${expected}`);
  const delegations = { keys: new Map(), succinctRoles: succinct };
  assert.equal(delegatedRoleKeys(delegations, 'bin-ff'), succinct);
  for (const name of ['bin-100', 'bin-f', 'bin-FF', 'other-00', 'bin-0g']) assert.equal(delegatedRoleKeys(delegations, name), undefined, name);
});

test('metadata schemas refuse what python-tuf refuses, with TUF_METADATA_INVALID and the field', () => {
  const base = {
    _type: 'timestamp', spec_version: '1.0.31', version: 1, expires: '2030-01-01T00:00:00Z', meta: { 'snapshot.json': { version: 1 } },
  };
  const file = (signed: object, signatures: object[] = []): Uint8Array => utf8.encode(JSON.stringify({ signatures, signed }));
  assert.equal(parseMetadata(file(base), 'timestamp').signed.snapshotMeta.version, 1);
  const bad: ReadonlyArray<readonly [object, string]> = [
    [{ ...base, _type: 'snapshot' }, '/signed/_type'],
    [{ ...base, spec_version: '2.0.0' }, '/signed/spec_version'],
    [{ ...base, spec_version: '1' }, '/signed/spec_version'],
    [{ ...base, version: 0 }, '/signed/version'],
    [{ ...base, expires: '2030-01-01T00:00:00.5Z' }, '/signed/expires'],
    [{ ...base, expires: '2030-02-30T00:00:00Z' }, '/signed/expires'],
    [{ ...base, meta: {} }, '/signed/meta'],
    [{ ...base, meta: { 'snapshot.json': { version: 1, hashes: {} } } }, '/signed/meta/snapshot.json/hashes'],
    [{ ...base, meta: { 'snapshot.json': { version: 1, length: -1 } } }, '/signed/meta/snapshot.json/length'],
  ];
  for (const [signed, path] of bad) {
    assert.throws(() => parseMetadata(file(signed), 'timestamp'), (e) => SdcError.is(e, 'TUF_METADATA_INVALID') && e.details['path'] === path, path);
  }
  assert.throws(() => parseMetadata(file(base, [{ keyid: 'a', sig: '00' }, { keyid: 'a', sig: '01' }]), 'timestamp'),
    (e) => SdcError.is(e, 'TUF_METADATA_INVALID'));
  const targets = { _type: 'targets', spec_version: '1.0', version: 1, expires: '2030-01-01T00:00:00Z', targets: {} };
  const role = { name: 'r', keyids: [], threshold: 1, terminating: false };
  for (const delegations of [
    { keys: {}, roles: [role] }, // neither paths nor prefixes
    { keys: {}, roles: [{ ...role, paths: [], path_hash_prefixes: [] }] },
    { keys: {}, roles: [{ ...role, paths: [] }, { ...role, paths: [] }] }, // duplicate name
    { keys: {}, roles: [{ ...role, name: 'root', paths: [] }] },
    { keys: {} },
    { keys: {}, succinct_roles: { keyids: [], threshold: 1, bit_length: 33, name_prefix: 'b' } },
  ]) {
    assert.throws(() => parseMetadata(file({ ...targets, delegations }), 'targets'), (e) => SdcError.is(e, 'TUF_METADATA_INVALID'), JSON.stringify(delegations));
  }
});

// Review h1 of the OTA path, finding 5 (its reproduction /tmp/h1/dupkey.ts): one public key listed
// under two key ids met a threshold of two with one private key.
test('a threshold counts distinct key material: the same key under two key ids is one signature', () => {
  const nowMs = Date.UTC(2026, 11, 6);
  const one = generateKeyPairSync('ed25519');
  const two = generateKeyPairSync('ed25519');
  const hexOf = (publicKey: typeof one.publicKey) => Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url').toString('hex');
  const ed25519 = (hex: string) => ({ keytype: 'ed25519', scheme: 'ed25519', keyval: { public: hex } });
  const rootFile = (keys: Record<string, object>, signers: ReadonlyArray<readonly [string, typeof one.privateKey]>) => {
    const role = { keyids: Object.keys(keys), threshold: 2 };
    const signed = { _type: 'root', spec_version: '1.0.31', version: 1, expires: '2030-01-01T00:00:00Z', consistent_snapshot: false,
      keys, roles: { root: role, timestamp: role, snapshot: role, targets: role } };
    const bytes = canonicalBytes(signed as unknown as TufJson);
    return utf8.encode(JSON.stringify({ signed, signatures: signers.map(([keyid, key]) => ({ keyid, sig: sign(null, bytes, key).toString('hex') })) }));
  };
  const crypto = createNodeTufCrypto();
  // The same key twice, the second time in upper-case hex: one private key, two ids.
  const twice = rootFile({ a: ed25519(hexOf(one.publicKey)), b: ed25519(hexOf(one.publicKey).toUpperCase()) }, [['a', one.privateKey], ['b', one.privateKey]]);
  assert.throws(() => new TrustedSet(twice, nowMs, crypto),
    (error) => SdcError.is(error, 'TUF_SIGNATURE_THRESHOLD') && error.details['valid'] === 1 && error.details['threshold'] === 2);
  // Two keys, two signatures: met.
  const distinct = rootFile({ a: ed25519(hexOf(one.publicKey)), b: ed25519(hexOf(two.publicKey)) }, [['a', one.privateKey], ['b', two.privateKey]]);
  assert.equal(new TrustedSet(distinct, nowMs, crypto).root.version, 1);
});

test('key material: PEM keys compare by their DER bytes, whatever the line breaks and key type; hex by value', () => {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
  const body = pem.split('\n').filter((line) => line.length > 0 && !line.startsWith('-----')).join('');
  const oneLine = `-----BEGIN PUBLIC KEY-----${body}-----END PUBLIC KEY-----`;
  const rewrapped = `-----BEGIN PUBLIC KEY-----\r\n${body.match(/.{1,40}/g)!.join('\r\n')}\r\n-----END PUBLIC KEY-----\r\n`;
  assert.equal(keyMaterial(oneLine), keyMaterial(pem));
  assert.equal(keyMaterial(rewrapped), keyMaterial(pem));
  assert.equal(keyMaterial(pem), `der:${publicKey.export({ format: 'der', type: 'spki' }).toString('hex')}`);
  assert.equal(keyMaterial('ABCDEF'), keyMaterial('abcdef'));
  assert.notEqual(keyMaterial(pem), keyMaterial(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'pem', type: 'spki' }).toString()));
  // The same ECDSA key under both key type spellings the crypto port verifies, two ids, one private key: counted once.
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const samePem = createPublicKeyPem(privateKey);
  const keys = new Map([
    ['a', { keyid: 'a', keytype: 'ecdsa', scheme: 'ecdsa-sha2-nistp256', publicValue: samePem }],
    ['b', { keyid: 'b', keytype: 'ecdsa-sha2-nistp256', scheme: 'ecdsa-sha2-nistp256', publicValue: samePem.replace(/\n/g, '\r\n') }],
  ]);
  const signedBytes = utf8.encode('{"x":1}');
  const sig = (): string => sign('sha256', signedBytes, privateKey).toString('hex');
  assert.throws(() => verifyThreshold({ roleName: 'targets', role: { keyids: ['a', 'b'], threshold: 2 }, keys, envelope: { signed: {}, signedBytes, signatures: [{ keyid: 'a', sig: sig() }, { keyid: 'b', sig: sig() }] }, crypto: createNodeTufCrypto() }),
    (error) => SdcError.is(error, 'TUF_SIGNATURE_THRESHOLD') && error.details['valid'] === 1);
  verifyThreshold({ roleName: 'targets', role: { keyids: ['a', 'b'], threshold: 1 }, keys, envelope: { signed: {}, signedBytes, signatures: [{ keyid: 'b', sig: sig() }] }, crypto: createNodeTufCrypto() });
});

function createPublicKeyPem(privateKey: ReturnType<typeof generateKeyPairSync>['privateKey']): string {
  return createPublicKey(privateKey).export({ format: 'pem', type: 'spki' }).toString();
}
