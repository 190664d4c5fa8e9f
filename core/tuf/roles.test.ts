import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { SdcError } from '../errors/index.js';
import { parseMetadata } from './metadata.js';
import { delegatedRoleKeys, matchesPathPattern, rolesForTarget, succinctRoleForTarget } from './roles.js';

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
