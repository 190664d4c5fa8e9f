// The TUF threshold's count of distinct key material (core/tuf/roles.ts), checked with real
// signatures through the node crypto port. Here rather than in core/tuf/roles.test.ts: core/ is
// sans-IO and may not import runtime/ (test/architecture), and these cases need the port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { createNodeTufCrypto } from './tuf-crypto-node.js';
import { SdcError } from '../core/errors/index.js';
import { canonicalBytes, type TufJson } from '../core/tuf/olpc-json.js';
import { keyMaterial, verifyThreshold } from '../core/tuf/roles.js';
import { TrustedSet } from '../core/tuf/trusted-set.js';

const utf8 = new TextEncoder();

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
